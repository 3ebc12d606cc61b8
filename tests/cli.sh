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
expect 0 "graphrun $(sed -n 's/^project(graphrun VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" "oneDNN 2." "instruction set" "oneTBB 20" \
    "threads: " "MPI: " -- --version
expect 2 "no spec given" "usage:" --
expect 2 "unknown option '--epochs'" -- $small --epochs 3
expect 2 "--threads expects a positive whole number, got '0'" -- $small --threads 0
expect 2 "--set expects NAME=VALUE" -- $small --set train.epochs
expect 2 "--resume and --init exclude each other" -- $small --resume --init x.safetensors
expect 2 "unexpected argument" -- $small other.yaml


# Help: the commands, then each command's options with their defaults; exit 0.
expect 0 "commands:" "train " "predict " "graphrun help COMMAND" -- --help
expect 0 "commands:" "completion" -- help
expect 0 "usage: graphrun train SPEC" "--overwrite" "--resume" "threads to run on (default: every core)" -- help train
expect 0 "usage: graphrun train SPEC" "--allow-positive-only" -- train --help
expect 0 "usage: graphrun predict SPEC" "--checkpoint CKPT" "--input NAME=FILE.npy" -- predict --help
expect 0 "usage: graphrun dump" "(default: standard output)" -- dump -h
expect 0 "usage: graphrun train" -- $small --checkpoint x --help  # help wins over a bad option
expect 2 "help: no command 'trian'" "did you mean 'train'" -- help trian
expect 2 "unknown command 'trian'" "did you mean 'train'" -- trian $small

# An option of another command, and a typo: exit 2 naming the command or the option meant.
expect 2 "--checkpoint belongs to 'predict'" -- train $small --checkpoint x.safetensors
expect 2 "--checkpoint belongs to 'predict'" -- $small --checkpoint=x.safetensors
expect 2 "--resume belongs to 'train'" -- predict $small --resume
expect 2 "--out belongs to 'train', 'predict', 'evaluate', 'embed', 'index', 'dump'" -- check $small --out x
expect 2 "unknown option '--thread' for 'train'" "did you mean '--threads'" -- $small --thread 2
expect 2 "unknown option '--chekpoint' for 'predict'" "did you mean '--checkpoint'" -- predict $small --chekpoint x
expect 2 "--threads expects a positive whole number, got 'two'" -- $small --threads=two
expect 2 "--out expects a value" -- $small --out
expect 2 "--resume and --overwrite exclude each other" -- $small --resume --overwrite

# --opt=value and --opt value alike.
expect 0 "epoch 1  train_loss" -- train $small --set=train.epochs=1 --threads=1 --out="$work/equals"
[ -s "$work/equals/checkpoint.safetensors" ] || fail "--out=DIR wrote no checkpoint in DIR"

# A folder holding a run is not trained into again unless asked; the old run stays as it was.
cp "$work/equals/checkpoint.safetensors" "$work/before.safetensors"
expect 2 "already holds a run" "--resume" "--overwrite" -- train $small --set train.epochs=1 --out "$work/equals"
cmp -s "$work/before.safetensors" "$work/equals/checkpoint.safetensors" || fail "a refused run changed the earlier checkpoint"
expect 0 "--overwrite: replacing the run in $work/equals" "epoch 1  train_loss" -- train $small --set train.epochs=1 --set train.seed=9 --out "$work/equals" --overwrite
cmp -s "$work/before.safetensors" "$work/equals/checkpoint.safetensors" && fail "--overwrite kept the old checkpoint"
[ "$(grep -c '"epoch"' "$work/equals/metrics.jsonl")" = 1 ] || fail "--overwrite left the old run's metrics in metrics.jsonl"
mkdir -p "$work/stopped_early" && : >"$work/stopped_early/metrics.jsonl"  # a run killed before its first epoch
expect 0 -- train $small --set train.epochs=1 --out "$work/stopped_early"

