// The sentencepiece tokenizer (Debian's libsentencepiece): trained on the
// training split's texts as a unigram or BPE model, saved as tokenizer.model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/text/tokenizer.hpp"

namespace graphrun::text {

std::unique_ptr<Tokenizer> train_sentencepiece(const TokenizerConfig& config, const std::vector<std::string>& texts);
std::unique_ptr<Tokenizer> load_sentencepiece(const TokenizerConfig& config, const std::string& model_path);

}  // namespace graphrun::text
