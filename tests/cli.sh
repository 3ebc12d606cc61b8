#!/bin/bash
# The graphrun command line end to end: exit status (0 success, 2 a bad spec,
# argument or input file, 1 any other failure) and what the messages say.
# Usage: tests/cli.sh GRAPHRUN_BINARY SOURCE_DIR   (ctest runs it)
set -u
graphrun=$1
src=$2
program=$graphrun
source "$(dirname "$0")/expect.sh"

small=tests/specs/small_siamese.yaml

# write_ids FILE ROWS COLS: a .npy (version 1.0) of int32 token ids, all 1.
write_ids() {
    local header="{'descr': '<i4', 'fortran_order': False, 'shape': ($2, $3), }"
    while [ $(((10 + ${#header} + 1) % 64)) != 0 ]; do header+=" "; done
    {
        printf '\x93NUMPY\x01\x00'
        printf "\\x$(printf %02x $(((${#header} + 1) % 256)))\\x$(printf %02x $(((${#header} + 1) / 256)))"
        printf '%s\n' "$header"
        for ((i = 0; i < $2 * $3; ++i)); do printf '\x01\x00\x00\x00'; done
    } >"$1"
}

# Arguments.
expect 0 "graphrun $(sed -n 's/^project(graphrun VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" -- --version
expect 2 "no spec given" "usage:" --
expect 2 "unknown option '--epochs'" -- $small --epochs 3
expect 2 "--threads expects a positive whole number, got '0'" -- $small --threads 0
expect 2 "--set expects NAME=VALUE" -- $small --set train.epochs
expect 2 "--resume and --init exclude each other" -- $small --resume --init x.safetensors
expect 2 "unexpected argument" -- $small other.yaml

# Specs.
expect 2 "missing.yaml" -- check tests/specs/missing.yaml
expect 2 "cycle.yaml:" "cycle" -- check tests/specs/cycle.yaml
expect 2 "cosine_as_distance.yaml:" "1 - cosine" -- check tests/specs/cosine_as_distance.yaml
expect 2 "train.epoch" "epochs" -- check $small --set train.epoch=3
expect 2 "train.epochs" -- check $small --set train.epochs=many
expect 0 "146,944" -- check graphs/siamese.yaml

# The collapse guard, and going on anyway.
expect 2 "collapse" "train.negatives: 1" "--allow-positive-only" -- train $small --set train.negatives=0 --out "$work/guard"
[ -e "$work/guard/checkpoint.safetensors" ] && fail "the guard left a checkpoint"
expect 0 -- train $small --set train.negatives=0 --set train.epochs=1 --allow-positive-only --out "$work/positive_only"

# A loss that overflows: exit 1, naming the node.
expect 1 "the loss is" "node 'overflowed' (mul)" "there is no checkpoint" -- tests/specs/overflow.yaml --out "$work/overflow"

# A run, then predict from its checkpoint.
expect 0 "val_auc" -- $small --out "$work/run" --threads 1
for f in metrics.jsonl checkpoint.safetensors; do
    [ -s "$work/run/$f" ] || fail "the run wrote no $f"
done
expect 2 "--init: $work/none.safetensors does not exist" -- train $small --init "$work/none.safetensors" --out "$work/init"
expect 2 "does not exist; start without --resume" -- train $small --resume --out "$work/empty"
expect 2 "--checkpoint" -- predict $small --input x1=tests/io_data/i32_3.npy --output similarity --out "$work/predicted"
expect 2 "i32_3.npy" -- predict $small --checkpoint "$work/run/checkpoint.safetensors" --input x1=tests/io_data/i32_3.npy \
    --input x2=tests/io_data/i32_3.npy --output similarity --out "$work/predicted"
# Inspection: the graph as JSON, the profile, the training picture.
expect 0 -- dump graphs/siamese.yaml -o "$work/graph.json"
grep -q '"format": "graphrun-graph"' "$work/graph.json" || fail "dump wrote no graph"
expect 0 '"format": "graphrun-graph"' '"name": "right_lstm"' -- dump $small
expect 0 "profile of" "lstm forward" "lstm backward" "GFLOP/s" "wrote the graph and its profile" -- \
    $small --set train.epochs=1 --profile --dump "$work/profiled.json" --out "$work/profiled"
grep -q '"forward_ms"' "$work/profiled.json" || fail "the dump after --profile has no times"
if command -v gnuplot >/dev/null; then
    [ -s "$work/profiled/training.svg" ] || fail "no training.svg after the run"
    rm -f "$work/profiled/training.svg"
    expect 0 "training.svg" -- plot "$work/profiled"
    [ -s "$work/profiled/training.svg" ] || fail "plot wrote no training.svg"
fi
expect 2 "not a folder" -- plot "$work/no_such_run"
expect 2 "no run folder given" -- plot
mkdir -p "$work/empty_run"
expect 2 "metrics.jsonl: cannot open" -- plot "$work/empty_run"

write_ids "$work/left.npy" 2 6
write_ids "$work/right.npy" 2 8
expect 0 -- predict $small --checkpoint "$work/run/checkpoint.safetensors" --input x1="$work/left.npy" \
    --input x2="$work/right.npy" --output similarity --output left_dense --out "$work/predicted"
for f in similarity.npy left_dense.npy; do
    [ -s "$work/predicted/$f" ] || fail "predict wrote no $f"
done

finish