# Results on stdout, progress and diagnostics on stderr, the announcement first.
(cd "$src" && "$graphrun" train $small --set train.epochs=1 --out "$work/streams" >"$work/stdout" 2>"$work/stderr")
grep -q "^epoch 1  train_loss" "$work/stdout" && grep -q "^graphrun: done" "$work/stdout" || fail "the results are not on stdout: $(cat "$work/stdout")"
grep -q "step" "$work/stdout" && fail "progress lines on stdout"
head -1 "$work/stderr" | grep -q "^graphrun: training $small" || fail "stderr does not start with the training line: $(head -2 "$work/stderr")"
grep -q "^epoch 1/1 step" "$work/stderr" || fail "no progress on stderr"
echo "ok: results on stdout, progress on stderr"

# gnuplot's own output stays out of the run's; its failure is one line and the run still succeeds.
mkdir -p "$work/noisy_gnuplot"
printf '#!/bin/sh\ncat >/dev/null\necho "gnuplot: no font sans" >&2\necho "second line of noise" >&2\nexit 1\n' >"$work/noisy_gnuplot/gnuplot"
chmod +x "$work/noisy_gnuplot/gnuplot"
expect_path="$work/noisy_gnuplot:$PATH" expect 0 "no training picture: gnuplot failed" "gnuplot: no font sans" -- train $small --set train.epochs=1 --out "$work/noisy"
output=$(cd "$src" && PATH="$work/noisy_gnuplot:$PATH" "$graphrun" plot "$work/noisy" 2>&1)
grep -q "second line of noise" <<<"$output" && fail "gnuplot's output leaked: $output"
ls "$work/noisy" | grep -q "training.svg" && fail "a failed gnuplot left a file: $(ls "$work/noisy")"

# Bash completion from the parser: commands, then the options of the command typed.
expect 0 "complete -o filenames" "_graphrun" -- completion bash
expect 2 "expected the shell, bash" -- completion zsh
(cd "$src" && "$graphrun" completion bash) >"$work/completion.bash"
complete_words() {  # the words bash would offer after the command line "$@" (the last word is being typed)
    bash -c 'source "$1"; shift; COMP_WORDS=(graphrun "$@"); COMP_CWORD=$#; _graphrun; echo "${COMPREPLY[*]}"' _ "$work/completion.bash" "$@"
}
[[ " $(complete_words tr) " == *" train "* ]] && echo "ok: completes the command" || fail "no 'train' for 'graphrun tr': $(complete_words tr)"
[[ " $(complete_words predict x.yaml --che) " == *" --checkpoint "* ]] && echo "ok: completes predict's options" ||
    fail "no --checkpoint for 'graphrun predict x.yaml --che': $(complete_words predict x.yaml --che)"
[[ " $(complete_words train x.yaml --over) " == *" --overwrite "* ]] || fail "no --overwrite for train"
[[ " $(complete_words x.yaml --ove) " == *" --overwrite "* ]] || fail "the short form (graphrun SPEC) completes no train option"
[[ " $(complete_words check x.yaml --) " == *" --checkpoint "* ]] && fail "check offered predict's --checkpoint"

# Training knobs from --set: AdamW and a cosine schedule (100 steps, 10 of warm-up); the epoch
# line and metrics.jsonl carry the last step's rate, 0.01 (1 + cos(pi 89/90)) / 2.
expect 0 "epoch 1  train_loss" "  lr 3.05e-06  " -- train $small --set train.epochs=1 --set train.optimizer.type=adamw \
    --set train.schedule.warmup=10 --set train.schedule.decay=cosine --threads 1 --out "$work/schedule"
grep -q '"lr":3.04[0-9]*e-06' "$work/schedule/metrics.jsonl" || fail "metrics.jsonl lacks the rate: $(cat "$work/schedule/metrics.jsonl")"

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

# Results do not depend on the thread count or the executor: 20 steps of the
# default model (batch 32, cut into two parts per lstm whatever the threads),
# stopped by train.max_steps, give the same checkpoint bytes.
expect 0 "train.max_steps = 20 reached" -- graphs/siamese.yaml --set train.max_steps=20 --threads 1 --out "$work/threads1"
expect 0 -- graphs/siamese.yaml --set train.max_steps=20 --threads 2 --out "$work/threads2"
expect 0 -- graphs/siamese.yaml --set train.max_steps=20 --set train.executor=sequential --threads 2 --out "$work/sequential"
cmp -s "$work/threads1/checkpoint.safetensors" "$work/threads2/checkpoint.safetensors" || fail "--threads 1 and 2 gave different checkpoints"
cmp -s "$work/threads1/checkpoint.safetensors" "$work/sequential/checkpoint.safetensors" || fail "the sequential executor gave another checkpoint"
expect 2 "train.executor must be one of tasks, sequential" -- $small --set train.executor=parallel
expect 0 "plan, training (batch 32): peak" "plan, inference (batch 32): peak" -- check $small
# With train.length_buckets, check runs the padding check train runs first (the refusal: tests/bad_inputs).
expect 0 "length buckets: a batch cut to its longest text gives the padded batch's outputs (1 token input checked" -- check $small --set train.length_buckets.window=4 --set train.length_buckets.multiple=2
expect 0 "length buckets: no batch of the first epoch is cut" -- check $small --set train.length_buckets.window=4

