# Sourced by the command-line tests (cli.sh, graphviz_export.sh): runs a program
# from the source folder and checks its exit status and output.
# Set before use: program (the binary), src (the source folder); optionally
# expect_path (the PATH the program runs with). Counts failures in $failures;
# $work is a scratch folder, removed on exit.
failures=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# expect STATUS 'text that must appear'... -- ARGS...
expect() {
    local status=$1; shift
    local wanted=()
    while [ "$1" != "--" ]; do wanted+=("$1"); shift; done
    shift
    local output got name
    name=$(basename "$program")
    output=$(cd "$src" && PATH="${expect_path:-$PATH}" "$program" "$@" 2>&1)
    got=$?
    if [ "$got" != "$status" ]; then
        fail "$name $* exited $got, expected $status; output:"
        echo "$output" | head -20
        return
    fi
    for text in "${wanted[@]}"; do
        if ! grep -qF -- "$text" <<<"$output"; then
            fail "$name $*: output lacks '$text'; output:"
            echo "$output" | head -20
        fi
    done
    echo "ok: $name $* -> $status"
}

# wait_for FILE TEXT: waits (up to 60 s) until FILE holds TEXT, so a signal is
# sent to a run that has really started and has not finished yet.
wait_for() {
    for ((i = 0; i < 1200; ++i)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "waited 60 s for '$2' in $1"
}

# Ends the test: the failures' count, and the exit status.
finish() {
    if [ "$failures" != 0 ]; then
        echo "$failures failure(s)"
        exit 1
    fi
    echo "all passed"
}
