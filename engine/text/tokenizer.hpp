// Text to token ids, the same way at training and at use: a tokenizer is made
// (and, for words and sentencepiece, trained) from the training split's texts,
// saved beside the model, and loaded from there by everything that reads text.
//
// Ids: 0 is padding for every type. bytes: UTF-8 byte b is id b + 1 (257 ids).
// words and sentencepiece: 1 is unknown, 2.. the vocabulary's entries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun::text {

// What the spec asks for (data.text.tokenizer).
struct TokenizerConfig {
    std::string type = "bytes";     // bytes | words | sentencepiece
    std::int64_t vocab = 0;         // ids in all, padding and unknown included; 0: the embedding's vocab (words, sentencepiece)
    bool lowercase = false;         // lowercase (Unicode) before anything else
    std::string model = "unigram";  // sentencepiece: unigram | bpe
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    const TokenizerConfig& config() const { return config_; }
    // The number of ids it can produce: 0 .. vocab_size() - 1.
    virtual std::int64_t vocab_size() const = 0;
    // Appends every token's id: no cut, no padding.
    void encode(std::string_view text, std::vector<std::int32_t>& ids) const;
    // Writes OUT/tokenizer.json (and, for sentencepiece, OUT/tokenizer.model); atomically.
    virtual void save(const std::string& dir) const = 0;

protected:
    explicit Tokenizer(TokenizerConfig config) : config_(std::move(config)) {}
    virtual void encode_normalized(std::string_view text, std::vector<std::int32_t>& ids) const = 0;
    TokenizerConfig config_;
};

// Makes a tokenizer, learning its vocabulary from `texts` (the training split)
// where the type has one. config.vocab must be set (> 0) for words and sentencepiece.
std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerConfig& config, const std::vector<std::string>& texts);

// Loads what save() wrote into `dir`; an error names the file and what is wrong.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// `length` ids for `text`: its tokens, cut at `length`, then padding (0).
// Returns the number of tokens the text has before the cut.
std::int64_t encode_to_length(const Tokenizer& tokenizer, std::string_view text, std::int64_t length, std::int32_t* out,
                              std::vector<std::int32_t>& scratch);

// UTF-8 checks and case folding (C.UTF-8's towlower on each code point).
bool valid_utf8(std::string_view s);
std::string lowercase(std::string_view s);

}  // namespace graphrun::text