# Task classify, and evaluate on its held-out split.
classify=tests/specs/classify.yaml
expect 0 "val_accuracy" "val_macro_f1" "best $work/classify/best.safetensors" -- $classify --out "$work/classify"
[ -s "$work/classify/best.safetensors" ] || fail "task classify left no best.safetensors"
expect 0 "accuracy" "macro_f1" "confusion (rows: true class, columns: predicted)" "wrote $work/eval.json" -- evaluate $classify --checkpoint "$work/classify/best.safetensors" --out "$work/eval.json"
grep -q '"confusion"' "$work/eval.json" || fail "evaluate wrote no confusion matrix"
expect 0 "accuracy" "wrote $work/classify/eval.json" -- evaluate "$work/classify"
grep -q '"accuracy"' "$work/eval.json" || fail "evaluate wrote no accuracy"
expect 0 "data: 30000 training samples an epoch, 4000 validation samples" "Total params: 33,962" -- check graphs/langid.yaml
expect 2 "a SPEC with --checkpoint CKPT" -- evaluate $classify
expect 0 "gradcheck on 4 samples" "left_lstm.weight_ih" -- gradcheck $small
expect 0 "gradcheck on 4 samples" "lstm.bias_hh" -- gradcheck $classify
printf 'abba\tfr\n' >"$work/bad.tsv"
expect 2 "bad.tsv:1" "'fr'" -- evaluate $classify --checkpoint "$work/classify/best.safetensors" --data "$work/bad.tsv"
expect 2 "task classify expects the loss to be a cross_entropy node" -- $small --set task=classify --out "$work/wrong_task"
expect 2 "unknown task 'clasify'" "did you mean" -- $small --set task=clasify

write_ids "$work/left.npy" 2 6
write_ids "$work/right.npy" 2 8
expect 0 -- predict $small --checkpoint "$work/run/checkpoint.safetensors" --input x1="$work/left.npy" \
    --input x2="$work/right.npy" --output similarity --output left_dense --out "$work/predicted"
for f in similarity.npy left_dense.npy; do
    [ -s "$work/predicted/$f" ] || fail "predict wrote no $f"
done

# From text to answers: a pair model on text, evaluated, scoring, embedding, searching.
pairspec=tests/specs/text_pairs.yaml  # (not $text: expect() uses that name)
expect 0 "val_auc" -- $pairspec --out "$work/text"
for f in model.yaml tokenizer.json checkpoint.safetensors best.safetensors; do
    [ -s "$work/text/$f" ] || fail "the text run left no $f"
done
expect 0 "title: words tokens per text" "body: words tokens per text" -- check $pairspec
expect 0 "pairs              160 (80 similar, 80 dissimilar by random pairing)" "auc " "recall_at_10 " "mrr " "candidates         80" \
    "wrote $work/text/eval.json" -- evaluate "$work/text"
