#!/usr/bin/env bash
# systemd_verify.test.sh - deploy/codid.service as `make install` writes it:
# `systemd-analyze verify` finds no error or warning (unknown keys, bad
# values, a missing binary), and the unit keeps its promises: restart on
# failure but not on bad settings, a bounded stop, the sandbox, and no
# MemoryDenyWriteExecute (libtorch's oneDNN JIT needs W+X pages).
# Without systemd-analyze (package systemd) it reports itself skipped.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/codid
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; exit $((failed > 0)); }

if ! command -v systemd-analyze >/dev/null; then
    echo "skipped: no systemd-analyze (apt-get install systemd)"
    finish
fi
if [ ! -x "$BIN" ]; then
    bad build "$BIN is missing"
    finish
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

root=$tmp/root
if ! make -s -o "$BUILD/codid" install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr >"$tmp/make.log" 2>&1; then
    bad make_install "$(tail -5 "$tmp/make.log")"
    finish
fi
installed=$root/usr/lib/systemd/system/codid.service
# verify wants ExecStart's binary to exist: the staged copy stands in for
# /usr/bin/codid.
mkdir -p "$tmp/units"
unit=$tmp/units/codid.service
sed "s|^ExecStart=/usr/bin/codid |ExecStart=$root/usr/bin/codid |" "$installed" >"$unit"
if grep -q "^ExecStart=$root/usr/bin/codid serve --config /etc/codid/codid.conf$" "$unit"; then
    ok exec_start_from_prefix
else bad exec_start_from_prefix "$(grep ExecStart "$installed")"; fi

systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1
rc=$?
if [ $rc = 0 ] && [ ! -s "$tmp/verify.log" ]; then ok verify_clean
else bad verify_clean "exit $rc: $(cat "$tmp/verify.log")"; fi

# verify must be able to fail here: a unit whose binary is missing.
sed "s|^ExecStart=[^ ]*|ExecStart=$tmp/no-such-codid|" "$unit" >"$tmp/units/broken.service"
systemd-analyze verify "$tmp/units/broken.service" >"$tmp/broken.log" 2>&1
if grep -q "no-such-codid" "$tmp/broken.log"; then ok verify_catches_missing_binary
else bad verify_catches_missing_binary "no complaint: $(cat "$tmp/broken.log")"; fi

# The unit's promises, one directive each.
for d in Restart=on-failure RestartPreventExitStatus=2 KillSignal=SIGTERM DynamicUser=yes \
    StateDirectory=codid ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' ProtectKernelTunables=yes LockPersonality=yes; do
    if grep -qx "$d" "$unit"; then ok "has $d"; else bad "has $d" "missing from the unit"; fi
done
if grep -Eq '^TimeoutStopSec=[0-9]+s?$' "$unit"; then ok timeout_stop_bounded
else bad timeout_stop_bounded "$(grep TimeoutStopSec "$unit")"; fi
if grep -Eq '^MemoryMax=[0-9]+[KMGT]?$' "$unit"; then ok memory_max
else bad memory_max "$(grep MemoryMax "$unit")"; fi
if ! grep -Eq '^MemoryDenyWriteExecute=(yes|true|1|on)' "$unit"; then ok no_memory_deny_write_execute
else bad no_memory_deny_write_execute "would break libtorch's JIT kernels"; fi

# The unit's config path is the one make install writes.
if [ -f "$root/etc/codid/codid.conf" ]; then ok config_where_unit_reads
else bad config_where_unit_reads "no $root/etc/codid/codid.conf"; fi

finish
