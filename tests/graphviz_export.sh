#!/bin/bash
# graphviz_export end to end: it draws what `graphrun dump` writes, the DOT is
# valid Graphviz, and a bad file is refused with exit status 2 and a message
# that says what is wrong.
# Usage: tests/graphviz_export.sh GRAPHVIZ_EXPORT_BINARY GRAPHRUN_BINARY SOURCE_DIR   (ctest runs it)
set -u
exporter=$1
graphrun=$2
src=$3
program=$exporter
source "$(dirname "$0")/expect.sh"

have_dot=false
command -v dot >/dev/null && have_dot=true

# The Siamese graph, dumped by graphrun, drawn.
if (cd "$src" && "$graphrun" dump graphs/siamese.yaml -o "$work/graph.json"); then
    echo "ok: graphrun dump graphs/siamese.yaml"
    expect 0 -- "$work/graph.json" -o "$work/graph.dot"
    names=$(grep -o '"name": *"[^"]*"' "$work/graph.json" | sed 's/^"name": *"\(.*\)"$/\1/' | sort -u)
    count=$(grep -c . <<<"$names")
    [ "$count" -ge 30 ] || fail "found only $count names in the dump; is the name extraction still right?"
    missing=0
    while read -r name; do
        grep -qF -- "\"$name" "$work/graph.dot" || { fail "the DOT lacks the node '$name'"; missing=$((missing + 1)); }
    done <<<"$names"
    [ "$missing" = 0 ] && echo "ok: the DOT names all $count names of the dump"
    grep -qF 'subgraph "cluster_loss"' "$work/graph.dot" || fail "the DOT has no cluster for the contrastive loss"
    if $have_dot; then
        dot -Tsvg "$work/graph.dot" -o /dev/null && echo "ok: dot parses the DOT" || fail "dot -Tsvg rejects the DOT"
        expect 0 -- "$work/graph.json" -T svg -o "$work/graph.svg"
        grep -q '<svg' "$work/graph.svg" 2>/dev/null || fail "-T svg wrote no SVG"
    fi
else
    fail "graphrun dump graphs/siamese.yaml failed; the export checks of the Siamese graph did not run"
fi

# Node names come from user files: quotes and backslashes must not break the DOT.
cat >"$work/odd_names.json" <<'EOF'
{"format": "graphrun-graph", "version": 1, "name": "odd \"graph\"", "nodes": [
  {"name": "in \"quoted\"", "kind": "input", "op": "input", "inputs": [], "outputs": [{"shape": ["N", 3], "dtype": "float32"}], "parameters": 0},
  {"name": "back\\slash\\N", "kind": "op", "op": "neg", "inputs": [{"node": "in \"quoted\"", "output": 0}],
   "outputs": [{"shape": ["N", 3], "dtype": "float32"}], "parameters": 0, "composite": {"kind": "odd", "name": "a}b\"c"}}]}
EOF
expect 0 'in \"quoted\"' 'back\\slash\\N' -- "$work/odd_names.json"
if $have_dot; then
    "$exporter" "$work/odd_names.json" | dot -Tsvg -o /dev/null && echo "ok: dot parses the DOT of odd names" ||
        fail "dot rejects the DOT of odd names"
fi

# Rendering: -o written whole or not at all; a missing dot named with its fix.
mkdir -p "$work/no_dot" "$work/bad_dot"
# A dot that writes half a file and fails.
printf '#!/bin/sh\necho "<svg half"\nexit 1\n' >"$work/bad_dot/dot"
chmod +x "$work/bad_dot/dot"
mkdir -p "$work/rendered"
expect_path="$work/no_dot" expect 2 "apt-get install graphviz" "-T dot" -- "$work/odd_names.json" -T svg -o "$work/rendered/none.svg"
expect_path="$work/bad_dot:$PATH" expect 1 "dot -Tsvg failed" -- "$work/odd_names.json" -T svg -o "$work/rendered/half.svg"
[ -z "$(ls -A "$work/rendered")" ] || fail "a failed render left files: $(ls "$work/rendered")"

# Arguments.
expect 0 "usage:" -- --help
expect 2 "unknown option '--format'" "usage:" -- "$work/odd_names.json" --format svg
expect 2 "no graph given" -- 
expect 2 "-T expects dot, svg or png" -- "$work/odd_names.json" -T pdf
# Without -o the drawing goes to standard output, an image too (`-T svg > graph.svg`).
expect 0 "digraph" -- "$work/odd_names.json"
if $have_dot; then
    expect 0 "<svg" "</svg>" -- "$work/odd_names.json" -T svg
    (cd "$src" && "$exporter" "$work/odd_names.json" -T png 2>/dev/null | head -c 8 | grep -q PNG) && echo "ok: -T png to stdout" || fail "-T png wrote no PNG to stdout"
fi
# The documented path, tools/graphviz_export: a launcher of the program in build/.
if [ -x "$src/build/graphviz_export" ]; then
    program=$src/tools/graphviz_export expect 0 "usage: graphviz_export" -- --help
    program=$src/tools/graphviz_export expect 0 "digraph" -- "$work/odd_names.json"
fi

# Bad files: exit 2, one line saying what, where and what was expected.
printf '{"format": "graphrun-graph", "version": 99, "name": "g", "nodes": []}' >"$work/v99.json"
expect 2 "graphviz_export: " "v99.json" "version 99" "reads version 1" -- "$work/v99.json"
printf '{"format": ' >"$work/cut.json"
expect 2 "cut.json" "not JSON" "byte" -- "$work/cut.json"
expect 2 "none.json" "cannot open" -- "$work/none.json"
printf '{"format": "onnx", "version": 1}' >"$work/onnx.json"
expect 2 '"format" is "onnx"' "graphrun-graph" -- "$work/onnx.json"
cat >"$work/ghost.json" <<'EOF'
{"format": "graphrun-graph", "version": 1, "name": "g", "nodes": [
  {"name": "a", "kind": "op", "op": "neg", "inputs": [{"node": "ghost", "output": 0}], "outputs": [{"shape": [], "dtype": "float32"}], "parameters": 0}]}
EOF
expect 2 'nodes[0] ("a")' "'ghost' does not exist" -- "$work/ghost.json"
printf '{"format": "graphrun-graph", "version": 1, "name": "g", "nodes": [{"name": 7}]}' >"$work/typed.json"
expect 2 'nodes[0]: "name" is 7, expected a string' -- "$work/typed.json"
printf '{"format": "graphrun-graph", "version": 1, "name": "g", "nodes": [{"name": "a", "kind": "input", "op": "input", "inputs": [], "parameters": 0}]}' >"$work/no_outputs.json"
expect 2 'nodes[0] ("a")' '"outputs" is missing' -- "$work/no_outputs.json"
printf '{"format": "graphrun-graph", "version": 1, "name": "g", "nodes": [{"name": "a", "kind": "input", "op": "input", "inputs": [], "parameters": -3, "outputs": []}]}' >"$work/negative.json"
expect 2 '"parameters" is -3' -- "$work/negative.json"

finish