grep -q '"recall_at_10"' "$work/text/eval.json" || fail "evaluate wrote no recall_at_10"
[ -s "$work/text/eval.svg" ] || fail "evaluate drew no eval.svg"
printf 'json parser\tfast json objects\t1\njson parser\tkernel module boot\t0\naudio mixer\tsound volume speakers\t1\n' >"$work/labelled.tsv"
expect 0 "pairs              3 (2 similar, 1 dissimilar)" -- evaluate "$work/text" --data "$work/labelled.tsv" --out "$work/labelled.json"
expect 2 "the words tokenizer's vocab is 60, but the embeddings reading 'title' and 'body' have vocab 40 and 40" -- check $pairspec --set data.text.tokenizer.vocab=60
expect 0 "similarity " "distance " "decision " "threshold" -- score "$work/text" "json parser" "fast json objects the arrays"
printf 'json parser\tfast json objects\naudio mixer\tkernel module the boot\n' >"$work/pairs.tsv"
expect 0 -- score "$work/text" --data "$work/pairs.tsv"
[ "$("$graphrun" score "$work/text" --data "$work/pairs.tsv" | wc -l)" = 2 ] || fail "score --data did not write a line per pair"
cut -f2 "$src/tests/specs/text_data/test.tsv" >"$work/corpus.txt"
expect 0 "wrote $work/vectors.npy (80 x 8 float32, the right branch)" -- embed "$work/text" --side right --data "$work/corpus.txt" --out "$work/vectors.npy"
expect 2 "vectors.npy exists: give --overwrite" -- embed "$work/text" --side right --data "$work/corpus.txt" --out "$work/vectors.npy"
expect 2 "embed needs --side left or --side right" -- embed "$work/text" --data "$work/corpus.txt" --out "$work/v2.npy"
expect 0 "80 lines, exact search" -- index "$work/text" --data "$work/corpus.txt" --out "$work/index"
expect 0 "query 1: json parser" "   1  +0." "line " "query 2: audio mixer" -- search "$work/index" --k 3 "json parser" "audio mixer"
[ "$("$graphrun" search "$work/index" --k 3 "json parser" | grep -c ' line ')" = 3 ] || fail "search --k 3 did not print 3 lines"
expect 0 "80 lines, exact search" -- index "$work/text" --data "$work/corpus.txt" --out "$work/slash/"
expect 0 "query 1: json parser" -- search "$work/slash/" "json parser"
ls -a "$work" | grep -q 'tmp\.' && fail "index left a temporary folder"
expect 0 "80 lines, approximate (HNSW)" -- index "$work/text" --data "$work/corpus.txt" --out "$work/hnsw" --approximate
expect 0 "query 1: json parser" -- search "$work/hnsw" "json parser"
expect 2 "index exists: give --overwrite" -- index "$work/text" --data "$work/corpus.txt" --out "$work/index"
# Bad input: each with file:line (or what) and what was expected, exit 2, nothing half-written.
printf 'json parser\tfast json\nonly one column\n' >"$work/one_column.tsv"
expect 2 "one_column.tsv:2: expected a left and a right text separated by a tab, found no tab" -- score "$work/text" --data "$work/one_column.tsv"
expect 2 "one_column.tsv:2: expected two texts separated by a tab" -- evaluate "$work/text" --data "$work/one_column.tsv"
printf 'json parser\tfast json\n\n' >"$work/empty_line.tsv"
expect 2 "empty_line.tsv:2: expected a left and a right text separated by a tab, found an empty line" -- score "$work/text" --data "$work/empty_line.tsv"
printf 'fine\nbad \xff byte\n' >"$work/bad_utf8.txt"
expect 2 "bad_utf8.txt:2: the line is not valid UTF-8" -- embed "$work/text" --side left --data "$work/bad_utf8.txt" --out "$work/never.npy"
[ -e "$work/never.npy" ] && fail "embed wrote a file for bad input"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$work/long.txt"
expect 2 "long.txt:1: the line is 1100000 bytes long; a text may be at most 1 MB" -- index "$work/text" --data "$work/long.txt" --out "$work/never_index"
[ -e "$work/never_index" ] && fail "index left a folder for bad input"
: >"$work/empty.txt"
expect 2 "empty.txt: the corpus has no lines" -- index "$work/text" --data "$work/empty.txt" --out "$work/never_index"
expect 2 "score takes two texts (left and right), got 1" -- score "$work/text" "only one"
expect 2 "no model.yaml in it: not a run folder" -- score "$work/index" "a" "b"
expect 2 "evaluate RUN takes the run's own weights" -- evaluate "$work/text" --checkpoint "$work/text/best.safetensors"
cp -r "$work/index" "$work/index_cut"
head -n 40 "$work/index/texts.txt" >"$work/index_cut/texts.txt"
expect 2 "texts.txt: 40 lines, but the index holds 80 vectors: the file is cut short or replaced" -- search "$work/index_cut" "json"
cp -r "$work/hnsw" "$work/hnsw_cut"
truncate -s 1000 "$work/hnsw_cut/hnsw.bin"
expect 2 "hnsw.bin: 1000 bytes, but the index was written with" "cut short" -- search "$work/hnsw_cut" "json"
cp -r "$work/index" "$work/npy_cut"
truncate -s 500 "$work/npy_cut/vectors.npy"
expect 2 "vectors.npy" -- search "$work/npy_cut" "json"
# The model retrained in place: the index's vectors came from other weights.
expect 0 -- $pairspec --out "$work/text" --overwrite --set train.seed=2
expect 2 "the index was built by another model" "build the index again" -- search "$work/index" "json"
# A model joined by a distance: its similarity is minus the distance, and
# evaluate, score, index and search say so and rank by it.
distspec=tests/specs/text_distance.yaml
expect 0 "val_auc" -- $distspec --out "$work/euclidean"
expect 0 "metric             euclidean (similarity: minus the euclidean distance)" "auc " "threshold_distance " "recall_at_10 " -- evaluate "$work/euclidean"
grep -q '"metric": "euclidean"' "$work/euclidean/eval.json" || fail "eval.json does not name the metric"
if command -v gnuplot >/dev/null; then  # the pictures draw the distance itself, not a cosine axis
    for svg in training.svg eval.svg; do
        grep -q "euclidean distance of the two embeddings" "$work/euclidean/$svg" || fail "$svg of a euclidean model does not draw the distance"
    done
    grep -q "cosine similarity of the two embeddings" "$work/text/training.svg" || fail "training.svg of a cosine model lost its cosine axis"
