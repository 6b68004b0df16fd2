#!/usr/bin/env bash
# api_cases.test.sh - bad input against a real daemon, one case per line of
# tests/api_cases.txt (format in its header): each must answer the expected
# 4xx as application/problem+json whose detail contains the expected text.
# Before the cases, a small dataset and four tiny adapters (sr4, edges,
# inpaint, colorize; 2 training steps each) are made through the API, so
# that image, mask and channel errors meet real adapters. After them the
# daemon must still be alive and every response must match openapi.yaml.
source "$(dirname "$0")/tools/api_lib.sh"

start_daemon cases --max-body-bytes 256K --max-upload-bytes 512K --max-pixels 4096 --max-n 4 \
    --max-steps 50 --queue-max 8 --workers 1
# the log up to readiness holds /readyz's 503s while the model loaded:
# correct answers, not bad input's
ready_lines=$(wc -l <"$log")

# ---- fixtures -------------------------------------------------------------
fx=$tmp/fx
mkdir -p "$fx"
make_png "$fx/png.png" 16 16 3 1
make_png "$fx/gray.png" 16 16 1 2
make_png "$fx/rgba.png" 16 16 4 3
make_png "$fx/lowres.png" 4 4 3 4
make_png "$fx/big.png" 100 100 3 5
head -c 60 "$fx/png.png" >"$fx/trunc.png"
echo "hello, not a picture" >"$fx/notpng"
b64() { base64 -w0 "$1"; }
declare -A vars=(
    [PNG]=$(b64 "$fx/png.png") [GRAY]=$(b64 "$fx/gray.png") [RGBA]=$(b64 "$fx/rgba.png")
    [LOWRES]=$(b64 "$fx/lowres.png") [TRUNC]=$(b64 "$fx/trunc.png") [NOTPNG]=$(b64 "$fx/notpng")
    [BIGPNG]=$(b64 "$fx/big.png") [DS]=cases-ds
)
/usr/bin/python3 - "$fx" <<'PY'
import io, os, sys, tarfile
fx = sys.argv[1]
def tar(name, members):
    with tarfile.open(os.path.join(fx, name), "w", format=tarfile.USTAR_FORMAT) as t:
        for mname, data in members:
            info = tarfile.TarInfo(mname)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
png = open(os.path.join(fx, "png.png"), "rb").read()
tar("good.tar", [("a.png", png), ("sub/b.png", png)])
tar("notes.tar", [("a.png", png), ("notes.txt", b"hello")])
tar("badpng.tar", [("x.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)])
good = open(os.path.join(fx, "good.tar"), "rb").read()
open(os.path.join(fx, "trunc.tar"), "wb").write(good[:700])
open(os.path.join(fx, "big.tar"), "wb").write(b"\0" * (600 * 1024))
open(os.path.join(fx, "big.json"), "w").write('{"n":1,"pad":"' + "x" * (300 * 1024) + '"}')
PY

# ---- a dataset and four tiny adapters, through the API ----------------------
call POST /v1/datasets -H 'Content-Type: application/json' \
    -d '{"builtin":"cifar10","split":"test","name":"cases-ds","limit":8}'
if [ "$code" != 201 ]; then
    bad setup_dataset "$code $(cat "$tmp/body")"
    finish
fi
ok setup_dataset
for spec in 't-sr:{"name":"sr","factor":4}' 't-edges:{"name":"edges"}' 't-inpaint:{"name":"inpaint"}' \
    't-colorize:{"name":"colorize"}'; do
    name=${spec%%:*} task=${spec#*:}
    call POST /v1/jobs -H 'Content-Type: application/json' -d "{\"kind\":\"distill\",\"dataset\":\"cases-ds\",
        \"task\":$task,\"adapter_kind\":\"lite\",\"steps\":2,\"batch_size\":2,\"n_grid\":8,\"name\":\"$name\"}"
    if [ "$code" != 202 ]; then
        bad "setup_job_$name" "$code $(cat "$tmp/body")"
        finish
    fi
    jid=$(jget 'd["id"]')
    if wait_job "$jid" succeeded failed cancelled && curl -s "$base/v1/adapters/$name" | grep -q '"id"'; then
        ok "setup_adapter_$name"
    else
        bad "setup_adapter_$name" "$(curl -s "$base/v1/jobs/$jid")"
        finish
    fi
done

# ---- the cases -----------------------------------------------------------------
n_cases=0
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    [[ -z "${line// /}" || $line == \#* ]] && continue
    for k in "${!vars[@]}"; do line=${line//\{\{$k\}\}/${vars[$k]}}; done
    IFS='|' read -r method path headers body want detail <<<"$line"
    trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
    method=$(trim "$method") path=$(trim "$path") headers=$(trim "$headers")
    body=$(trim "$body") want=$(trim "$want") detail=$(trim "$detail")
    args=(--path-as-is)
    if [ "$headers" != - ]; then
        while [ -n "$headers" ]; do
            h=${headers%%&&*}
            args+=(-H "$(trim "$h")")
            [[ $headers == *'&&'* ]] && headers=${headers#*&&} || headers=
        done
    fi
    case $body in
    -) ;;
    json:*) args+=(-H 'Content-Type: application/json' --data-binary "${body#json:}") ;;
    raw:*) printf '%b' "${body#raw:}" >"$tmp/raw"; args+=(--data-binary @"$tmp/raw") ;;
    file:*) args+=(--data-binary @"$fx/${body#file:}") ;;
    form:*)
        IFS=',' read -ra fields <<<"${body#form:}"
        for f in "${fields[@]}"; do
            if [[ $f == *=@* ]]; then args+=(-F "${f%%=@*}=@$fx/${f#*=@}"); else args+=(-F "$f"); fi
        done
        ;;
    esac
    n_cases=$((n_cases + 1))
    call "$method" "$path" "${args[@]}"
    got=$(jget 'd["detail"]')
    if [ "$code" = "$want" ] && [ "$(header content-type)" = application/problem+json ] &&
        [[ $got == *"$detail"* ]]; then
        ok "case_$lineno ($method ${path:0:40} -> $want)"
    else
        bad "case_$lineno ($method ${path:0:40})" "want $want '$detail', got $code '$got'"
    fi
done <tests/api_cases.txt

echo "# $n_cases bad-input cases tried"
[ "$n_cases" -ge 40 ] && ok "at_least_40_cases ($n_cases)" || bad at_least_40_cases "$n_cases"
if curl -sf "$base/healthz" >/dev/null && kill -0 "$pid" 2>/dev/null; then ok daemon_survived
else bad daemon_survived "the daemon is gone; log: $(tail -n 5 "$log")"; fi
# A request is logged once the daemon is done with it, which may be after
# its answer arrived: the log is read whole once the daemon has exited.
stop_daemon
expect sigterm_clean_exit test "$stop_rc" = 0
tail -n +$((ready_lines + 1)) "$log" >"$tmp/after-ready.log"
if grep -Eq '" (5[0-9][0-9]) ' "$tmp/after-ready.log" || grep -Eq ' 5[0-9][0-9] [0-9]+ bytes' "$tmp/after-ready.log"; then
    bad no_5xx_for_bad_input "$(grep -E ' 5[0-9][0-9] [0-9]+ bytes' "$tmp/after-ready.log" | head -n 3)"
elif ! grep -q ' GET /healthz 200 ' "$tmp/after-ready.log"; then
    bad no_5xx_for_bad_input "the log after readiness lacks the last request's line"
else
    ok no_5xx_for_bad_input
fi
finish
