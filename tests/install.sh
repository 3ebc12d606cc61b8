#!/bin/bash
# The library as a user gets it: install to a temporary prefix, build
# examples/embed against the installed CMake package (and again with
# pkg-config), run it on a checkpoint from a short training run.
# Usage: tests/install.sh BUILD_DIR SOURCE_DIR   (ctest runs it)
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
for f in include/graphrun/graphrun.hpp include/graphrun/model.hpp lib/cmake/graphrun/graphrunConfig.cmake lib/pkgconfig/graphrun.pc bin/graphrun \
    lib/libgraphrun.so.0 share/bash-completion/completions/graphrun; do
    [ -e "$work/prefix/$f" ] || { echo "FAIL: the install lacks $f"; exit 1; }
done
# Only the public headers, and they name nothing of oneDNN, oneTBB, yaml-cpp or the engine's insides.
extra=$(cd "$work/prefix/include" && find . -type f ! -path './graphrun/*.hpp' -o -type f -path './graphrun/*/*' | head -5)
[ -z "$extra" ] || { echo "FAIL: the install holds headers besides include/graphrun/*.hpp: $extra"; exit 1; }
if grep -rqE '#include [<"](dnnl|oneapi|tbb|yaml-cpp|engine/|ops/)' "$work/prefix/include"; then
    echo "FAIL: a public header includes a dependency or an internal header:"
    grep -rnE '#include [<"](dnnl|oneapi|tbb|yaml-cpp|engine/|ops/)' "$work/prefix/include"
    exit 1
fi
if grep -rqF -e "$src" -e "$build" "$work/prefix/include"; then
    echo "FAIL: installed headers name the source or build tree"
    exit 1
fi
readelf -d "$work/prefix/lib/libgraphrun.so.0" | grep -q "SONAME.*\[libgraphrun.so.0\]" || { echo "FAIL: libgraphrun.so.0 has no SONAME libgraphrun.so.0"; exit 1; }
grep -q "complete .*-F _graphrun graphrun" "$work/prefix/share/bash-completion/completions/graphrun" || { echo "FAIL: the installed completion registers nothing"; exit 1; }
echo "ok: installed to a temporary prefix"

# A checkpoint to embed with: one short epoch of the real model.
(cd "$src" && "$work/prefix/bin/graphrun" graphs/siamese.yaml --set train.epochs=1 --set data.synthetic.samples=64 --out "$work/run" >/dev/null 2>&1)

# The example, built against the installed package only.
cmake -S "$src/examples/embed" -B "$work/embed" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/embed" -j 2 >/dev/null
# The shared library's consumer found graphrun and nothing else.
found=$(grep -E '^(dnnl|TBB|fmt|yaml-cpp|nlohmann_json|MPI|OpenMP)[A-Za-z_]*(_DIR|_FOUND|_LIBRARY)[:=]' "$work/embed/CMakeCache.txt" | grep -v NOTFOUND | head -3 || true)
[ -z "$found" ] || { echo "FAIL: building against the shared library found dependencies: $found"; exit 1; }
readelf -d "$work/embed/embed" | grep -q "NEEDED.*libgraphrun.so.0" || { echo "FAIL: the example does not link libgraphrun.so.0"; exit 1; }
out=$("$work/embed/embed" "$src/graphs/siamese.yaml" "$work/run/checkpoint.safetensors" "5 17 3 99" "5 17 3 99 250")
echo "$out"
grep -q "^graphrun $(cd "$src" && sed -n 's/^project(graphrun VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)$" <<<"$out" || { echo "FAIL: the example reports another version"; exit 1; }
# Its own cosine of the two branch embeddings agrees with the graph's similarity node.
read -r mine graphs <<<"$(sed -n 's/^cosine similarity \([-0-9.]*\) (the graph.s similarity node: \([-0-9.]*\))$/\1 \2/p' <<<"$out")"
[ -n "$mine" ] && awk -v a="$mine" -v b="$graphs" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' || { echo "FAIL: the two similarities differ"; exit 1; }
echo "ok: examples/embed built against the CMake package and ran"

# The same program against the static libraries (find_package(graphrun COMPONENTS static)).
cmake -S "$src/examples/embed" -B "$work/embed_static" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release -DEMBED_STATIC=ON >/dev/null
cmake --build "$work/embed_static" -j 2 >/dev/null
readelf -d "$work/embed_static/embed" | grep -q "libgraphrun.so" && { echo "FAIL: the static build links the shared library"; exit 1; }
"$work/embed_static/embed" "$src/graphs/siamese.yaml" "$work/run/checkpoint.safetensors" "1 2 3" "4 5 6" | grep -q "^cosine similarity" || { echo "FAIL: the static build"; exit 1; }
echo "ok: examples/embed built against the static libraries and ran"

# The same program through pkg-config (the shared library).
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" g++ -std=c++20 -O1 "$src/examples/embed/embed.cpp" -o "$work/embed_pc" \
    $(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs graphrun)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/embed_pc" "$src/graphs/siamese.yaml" "$work/run/checkpoint.safetensors" "1 2 3" "4 5 6" | grep -q "^cosine similarity" ||
    { echo "FAIL: the pkg-config build"; exit 1; }
echo "ok: examples/embed built with pkg-config and ran"
# examples/answer: a run trained on text, its model and an index from C++.
(cd "$src" && "$work/prefix/bin/graphrun" tests/specs/text_pairs.yaml --out "$work/text" >/dev/null 2>&1)
cut -f2 "$src/tests/specs/text_data/test.tsv" >"$work/corpus.txt"
"$work/prefix/bin/graphrun" index "$work/text" --data "$work/corpus.txt" --out "$work/index" 2>/dev/null
cmake -S "$src/examples/answer" -B "$work/answer" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/answer" -j 2 >/dev/null
out=$(printf 'json parser\naudio mixer\n' | "$work/answer/answer" "$work/text" "$work/index")
echo "$out"
[ "$(grep -c '^query: ' <<<"$out")" = 2 ] && [ "$(grep -c '^  ' <<<"$out")" = 10 ] || { echo "FAIL: examples/answer did not answer 2 queries with 5 lines each"; exit 1; }
# Its similarity is graphrun score's.
mine=$(printf 'json parser\tfast json objects the arrays\n' | "$work/answer/answer" "$work/text" | cut -f1)
theirs=$("$work/prefix/bin/graphrun" score "$work/text" "json parser" "fast json objects the arrays" | sed -n 's/^similarity *//p')
awk -v a="$mine" -v b="$theirs" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' || { echo "FAIL: answer's similarity $mine, graphrun score's $theirs"; exit 1; }
echo "ok: examples/answer built against the CMake package and answered"
echo "all passed"
