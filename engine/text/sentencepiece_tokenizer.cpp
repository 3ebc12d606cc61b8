#include "engine/text/sentencepiece_tokenizer.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "engine/io/atomic_file.hpp"
#include "graphrun/error.hpp"

namespace graphrun::text {

namespace fs = std::filesystem;

namespace {

// The training split's texts, one sentence each, without a temporary file.
class Sentences final : public sentencepiece::SentenceIterator {
public:
    explicit Sentences(const std::vector<std::string>& texts) : texts_(texts) {}
    bool done() const override { return at_ >= texts_.size(); }
    void Next() override { ++at_; }
    const std::string& value() const override { return texts_[at_]; }
    sentencepiece::util::Status status() const override { return {}; }

private:
    const std::vector<std::string>& texts_;
    std::size_t at_ = 0;
};

class SentencePieceTokenizer final : public Tokenizer {
public:
    SentencePieceTokenizer(TokenizerConfig c, std::string model) : Tokenizer(std::move(c)), model_(std::move(model)) {
        const auto status = processor_.LoadFromSerializedProto(model_);
        if (!status.ok()) throw Error(fmt::format("sentencepiece model: {}", status.ToString()));
    }
    std::int64_t vocab_size() const override { return processor_.GetPieceSize(); }
    void save(const std::string& dir) const override {
        io::write_file_atomically((fs::path(dir) / "tokenizer.model").string(), std::as_bytes(std::span(model_.data(), model_.size())));
        const nlohmann::json j{{"format", "graphrun-tokenizer 1"}, {"type", config_.type}, {"lowercase", config_.lowercase},
                               {"model", config_.model},           {"vocab", vocab_size()}};
        const std::string text = j.dump(1) + "\n";
        io::write_file_atomically((fs::path(dir) / "tokenizer.json").string(), std::as_bytes(std::span(text.data(), text.size())));
    }

private:
    void encode_normalized(std::string_view text, std::vector<std::int32_t>& ids) const override {
        std::vector<int> pieces;
        const auto status = processor_.Encode(text, &pieces);
        if (!status.ok()) throw Error(fmt::format("sentencepiece: {}", status.ToString()));
        ids.insert(ids.end(), pieces.begin(), pieces.end());
    }
    std::string model_;  // the serialized model, as saved
    sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Tokenizer> train_sentencepiece(const TokenizerConfig& config, const std::vector<std::string>& texts) {
    if (config.model != "unigram" && config.model != "bpe")
        throw Error(fmt::format("sentencepiece model must be unigram or bpe, got '{}'", config.model));
    // Ids as every graphrun tokenizer has them: 0 padding, 1 unknown; no
    // sentence marks. One thread, every sentence in the given order: the same
    // model on every machine. A small corpus may give fewer pieces than asked.
    const std::unordered_map<std::string, std::string> args{
        {"model_type", config.model},
        {"vocab_size", std::to_string(config.vocab)},
        {"pad_id", "0"},
        {"unk_id", "1"},
        {"bos_id", "-1"},
        {"eos_id", "-1"},
        {"hard_vocab_limit", "false"},
        {"num_threads", "1"},
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"minloglevel", "2"},
    };
    Sentences sentences(texts);
    std::string model;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &model);
    if (!status.ok()) throw Error(fmt::format("training the sentencepiece tokenizer: {}", status.ToString()));
    return std::make_unique<SentencePieceTokenizer>(config, std::move(model));
}

std::unique_ptr<Tokenizer> load_sentencepiece(const TokenizerConfig& config, const std::string& model_path) {
    std::ifstream in(model_path, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open the sentencepiece model", model_path));
    std::stringstream bytes;
    bytes << in.rdbuf();
    try {
        return std::make_unique<SentencePieceTokenizer>(config, bytes.str());
    } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", model_path, e.what()));
    }
}

}  // namespace graphrun::text
