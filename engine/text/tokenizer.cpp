#include "engine/text/tokenizer.hpp"

#include <algorithm>
#include <clocale>
#include <cwctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <locale.h>
#include <nlohmann/json.hpp>

#include "engine/io/atomic_file.hpp"
#include "engine/text/sentencepiece_tokenizer.hpp"
#include "graphrun/error.hpp"

namespace graphrun::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One code point from s at i (s is valid UTF-8); i moves past it.
char32_t next_code_point(std::string_view s, std::size_t& i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : 3;
    char32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) & 0x3F);
    i += static_cast<std::size_t>(extra) + 1;
    return cp;
}

void append_utf8(char32_t cp, std::string& out) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

void write_json(const std::string& path, const json& j) {
    const std::string text = j.dump(1) + "\n";
    io::write_file_atomically(path, std::as_bytes(std::span(text.data(), text.size())));
}

json config_json(const TokenizerConfig& c) {
    json j{{"format", "graphrun-tokenizer 1"}, {"type", c.type}, {"lowercase", c.lowercase}};
    if (c.type == "sentencepiece") j["model"] = c.model;
    return j;
}

// UTF-8 bytes: b -> b + 1.
class ByteTokenizer final : public Tokenizer {
public:
    explicit ByteTokenizer(TokenizerConfig c) : Tokenizer(std::move(c)) {}
    std::int64_t vocab_size() const override { return 257; }
    void save(const std::string& dir) const override {
        json j = config_json(config_);
        j["vocab"] = vocab_size();
        write_json((fs::path(dir) / "tokenizer.json").string(), j);
    }

private:
    void encode_normalized(std::string_view text, std::vector<std::int32_t>& ids) const override {
        for (const char c : text) ids.push_back(static_cast<std::int32_t>(static_cast<unsigned char>(c)) + 1);
    }
};

// Words as torchtext's basic_english splits them: a run of letters and digits
// (any non-ASCII character counts as a letter) is a word; every other
// character but white space is a token of its own ("it's" -> it ' s).
// The vocabulary: the vocab - 2 most frequent words of the training texts
// (ties: the word's bytes in order), after 0 = padding and 1 = unknown.
class WordTokenizer final : public Tokenizer {
public:
    WordTokenizer(TokenizerConfig c, std::vector<std::string> words) : Tokenizer(std::move(c)), words_(std::move(words)) {
        for (std::size_t k = 0; k < words_.size(); ++k) ids_.emplace(words_[k], static_cast<std::int32_t>(k) + 2);
    }
    std::int64_t vocab_size() const override { return static_cast<std::int64_t>(words_.size()) + 2; }
    void save(const std::string& dir) const override {
        json j = config_json(config_);
        j["vocab"] = vocab_size();
        j["words"] = words_;  // id k + 2
        write_json((fs::path(dir) / "tokenizer.json").string(), j);
    }

    template <class F>
    static void split(std::string_view text, F&& word) {
        std::size_t i = 0;
        while (i < text.size()) {
            const auto c = static_cast<unsigned char>(text[i]);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
                ++i;
                continue;
            }
            const auto in_word = [](unsigned char b) { return b >= 0x80 || std::isalnum(b); };
            std::size_t end = i + 1;
            if (in_word(c))
                while (end < text.size() && in_word(static_cast<unsigned char>(text[end]))) ++end;
            word(text.substr(i, end - i));
            i = end;
        }
    }

private:
    void encode_normalized(std::string_view text, std::vector<std::int32_t>& ids) const override {
        split(text, [&](std::string_view w) {
            const auto it = ids_.find(std::string(w));
            ids.push_back(it == ids_.end() ? 1 : it->second);
        });
    }
    std::vector<std::string> words_;
    std::unordered_map<std::string, std::int32_t> ids_;
};

std::unique_ptr<Tokenizer> make_words(const TokenizerConfig& config, const std::vector<std::string>& texts) {
    std::unordered_map<std::string, std::int64_t> counts;
    for (const auto& t : texts) WordTokenizer::split(t, [&](std::string_view w) { ++counts[std::string(w)]; });
    std::vector<std::pair<std::string, std::int64_t>> ranked(counts.begin(), counts.end());
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    const auto keep = std::min<std::size_t>(ranked.size(), static_cast<std::size_t>(config.vocab - 2));
    std::vector<std::string> words;
    words.reserve(keep);
    for (std::size_t k = 0; k < keep; ++k) words.push_back(std::move(ranked[k].first));
    return std::make_unique<WordTokenizer>(config, std::move(words));
}

}  // namespace

