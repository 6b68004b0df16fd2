#!/usr/bin/env bash
# openapi_lint.test.sh - openapi.yaml passes Redocly's linter with its
# recommended-strict rules (warnings count as errors). The linter is the npm
# package @redocly/cli at the version the Makefile pins, installed by
# `make test` under .cache/redocly; REDOCLY may name another binary.
set -u
cd "$(dirname "$0")/.."
lint=${REDOCLY:-.cache/redocly/node_modules/.bin/redocly}
if [ ! -x "$lint" ]; then
    echo "FAIL openapi_lint: $lint is missing (make test installs it: make redocly)"
    echo "0 passed, 1 failed"
    exit 1
fi
if out=$("$lint" lint --extends=recommended-strict --format=stylish openapi.yaml 2>&1); then
    echo "ok openapi_lint"
    echo "1 passed, 0 failed"
else
    echo "FAIL openapi_lint:"
    sed 's/^/    /' <<<"$out" | tail -n 40
    echo "0 passed, 1 failed"
    exit 1
fi
