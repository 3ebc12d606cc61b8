#!/bin/bash
# Every bad input in tests/bad_inputs/cases.txt: graphrun exits with the status
# the case names and its message holds each text the case lists.
# Usage: tests/bad_inputs.sh GRAPHRUN_BINARY SOURCE_DIR   (ctest runs it)
set -u
graphrun=$1
src=$2
program=$graphrun
source "$(dirname "$0")/expect.sh"

cases=0
while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    IFS='|' read -r -a fields <<<"$line"
    status=$(echo "${fields[0]}" | xargs)
    args=${fields[1]//\{dir\}/tests/bad_inputs}
    args=${args//\{work\}/$work}
    texts=()
    for ((k = 2; k < ${#fields[@]}; ++k)); do
        text="${fields[k]# }"
        texts+=("${text% }")
    done
    # shellcheck disable=SC2086  # the arguments are split on spaces on purpose
    expect "$status" "${texts[@]}" -- $args
    cases=$((cases + 1))
done <"$src/tests/bad_inputs/cases.txt"
[ "$cases" -ge 40 ] || fail "only $cases cases read from cases.txt"
finish