void Tokenizer::encode(std::string_view text, std::vector<std::int32_t>& ids) const {
    if (!config_.lowercase) {
        encode_normalized(text, ids);
        return;
    }
    encode_normalized(lowercase(text), ids);
}

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerConfig& config, const std::vector<std::string>& texts) {
    if (config.type == "bytes") return std::make_unique<ByteTokenizer>(config);
    if (config.vocab < 3) throw Error(fmt::format("a {} tokenizer needs a vocab of at least 3 (padding, unknown and a token), got {}", config.type, config.vocab));
    std::vector<std::string> lowered;
    if (config.lowercase) {
        lowered.reserve(texts.size());
        for (const auto& t : texts) lowered.push_back(lowercase(t));
    }
    const auto& from = config.lowercase ? lowered : texts;
    if (config.type == "words") return make_words(config, from);
    if (config.type == "sentencepiece") return train_sentencepiece(config, from);
    throw Error(fmt::format("unknown tokenizer type '{}' (known: bytes, words, sentencepiece)", config.type));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
    const std::string path = (fs::path(dir) / "tokenizer.json").string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open the tokenizer file", path));
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw Error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    try {
        if (j.value("format", "") != "graphrun-tokenizer 1")
            throw Error(fmt::format("{}: expected \"format\": \"graphrun-tokenizer 1\"", path));
        TokenizerConfig c;
        c.type = j.at("type").get<std::string>();
        c.lowercase = j.at("lowercase").get<bool>();
        c.vocab = j.at("vocab").get<std::int64_t>();
        std::unique_ptr<Tokenizer> t;
        if (c.type == "bytes") {
            t = std::make_unique<ByteTokenizer>(c);
        } else if (c.type == "words") {
            t = std::make_unique<WordTokenizer>(c, j.at("words").get<std::vector<std::string>>());
        } else if (c.type == "sentencepiece") {
            c.model = j.at("model").get<std::string>();
            t = load_sentencepiece(c, (fs::path(dir) / "tokenizer.model").string());
        } else {
            throw Error(fmt::format("{}: unknown tokenizer type '{}' (known: bytes, words, sentencepiece)", path, c.type));
        }
        if (t->vocab_size() != c.vocab)
            throw Error(fmt::format("{}: says vocab {}, but its vocabulary holds {} ids", path, c.vocab, t->vocab_size()));
        return t;
    } catch (const json::exception& e) {
        throw Error(fmt::format("{}: {}", path, e.what()));
    }
}

std::int64_t encode_to_length(const Tokenizer& tokenizer, std::string_view text, std::int64_t length, std::int32_t* out,
                              std::vector<std::int32_t>& scratch) {
    scratch.clear();
    tokenizer.encode(text, scratch);
    const auto n = static_cast<std::int64_t>(scratch.size());
    const std::int64_t kept = std::min(n, length);
    std::copy(scratch.begin(), scratch.begin() + kept, out);
    std::fill(out + kept, out + length, 0);
    return n;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        // The lead byte says how many continuation bytes (10xxxxxx) follow.
        const int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
        if (extra < 0 || i + static_cast<std::size_t>(extra) >= s.size() + (extra == 0 ? 1 : 0)) return false;
        for (int k = 1; k <= extra; ++k)
            if ((static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) >> 6) != 0x2) return false;
        i += static_cast<std::size_t>(extra) + 1;
    }
    return true;
}

std::string lowercase(std::string_view s) {
    // glibc's built-in C.UTF-8 knows every code point's case; the process's
    // own locale (often "C") would leave non-ASCII letters alone.
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    const bool decodable = valid_utf8(s);  // else only ASCII letters change
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80 || !decodable) {
            out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            ++i;
            continue;
        }
        const char32_t cp = next_code_point(s, i);
        append_utf8(utf8 ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), utf8)) : cp, out);
    }
    return out;
}

}  // namespace graphrun::text
