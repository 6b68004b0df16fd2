#!/usr/bin/env bash
# Every C and C++ file of the tree is formatted as .clang-format says
# (fix with: clang-format -i $(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')).
set -u
cd "$(dirname "$0")/.." || exit 1
passed=0 failed=0
if ! command -v clang-format >/dev/null; then
    echo "FAIL clang-format: not installed (make deps installs it)"
    echo "0 passed, 1 failed"
    exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' 2>/dev/null || find util engine jobs api server tests bench -name '*.[ch]' -o -name '*.[ch]pp')
unformatted=()
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if [ ${#unformatted[@]} -eq 0 ]; then
    echo "ok ${#files[@]} files formatted as .clang-format says"
    passed=1
else
    echo "FAIL formatting: ${#unformatted[@]} files differ from .clang-format: ${unformatted[*]}"
    failed=1
fi
# The check tells a formatted file from one that is not.
probe=$(mktemp --suffix=.c)
printf 'int f(int x) {\n    return x;\n}\n' >"$probe"
if clang-format --style="file:$PWD/.clang-format" --dry-run -Werror "$probe" >/dev/null 2>&1; then
    echo "ok a formatted file passes"; passed=$((passed + 1))
else
    echo "FAIL a formatted file is refused"; failed=$((failed + 1))
fi
printf 'int  f( int x ){return x;}\n' >"$probe"
if clang-format --style="file:$PWD/.clang-format" --dry-run -Werror "$probe" >/dev/null 2>&1; then
    echo "FAIL the check passes a badly formatted file"; failed=$((failed + 1))
else
    echo "ok a badly formatted file is caught"; passed=$((passed + 1))
fi
rm -f "$probe"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
