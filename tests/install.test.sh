#!/usr/bin/env bash
# install.test.sh - `make install DESTDIR=$tmp PREFIX=/usr`: the layout, a
# second install that keeps the edited config, the installed binary, and a
# daemon started from the installed tree with the installed config that
# finds the installed models and answers; plus the runtime packages of
# deploy/Dockerfile against the libraries the binary links.
source "$(dirname "$0")/tools/lib.sh"
clear_codid_env

# -o: install what is built; this test does not rebuild the shared binary.
root=$tmp/root
make -s -o "$BUILD/codid" install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr >"$tmp/make.log" 2>&1
rc=$?
if [ $rc = 0 ]; then ok make_install
else bad make_install "exit $rc: $(tail -5 "$tmp/make.log")"; finish; fi

# ---- layout -------------------------------------------------------------------
if [ -x "$root/usr/bin/codid" ] && cmp -s "$root/usr/bin/codid" "$BIN"; then ok binary
else bad binary "no $root/usr/bin/codid, or not $BIN"; fi

# Every model folder with weights is installed, without its training state.
want=0 got=0
for d in models/*/; do
    ls "$d"*.safetensors >/dev/null 2>&1 || continue
    want=$((want + 1))
    name=$(basename "$d")
    dest=$root/usr/share/codid/models/$name
    if diff -rq --exclude=training "$d" "$dest" >/dev/null && [ ! -e "$dest/training" ]; then
        got=$((got + 1))
    else bad "model_$name" "$dest differs from $d"; fi
done
if [ $got = $want ]; then ok "models_installed_$want"; fi
if [ -d "$root/usr/share/codid/models" ]; then ok share_dir; else bad share_dir "no share/codid/models"; fi

conf=$root/etc/codid/codid.conf
if [ -f "$conf" ] && grep -qx 'share_dir = /usr/share/codid' "$conf" &&
    grep -qx 'data_dir = /var/lib/codid' "$conf"; then
    ok config_installed
else bad config_installed "$(grep -E '^(share|data)_dir' "$conf" 2>&1)"; fi
if [ -d "$root/var/lib/codid" ]; then ok data_dir_created; else bad data_dir_created "no var/lib/codid"; fi
unit=$root/usr/lib/systemd/system/codid.service
if [ -f "$unit" ] && grep -qx 'ExecStart=/usr/bin/codid serve --config /etc/codid/codid.conf' "$unit"; then
    ok unit_installed
else bad unit_installed "$(grep ExecStart "$unit" 2>&1)"; fi

# A second install keeps the (edited) config, and still succeeds.
echo "# edited by hand" >>"$conf"
make -s -o "$BUILD/codid" install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr >"$tmp/make2.log" 2>&1
rc=$?
if [ $rc = 0 ] && [ "$(tail -n 1 "$conf")" = "# edited by hand" ] && grep -q kept "$tmp/make2.log"; then
    ok reinstall_keeps_config
else bad reinstall_keeps_config "exit $rc; last line '$(tail -n 1 "$conf")'"; fi

# ---- the installed binary ------------------------------------------------------
"$root/usr/bin/codid" --help >"$tmp/help" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q '^usage: codid' "$tmp/help" && grep -q -- '--listen' "$tmp/help"; then
    ok installed_help
else bad installed_help "exit $rc: $(head -3 "$tmp/help")"; fi

# ---- a daemon from the installed tree --------------------------------------------
# The installed config as it is, except what a staging root cannot give:
# the paths under DESTDIR, and a free port (environment over file).
cd "$tmp" || exit 1
CODID_LISTEN=127.0.0.1:0 CODID_DATA_DIR=$tmp/var CODID_SHARE_DIR=$root/usr/share/codid \
    "$root/usr/bin/codid" config --config "$conf" >"$tmp/config.out" 2>&1
if grep -Eq '^max_batch +=.*# default$' "$tmp/config.out" &&
    grep -Eq "^share_dir += $root/usr/share/codid +# env CODID_SHARE_DIR$" "$tmp/config.out"; then
    ok installed_config_effective
else bad installed_config_effective "$(cat "$tmp/config.out")"; fi

CODID_LISTEN=127.0.0.1:0 CODID_DATA_DIR=$tmp/var CODID_SHARE_DIR=$root/usr/share/codid \
    "$root/usr/bin/codid" serve --config "$conf" 2>"$tmp/log" &
pid=$!
cd "$ROOT" || exit 1
if ! await_port "$tmp/log"; then
    bad installed_serve "no 'listening on' line; log: $(head -c 1000 "$tmp/log")"
    finish
fi
code=$(curl -s -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$port/healthz")
if [ "$code" = 200 ] && grep -q '"ok"' "$tmp/body"; then ok installed_healthz
else bad installed_healthz "$code $(cat "$tmp/body")"; fi

if await_ok "http://127.0.0.1:$port/readyz" 1200; then ok installed_readyz
else
    ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")
    bad installed_readyz "$ready; log: $(tail -5 "$tmp/log")"
fi
# The default model comes from the installed share dir when it was installed,
# and otherwise the daemon says where it looked.
if [ -d "$root/usr/share/codid/models/cifar10-base" ]; then
    if grep -q "($root/usr/share/codid/models/cifar10-base)" "$tmp/log"; then ok installed_model_loaded
    else bad installed_model_loaded "log: $(grep -i model "$tmp/log")"; fi
else
    if grep -q "under $root/usr/share/codid: using random-tiny" "$tmp/log"; then ok installed_model_looked_up
    else bad installed_model_looked_up "log: $(grep -i model "$tmp/log")"; fi
fi
code=$(curl -s -o "$tmp/img.png" -w '%{http_code}' -H 'Accept: image/png' -d '{"n":1,"steps":2,"seed":1}' \
    "http://127.0.0.1:$port/v1/generate")
if [ "$code" = 200 ] && [ "$(head -c 8 "$tmp/img.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
    ok installed_generate_png
else bad installed_generate_png "$code"; fi
if [ -f "$tmp/var/codid.db" ]; then ok data_in_data_dir; else bad data_in_data_dir "no $tmp/var/codid.db"; fi

stop_daemon
if [ $stop_rc = 0 ]; then ok installed_sigterm_exit_0; else bad installed_sigterm_exit_0 "exit $stop_rc"; fi

# ---- the container's runtime packages ------------------------------------------
# Each shared library the binary links must come from a package that
# deploy/Dockerfile's runtime stage installs, or from one of their
# dependencies (dpkg knows which).
if command -v dpkg-query >/dev/null; then
    listed=$(sed -n '/^FROM .* AS runtime/,$p' deploy/Dockerfile | grep -oE '\b(lib[a-z0-9.+-]+|zlib1g|curl|ca-certificates)\b' | sort -u)
    closure=$listed
    frontier=$listed
    for _ in 1 2 3 4 5 6; do
        next=$(dpkg-query -W -f='${Depends},${Pre-Depends}\n' $frontier 2>/dev/null |
            tr ',|' '\n\n' | sed 's/([^)]*)//; s/:any//; s/ //g' | grep . | sort -u)
        frontier=$(comm -13 <(sort -u <<<"$closure") <(sort -u <<<"$next"))
        [ -z "$frontier" ] && break
        closure=$(printf '%s\n%s\n' "$closure" "$frontier" | sort -u)
    done
    missing=
    for lib in $(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|x86_64|AArch64|aarch64/ {print $NF; exit}')
        [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null)
        pkg=${pkg%%:*}
        [ -n "$pkg" ] && grep -qx "$pkg" <<<"$closure" || missing="$missing $lib($pkg)"
    done
    if [ -z "$missing" ]; then ok dockerfile_runtime_packages
    else bad dockerfile_runtime_packages "not provided by the runtime stage:$missing"; fi
else
    echo "skip dockerfile_runtime_packages: no dpkg"
fi

finish
