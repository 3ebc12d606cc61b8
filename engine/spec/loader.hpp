// YAML -> spec::Spec. The loader checks everything that can be checked without
// the op registry: the document's structure, key names, value types and
// ranges, input shapes, node names. What needs the ops (attributes, inputs,
// shapes) is the builder's job (builder.hpp). The format is docs/spec.md.
//
// Every error is a SpecError whose message starts with file:line:column.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/spec/spec.hpp"

namespace graphrun::spec {

// `overrides` are "KEY=VALUE" strings from the command line's --set:
// KEY a dotted path (train.epochs, train.optimizer.lr, data.synthetic.samples,
// nodes.left_lstm.units: nodes and inputs are addressed by name), VALUE a YAML
// value (1 is an integer, 0.5 a number, true a boolean). They are applied to the
// YAML tree before it is read, and errors in them name `--set KEY`.
Spec load_spec_file(const std::string& path, const std::vector<std::string>& overrides = {});
// `name` is the spec's name unless the YAML sets one; locations read "<string>:L:C".
Spec load_spec_string(const std::string& yaml, const std::string& name, const std::vector<std::string>& overrides = {});

// Helpers the builder shares (engine/spec/spec.cpp).

// The candidate within 2 edits of `word`, the closest first; none when nothing is near.
std::optional<std::string> near_miss(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);
std::string join(const std::vector<std::string>& words);  // "a, b, c"

// Letters, digits, '_' and '-': '.' and '/' name parameters ("left_lstm.bias")
// and generated nodes ("left_lstm/lengths"), and '.' separates a --set path.
void check_name(const Location& where, const std::string& what, const std::string& name);
// Inputs and nodes share one namespace: a node's inputs may name either.
void check_unique_names(const Spec& spec);

// The largest tensor a spec may declare: 2^31 elements. Bigger is a typo, and
// refusing it here is cheaper than an allocation failure later.
inline constexpr std::int64_t kMaxElements = std::int64_t{1} << 31;
// The product of `dims`, or -1 when it exceeds kMaxElements (never overflows).
std::int64_t checked_elements(const std::vector<std::int64_t>& dims);
// Throws "<what> (a, b) is too large: ... elements" when the product exceeds kMaxElements.
void check_size(const Location& where, const std::string& what, const std::vector<std::int64_t>& dims);

// A run's model.yaml: the spec's resolved_yaml with its `run:` section set.
std::string with_run(const Spec& spec, const Spec::Run& run);

}  // namespace graphrun::spec