fi
expect 0 "similarity -" "(minus the euclidean distance)" "(euclidean)" "euclidean distance at most" -- score "$work/euclidean" "json parser" "fast json objects the arrays"
expect 0 "80 lines, exact search by the euclidean distance" -- index "$work/euclidean" --data "$work/corpus.txt" --out "$work/euclidean_index"
expect 0 "query 1: json parser" "   1  euclidean 0." -- search "$work/euclidean_index" --k 3 "json parser"
grep -q '"metric": "euclidean"' "$work/euclidean_index/index.json" || fail "index.json does not name the metric"
expect 0 "80 lines, approximate (HNSW) search by the euclidean distance" -- index "$work/euclidean" --data "$work/corpus.txt" --out "$work/euclidean_hnsw" --approximate
# 80 vectors, ef 256: HNSW visits them all, so its hits and distances are exact search's.
[ "$("$graphrun" search "$work/euclidean_index" --k 5 "json parser")" = "$("$graphrun" search "$work/euclidean_hnsw" --k 5 "json parser")" ] ||
    fail "HNSW search by the euclidean distance differs from exact search on 80 vectors"
sed 's/"metric": "euclidean"/"metric": "manhattan"/' "$work/euclidean_index/index.json" >"$work/index.json.tmp"
mv "$work/index.json.tmp" "$work/euclidean_index/index.json"
expect 2 "the index was built for a model whose similarity is manhattan" "uses euclidean" -- search "$work/euclidean_index" "json"
expect 0 "val_auc" -- $distspec --out "$work/manhattan" --set nodes.distance.op=manhattan
expect 0 "metric             manhattan" -- evaluate "$work/manhattan"
expect 0 "(minus the manhattan distance)" "manhattan distance at most" -- score "$work/manhattan" "json parser" "fast json objects the arrays"
expect 0 "80 lines, exact search by the manhattan distance" -- index "$work/manhattan" --data "$work/corpus.txt" --out "$work/manhattan_index"
expect 0 "   1  manhattan " -- search "$work/manhattan_index" --k 3 "json parser"
expect 2 "the manhattan distance, which hnswlib cannot search approximately" "without --approximate" -- index "$work/manhattan" --data "$work/corpus.txt" --out "$work/manhattan_hnsw" --approximate
[ -e "$work/manhattan_hnsw" ] && fail "index left a folder for a manhattan model asked for HNSW"
# Weights trained on text do not load into a spec that feeds other ids.
expect 2 "trained on text as words tokens, lowercased" -- $pairspec --set 'data={synthetic: {samples: 64}}' --init "$work/text/checkpoint.safetensors" \
    --out "$work/never_text"

finish
