#!/bin/bash
# The layers' direction: an #include may name only its own layer or one below.
#   core <- io, ops <- spec <- train <- api <- tools       (docs/architecture.md)
#   io <- text (tokenizers, vector indexes) <- train
# The public headers in include/graphrun/ belong to the layer that defines
# what they declare: Tensor, Error, version and ThreadBudget to core, the
# training options to train, Model and graphrun.hpp to api.
# io and ops are side by side: neither includes the other.
# Usage: tests/layers.sh SOURCE_DIR   (ctest runs it); prints each wrong include
# as file:line and exits 1. It first proves it can fail, on a planted include.
set -u
src=$1

layer_of() {  # a path -> its layer, or nothing for files outside the layers
    case $1 in
        engine/core/*) echo core ;;
        engine/io/*) echo io ;;
        engine/text/*) echo text ;;
        ops/*) echo ops ;;
        engine/spec/*) echo spec ;;
        engine/train/*) echo train ;;
        include/graphrun/tensor.hpp | include/graphrun/error.hpp | include/graphrun/version.hpp | include/graphrun/thread_budget.hpp) echo core ;;
        include/graphrun/training.hpp) echo train ;;
        graphrun/tensor.hpp | graphrun/error.hpp | graphrun/version.hpp | graphrun/thread_budget.hpp) echo core ;;  # as included
        graphrun/training.hpp) echo train ;;
        engine/api/* | include/graphrun/* | graphrun/*) echo api ;;
        tools/*) echo tools ;;
    esac
}

# What each layer may include besides itself.
declare -A allowed=(
    [core]="core"
    [io]="core io"
    [ops]="core ops"
    [text]="core io text"
    [spec]="core io ops spec"
    [train]="core io ops spec text train"
    [api]="core io ops spec text train api"
    [tools]="core io ops spec text train api tools"
)

# check DIR: every wrong include in DIR's layered files; returns their count.
check() {
    local dir=$1 wrong=0 file from line number target to
    while IFS= read -r file; do
        from=$(layer_of "$file")
        [ -n "$from" ] || continue
        number=0
        while IFS= read -r line; do
            number=$((number + 1))
            [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
            target=${BASH_REMATCH[1]}
            to=$(layer_of "$target")
            [ -n "$to" ] || continue
            if [[ " ${allowed[$from]} " != *" $to "* ]]; then
                echo "$file:$number: the $from layer includes \"$target\" of the $to layer (it may include: ${allowed[$from]})"
                wrong=$((wrong + 1))
            fi
        done <"$dir/$file"
    done < <(cd "$dir" && find engine ops tools include -name '*.hpp' -o -name '*.cpp' | sort)
    return $((wrong > 0 ? 1 : 0))
}

# The check must be able to fail: a core file that names an op.
planted=$(mktemp -d)
trap 'rm -rf "$planted"' EXIT
mkdir -p "$planted/engine/core" "$planted/ops" "$planted/tools" "$planted/include"
printf '#include "engine/core/graph.hpp"\n#include "ops/builtin.hpp"\n' >"$planted/engine/core/graph.cpp"
if out=$(check "$planted") || ! grep -q 'engine/core/graph.cpp:2: the core layer includes "ops/builtin.hpp"' <<<"$out"; then
    echo "FAIL: the check did not catch a planted include: $out"
    exit 1
fi
echo "ok: a planted wrong include is caught"

if check "$src"; then
    echo "ok: every include points down the layers"
else
    echo "FAIL: includes against the layers' direction (above)"
    exit 1
fi
