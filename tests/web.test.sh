#!/usr/bin/env bash
# web.test.sh - the web page at / in Debian's Chromium (headless), driven by
# playwright-core (pinned in the Makefile, installed under .cache/ by `make
# test`; no browser is downloaded). Two daemons of the tiny random model on
# loopback ports: one without keys (generate, upload, jobs, cancel, errors),
# one with keys (401 without, a generate key's 403, an admin key). The
# checks are tests/web/web.mjs; screenshots of each view go to
# $BUILD/web-screenshots/. Also checks the page's headers over curl.
source "$(dirname "$0")/tools/api_lib.sh"
PLAYWRIGHT=$ROOT/.cache/playwright/node_modules/playwright-core
SHOTS=$ROOT/$BUILD/web-screenshots

for need in /usr/bin/chromium "$PLAYWRIGHT/package.json"; do
    if [ ! -e "$need" ]; then
        bad prerequisites "$need is missing (make test installs chromium and playwright-core)"
        finish
    fi
done
mkdir -p "$SHOTS" "$tmp/pngs"
for i in 1 2 3 4 5 6; do make_png "$tmp/pngs/img$i.png" 16 16 3 "$i"; done

start_daemon open --workers 1
open_base=$base

call GET /
expect page_html [ "$code" = 200 ]
[[ $(header content-type) == text/html* ]] && ok page_content_type || bad page_content_type "$(header content-type)"
[[ $(header content-security-policy) == "default-src 'self';"* ]] && ok page_csp_same_origin ||
    bad page_csp_same_origin "$(header content-security-policy)"
grep -q 'src="app.js"' "$tmp/body" && ok page_links_its_script || bad page_links_its_script
for asset in app.js app.css; do
    call GET "/$asset"
    if [ "$code" = 200 ] && cmp -s "$tmp/body" "web/$asset"; then ok "serves_$asset"; else bad "serves_$asset" "$code"; fi
done
call GET /v1/capabilities
expect capabilities pycheck 'd["limits"]["max_n"] == 16 and d["model"]["sample_size"] == 16
    and "canny" in d["preprocesses"] and d["adapter_kinds"] == ["controlnet", "lite"]'

# the keyed daemon: keys made before it starts, in its data dir
mkdir -p "$tmp/keyed/var"
admin=$("$BIN" keys create --scope admin --data-dir "$tmp/keyed/var" 2>/dev/null)
gen=$("$BIN" keys create --scope generate --data-dir "$tmp/keyed/var" 2>/dev/null)
start_daemon keyed
keyed_base=$base
base=$open_base

start=$SECONDS
BASE=$open_base KEYED=$keyed_base GEN_KEY=$gen ADMIN_KEY=$admin PNGS=$tmp/pngs SHOTS=$SHOTS \
    PROFILE=$tmp/profile PLAYWRIGHT=$PLAYWRIGHT node tests/web/web.mjs >"$tmp/web.out" 2>&1
rc=$?
grep -E '^(ok|FAIL|  )' "$tmp/web.out"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/web.out" | tail -n 1)
if [ -z "$summary" ]; then
    bad browser_run "no summary (exit $rc): $(tail -n 5 "$tmp/web.out")"
else
    passed=$((passed + ${summary%% *}))
    f=${summary#*, }
    failed=$((failed + ${f%% *}))
    [ "$rc" -ne 0 ] && [ "${f%% *}" -eq 0 ] && bad browser_exit "exit $rc"
fi
echo "browser checks took $((SECONDS - start)) s; screenshots in $SHOTS"
finish
