#!/bin/sh
# SPDX-License-Identifier: MIT
# Fails when a C file of the tree uses a banned function (the list below)
# or is not formatted by the committed .clang-format (when clang-format
# is installed). Run by `meson test --suite style` (tests/meson.build).
top=${1:-.}
cd "$top" || exit 2
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find . -name '*.[ch]' -not -path './build*')
[ -n "$files" ] || { echo "no C files found"; exit 1; }
rc=0
hits=$(grep -n -E '(^|[^_a-zA-Z0-9.>])(strcpy|strcat|sprintf|vsprintf|strtok|gets|atoi|atol|atoll|alloca|strncpy)[[:space:]]*\(' $files | grep -v 'banned-ok')
if [ -n "$hits" ]; then
    echo "banned functions (use snprintf, memcpy with a length, strtol, strtok_r ...):"
    echo "$hits"
    rc=1
fi
if command -v clang-format >/dev/null 2>&1; then
    bad=""
    for f in $files; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
    done
    if [ -n "$bad" ]; then
        echo "not formatted (run: clang-format -i$bad)"
        rc=1
    fi
fi
[ $rc -eq 0 ] && echo "ok: $(echo "$files" | wc -w) files checked"
exit $rc
