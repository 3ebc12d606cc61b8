// Tokenizers (engine/text): ids, vocabularies learned from the training texts,
// and a saved tokenizer that loads to the same ids.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <lzma.h>
#include <fmt/format.h>

#include "engine/io/text_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/text/vector_index.hpp"
#include "engine/train/pair_model.hpp"
#include "engine/train/task.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "graphrun/error.hpp"
#include "graphrun/model.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return test::scratch_folder("text", name); }

std::vector<std::int32_t> ids_of(const text::Tokenizer& t, std::string_view s) {
    std::vector<std::int32_t> ids;
    t.encode(s, ids);
    return ids;
}

// Package summaries, the kind of text graphrun's examples read.
std::vector<std::string> corpus() {
    std::vector<std::string> texts;
    const char* lines[] = {"GNU C compiler", "library for parsing YAML files", "Python bindings for the YAML library",
                           "GNU debugger", "documentation for the GNU C library", "command line tool for parsing JSON",
                           "fast JSON library for C++", "YAML parser and emitter for C++", "tool to compress files",
                           "compression library (development files)"};
    for (int round = 0; round < 20; ++round)
        for (const char* l : lines) texts.push_back(fmt::format("{} {}", l, round % 3 ? "" : "(transitional package)"));
    return texts;
}

}  // namespace

TEST_CASE("bytes: UTF-8 byte b is id b + 1; encode_to_length cuts and pads with 0", "[text]") {
    const auto bytes = text::make_tokenizer({}, {});
    CHECK(bytes->vocab_size() == 257);
    CHECK(ids_of(*bytes, "a\xc3\xa9") == std::vector<std::int32_t>{'a' + 1, 0xc3 + 1, 0xa9 + 1});
    std::vector<std::int32_t> out(4), scratch;
    CHECK(text::encode_to_length(*bytes, "hello", 4, out.data(), scratch) == 5);  // 5 tokens before the cut
    CHECK(out == std::vector<std::int32_t>{'h' + 1, 'e' + 1, 'l' + 1, 'l' + 1});
    CHECK(text::encode_to_length(*bytes, "hi", 4, out.data(), scratch) == 2);
    CHECK(out == std::vector<std::int32_t>{'h' + 1, 'i' + 1, 0, 0});
}

TEST_CASE("lowercase folds every script's capitals, as Python's str.lower does for these", "[text]") {
    CHECK(text::lowercase("GNU \xc3\x89" "COLE \xd0\x9c\xd0\x98\xd0\xa0 \xce\xa9") == "gnu \xc3\xa9" "cole \xd0\xbc\xd0\xb8\xd1\x80 \xcf\x89");
    CHECK(text::lowercase("\xff" "AB") == "\xff" "ab");  // not UTF-8: only ASCII letters change
}

TEST_CASE("words: the most frequent words of the training texts, 1 for the unknown, punctuation on its own", "[text]") {
    text::TokenizerConfig config;
    config.type = "words";
    config.vocab = 6;  // padding, unknown and 4 words
    config.lowercase = true;
    const auto words = text::make_tokenizer(config, {"the cat. The dog", "a cat and the dog", "THE END"});
    CHECK(words->vocab_size() == 6);
    // Counts: the 4, cat 2, dog 2, then ". a and end" once each: "." is first of those in byte order.
    CHECK(ids_of(*words, "The cat, the dog.") == std::vector<std::int32_t>{2, 3, 1, 2, 4, 5});
    CHECK(ids_of(*words, "it's") == std::vector<std::int32_t>{1, 1, 1});  // it ' s
    config.lowercase = false;
    const auto cased = text::make_tokenizer(config, {"the cat. The dog", "a cat and the dog", "THE END"});
    CHECK(ids_of(*cased, "THE")[0] != ids_of(*cased, "the")[0]);
}

TEST_CASE("a saved tokenizer loads to the same ids; sentencepiece trains the same model twice", "[text]") {
    const fs::path dir = scratch("save");
    const auto texts = corpus();
    for (const std::string type : {"bytes", "words", "sentencepiece"}) {
        text::TokenizerConfig config;
        config.type = type;
        config.vocab = type == "bytes" ? 257 : 40;
        config.lowercase = type != "bytes";
        const auto made = text::make_tokenizer(config, texts);
        CHECK(made->vocab_size() <= config.vocab);
        made->save(dir.string());
        const auto loaded = text::load_tokenizer(dir.string());
        CHECK(loaded->config().type == type);
        CHECK(loaded->vocab_size() == made->vocab_size());
        for (const char* s : {"GNU YAML library", "an unseen text, with \xc3\xa9 accents", ""}) {
            const auto ids = ids_of(*made, s);
            CHECK(ids == ids_of(*loaded, s));
            for (const auto id : ids) {
                CHECK(id > 0);  // 0 is padding, never a token
                CHECK(id < made->vocab_size());
            }
        }
        if (type == "sentencepiece") {
            const auto again = text::make_tokenizer(config, texts);
            fs::create_directories(dir / "again");
            again->save((dir / "again").string());
        }
    }
    std::ifstream a(dir / "tokenizer.model", std::ios::binary), b(dir / "again" / "tokenizer.model", std::ios::binary);
    const std::string model_a{std::istreambuf_iterator<char>(a), {}}, model_b{std::istreambuf_iterator<char>(b), {}};
    CHECK(!model_a.empty());
    CHECK(model_a == model_b);
    fs::remove_all(dir);
}

TEST_CASE("a tokenizer file that is not what it says is an error naming the file", "[text]") {
    const fs::path dir = scratch("bad");
    CHECK_THROWS_WITH(text::load_tokenizer(dir.string()), Contains("tokenizer.json") && Contains("cannot open"));
    std::ofstream(dir / "tokenizer.json") << "{\"format\": \"graphrun-tokenizer 1\", \"type\": \"words\", \"lowercase\": false, \"vocab\": 9, \"words\": [\"a\"]}";
    CHECK_THROWS_WITH(text::load_tokenizer(dir.string()), Contains("says vocab 9") && Contains("holds 3 ids"));
    std::ofstream(dir / "tokenizer.json") << "{\"format\": \"graphrun-tokenizer 1\", \"type\": \"sentencepiece\", \"lowercase\": false, \"vocab\": 9, \"model\": \"bpe\"}";
    std::ofstream(dir / "tokenizer.model") << "not a model";
    CHECK_THROWS_WITH(text::load_tokenizer(dir.string()), Contains("tokenizer.model"));
    std::ofstream(dir / "tokenizer.json") << "{\"type\": ";
    CHECK_THROWS_WITH(text::load_tokenizer(dir.string()), Contains("not valid JSON"));
    text::TokenizerConfig config;
    config.type = "words";
    config.vocab = 2;
    CHECK_THROWS_WITH(text::make_tokenizer(config, {"a"}), Contains("at least 3"));
    fs::remove_all(dir);
}

namespace {

// Pairs of a topic's words: left a short title, right a longer text of the same topic.
void write_topic_pairs(const fs::path& path, int rows, unsigned seed) {
    const char* topics[4][5] = {{"json", "parser", "fast", "objects", "arrays"},
                                {"audio", "sound", "mixer", "volume", "speakers"},
                                {"font", "glyphs", "typeface", "unicode", "serif"},
                                {"kernel", "module", "driver", "firmware", "boot"}};
    std::ofstream out(path);
    std::mt19937 rng(seed);
    for (int r = 0; r < rows; ++r) {
        const auto* t = topics[rng() % 4];
        std::string left = fmt::format("{} {}", t[rng() % 5], t[rng() % 5]), right;
        const int words = 4 + static_cast<int>(rng() % 10);  // some longer than the right input's 10 tokens
        for (int w = 0; w < words; ++w) right += fmt::format("{}{}", w ? " " : "", w % 3 == 2 ? "the" : t[rng() % 5]);
        out << left << '\t' << right << '\n';
    }
}

std::string text_pairs_yaml(const fs::path& dir, const std::string& tokenizer) {
    return fmt::format(R"(
inputs:
  - {{name: title, shape: [4], dtype: int32}}
  - {{name: body, shape: [10], dtype: int32}}
  - {{name: y, shape: [], dtype: float32}}
nodes:
  - {{name: left_embedding, op: embedding, inputs: [title], vocab: 40, dim: 8}}
  - {{name: left_lstm, op: lstm, inputs: [left_embedding], units: 8}}
  - {{name: left_dense, op: dense, inputs: [left_lstm], units: 8}}
  - {{name: right_embedding, op: embedding, inputs: [body], vocab: 40, dim: 8, share: left_embedding}}
  - {{name: right_lstm, op: lstm, inputs: [right_embedding], units: 8, share: left_lstm}}
  - {{name: right_dense, op: dense, inputs: [right_lstm], units: 8, share: left_dense}}
  - {{name: similarity, op: cosine, inputs: [left_dense, right_dense]}}
  - {{name: one, op: constant, value: 1.0}}
  - {{name: distance, op: sub, inputs: [one, similarity]}}
  - {{name: loss, op: contrastive_loss, inputs: [distance, y], margin: 1.0}}
outputs: [left_dense, right_dense, similarity]
loss: loss
data:
  text: {{path: {0}/train.tsv, validation: {0}/validation.tsv, tokenizer: {1}}}
train: {{epochs: 1, batch_size: 16, seed: 1, negatives: 1}}
)",
                       dir.string(), tokenizer);
}

}  // namespace

TEST_CASE("data.text learns its tokenizer from the training split, saves it with the run, and says what is cut", "[text][train]") {
    const fs::path dir = scratch("pairs");
    write_topic_pairs(dir / "train.tsv", 200, 1);
    write_topic_pairs(dir / "validation.tsv", 40, 2);
    const auto spec = spec::load_spec_string(text_pairs_yaml(dir, "{type: words, lowercase: true}"), "pairs");
    const auto built = build_graph(spec, builtin_ops());
    const auto task = train::make_task(spec, built, train::TrainOptions{}, std::nullopt);
    REQUIRE(task->tokenizer() != nullptr);
    // 20 topic words and "the": padding, unknown and 21 words, below the embedding's 40.
    CHECK(task->tokenizer()->vocab_size() == 23);
    const auto report = task->data_report();
    REQUIRE(report.size() == 5);
    CHECK_THAT(report[4], Contains("body: words tokens per text: 50% ") && Contains("of the training texts are cut at 10"));
    const auto warnings = task->data_warnings();
    REQUIRE(warnings.size() == 1);  // bodies of 11 to 13 words are cut at 10; titles (2 words) never
    CHECK_THAT(warnings[0], Contains("input 'body'") && Contains("a length of 13 would keep 99% whole"));

    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    std::vector<std::string> warned;
    options.on_warning = [&](const std::string& w) { warned.push_back(w); };
    train::train(spec, built, options);
    CHECK(warned.size() == 1);
    const auto saved = text::load_tokenizer((dir / "run").string());
    CHECK(saved->config().type == "words");
    std::vector<std::int32_t> a, b;
    saved->encode("JSON parser for the kernel", a);
    task->tokenizer()->encode("JSON parser for the kernel", b);
    CHECK(a == b);
    CHECK(a[2] == 1);  // "for" is not in the vocabulary

    // The run's folder is a model: model.yaml loads as a spec, with the threshold chosen on validation.
    const auto model = spec::load_spec_file((dir / "run" / "model.yaml").string());
    REQUIRE(model.run.threshold.has_value());
    CHECK(*model.run.threshold > -1.0);
    CHECK(*model.run.threshold < 1.0);
    CHECK(model.run.tokenizer == "tokenizer.json");
    CHECK(model.data.text.path == (dir / "train.tsv").string());
    // Weights trained on words load into no spec that feeds other ids, though every shape fits.
    std::string synthetic = text_pairs_yaml(dir, "{type: words, lowercase: true}");
    synthetic.replace(synthetic.find("  text: {"), synthetic.find("}}\n", synthetic.find("  text: {")) + 3 - synthetic.find("  text: {"),
                      "  synthetic: {samples: 100}\n");
    const auto other = spec::load_spec_string(synthetic, "other");
    train::TrainOptions init;
    init.out_dir = (dir / "other").string();
    init.init_checkpoint = (dir / "run" / "checkpoint.safetensors").string();
    CHECK_THROWS_WITH(train::train(other, build_graph(other, builtin_ops()), init),
                      Contains("trained on text as words tokens, lowercased") && Contains("feeds synthetic ids"));
    // A resumed run must be the same graph.
    const auto changed = spec::load_spec_string(text_pairs_yaml(dir, "{type: words, lowercase: true}"), "pairs", {"nodes.loss.margin=0.5"});
    train::TrainOptions resume = options;
    resume.resume = true;
    CHECK_THROWS_WITH(train::train(changed, build_graph(changed, builtin_ops()), resume), Contains("trained in another graph"));

    // The tokenizer's ids must fit the embeddings: a mismatch names both numbers.
    const auto wide = spec::load_spec_string(text_pairs_yaml(dir, "{type: sentencepiece, vocab: 60}"), "pairs");
    CHECK_THROWS_WITH(train::make_task(wide, build_graph(wide, builtin_ops()), train::TrainOptions{}, std::nullopt),
                      Contains("vocab is 60") && Contains("vocab 40 and 40"));
    CHECK_THROWS_WITH(spec::load_spec_string(text_pairs_yaml(dir, "{type: word}"), "pairs"),
                      Contains("must be one of bytes, words, sentencepiece, got 'word'") && Contains("did you mean 'words'"));
    fs::remove_all(dir);
}

TEST_CASE("a data file ending in .xz is read decompressed; one cut short or not xz is an error naming it", "[text][io]") {
    const fs::path dir = scratch("xz");
    const std::string text = "fast json parser\ta library that parses json\n" + std::string(100000, 'x') + "\tlong line\n";
    std::vector<std::uint8_t> packed(text.size() + 1024);
    std::size_t size = 0;
    REQUIRE(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), packed.data(),
                                    &size, packed.size()) == LZMA_OK);
    const auto write = [&](const fs::path& p, std::size_t bytes) { std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(packed.data()), static_cast<std::streamsize>(bytes)); };
    write(dir / "pairs.tsv.xz", size);
    CHECK(io::read_text_file((dir / "pairs.tsv.xz").string()) == text);
    write(dir / "cut.tsv.xz", size / 2);
    CHECK_THROWS_WITH(io::read_text_file((dir / "cut.tsv.xz").string()), Contains("cut.tsv.xz: the xz data is cut short"));
    std::ofstream(dir / "plain.tsv.xz") << text;
    CHECK_THROWS_WITH(io::read_text_file((dir / "plain.tsv.xz").string()), Contains("plain.tsv.xz: not an xz file"));
    CHECK_THROWS_WITH(io::read_text_file((dir / "missing.tsv").string()), Contains("missing.tsv: cannot open the data file"));
    fs::remove_all(dir);
}

TEST_CASE("train.early_stopping stops when its figure has not improved for `patience` epochs", "[text][train]") {
    const fs::path dir = scratch("early");
    write_topic_pairs(dir / "train.tsv", 64, 1);
    write_topic_pairs(dir / "validation.tsv", 32, 2);
    // A learning rate too small to change val_loss: epoch 1 sets the best, epoch 2 does not beat it.
    const auto spec = spec::load_spec_string(text_pairs_yaml(dir, "{type: bytes}"), "early",
                                             {"train.epochs=5", "train.optimizer.lr=1e-30", "train.early_stopping.metric=val_loss",
                                              "train.early_stopping.patience=1", "nodes.left_embedding.vocab=257", "nodes.right_embedding.vocab=257"});
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    std::vector<std::string> warned;
    options.on_warning = [&](const std::string& w) { warned.push_back(w); };
    const auto history = train::train(spec, build_graph(spec, builtin_ops()), options);
    CHECK(history.size() == 2);
    REQUIRE(!warned.empty());
    CHECK_THAT(warned.back(), Contains("early stopping after epoch 2: val_loss has not improved for 1 epoch"));
    CHECK_THROWS_WITH(spec::load_spec_string(text_pairs_yaml(dir, "{type: bytes}"), "early", {"train.early_stopping.metric=val_loss"}),
                      Contains("train.early_stopping needs `patience`"));
    fs::remove_all(dir);
}

TEST_CASE("evaluate's auc and recall@10 equal figures computed here from embed's vectors; score is their cosine", "[text][train]") {
    const fs::path dir = scratch("evaluate");
    write_topic_pairs(dir / "train.tsv", 300, 1);
    write_topic_pairs(dir / "validation.tsv", 60, 2);
    write_topic_pairs(dir / "test.tsv", 80, 3);
    std::string yaml = text_pairs_yaml(dir, "{type: words, lowercase: true}");
    yaml.replace(yaml.find("validation.tsv, "), 16, fmt::format("validation.tsv, test: {}/test.tsv, ", dir.string()));
    const auto spec = spec::load_spec_string(yaml, "pairs", {"train.epochs=4", "train.optimizer.lr=0.01"});
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    train::train(spec, build_graph(spec, builtin_ops()), options);

    const auto model = train::PairModel::load_run((dir / "run").string());
    REQUIRE(model.threshold().has_value());
    const train::TextPairs test = train::read_text_pairs((dir / "test.tsv").string());
    const auto e = train::evaluate_pairs(model, test, 50, 7);

    // The same figures from the embeddings alone, computed in this test.
    const auto d = static_cast<std::size_t>(model.dimension());
    const auto left = model.embed(train::Side::left, test.left), right = model.embed(train::Side::right, test.right);
    const auto cosine = [&](std::size_t i, std::size_t j) {
        double dot = 0, a = 0, b = 0;
        for (std::size_t k = 0; k < d; ++k) {
            dot += static_cast<double>(left[i * d + k]) * right[j * d + k];
            a += static_cast<double>(left[i * d + k]) * left[i * d + k];
            b += static_cast<double>(right[j * d + k]) * right[j * d + k];
        }
        return dot / (std::sqrt(a) * std::sqrt(b));
    };
    // Every test pair is similar: evaluate adds one random partner each as dissimilar, 160 pairs in all.
    REQUIRE(e.pairs == 160);
    REQUIRE(e.similar == 80);
    for (std::size_t i = 0; i < 80; ++i) CHECK(e.similarity[i] == Approx(cosine(i, i)).margin(1e-6));
    // AUC by counting, every similar against every dissimilar score.
    double wins = 0;
    for (std::size_t i = 0; i < 80; ++i)
        for (std::size_t j = 80; j < 160; ++j) wins += e.similarity[i] > e.similarity[j] ? 1.0 : e.similarity[i] == e.similarity[j] ? 0.5 : 0.0;
    CHECK(*e.auc == Approx(wins / (80.0 * 80.0)).margin(1e-12));
    // Recall@10 over all 80 pairs (candidates 1000 > 80): the partner among the 10 best right texts.
    const auto all = train::evaluate_pairs(model, test, 1000, 7);
    CHECK(all.candidates == 80);
    int hits = 0;
    for (std::size_t i = 0; i < 80; ++i) {
        int better = 0;
        for (std::size_t j = 0; j < 80; ++j) better += j != i && cosine(i, j) >= cosine(i, i);
        hits += better < 10;
    }
    CHECK(*all.recall_at_10 == Approx(hits / 80.0).margin(1e-12));
    CHECK(*e.auc > 0.75);  // four topics, one per pair: the model learned to tell them apart
    // score's similarity is the cosine of the two embeddings.
    const auto a = model.embed(train::Side::left, {"json parser"}), b = model.embed(train::Side::right, {"fast json objects the arrays"});
    double dot = 0, na = 0, nb = 0;
    for (std::size_t k = 0; k < d; ++k) dot += static_cast<double>(a[k]) * b[k], na += static_cast<double>(a[k]) * a[k], nb += static_cast<double>(b[k]) * b[k];
    CHECK(model.similarity(a.data(), b.data()) == Approx(dot / std::sqrt(na * nb)).margin(1e-6));
    // A run folder without model.yaml, or a model that read no text, is refused by name.
    CHECK_THROWS_WITH(train::PairModel::load_run(dir.string()), Contains("no model.yaml"));
    fs::remove_all(dir);
}

TEST_CASE("approximate search (hnswlib) finds at least 95% of exact search's 10 nearest; a saved index loads to the same answers", "[text][index]") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    const std::int64_t n = 10000;  // the instrumented build is ~10x slower
#else
    const std::int64_t n = 100000;
#endif
    const std::int64_t d = 32, queries = 200, k = 10;
    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    std::vector<float> rows(static_cast<std::size_t>(n * d)), query(static_cast<std::size_t>(queries * d));
    for (float& v : rows) v = normal(rng);
    for (float& v : query) v = normal(rng);
    const text::VectorIndex index(rows, d, true);
    double found = 0;
    for (std::int64_t q = 0; q < queries; ++q) {
        const auto approx = index.search(query.data() + q * d, k), exact = index.search_exact(query.data() + q * d, k);
        REQUIRE(approx.size() == static_cast<std::size_t>(k));
        REQUIRE(exact.size() == static_cast<std::size_t>(k));
        for (std::size_t i = 1; i < exact.size(); ++i) CHECK(exact[i - 1].similarity >= exact[i].similarity);  // best first
        for (const auto& a : approx)
            found += std::any_of(exact.begin(), exact.end(), [&](const text::Neighbour& e) { return e.row == a.row; });
    }
    const double recall = found / static_cast<double>(queries * k);
    INFO("recall@10 of HNSW against exact search on " << n << " vectors: " << recall);
    CHECK(recall >= 0.95);

    // Exact search is brute force: the best row by a plain loop here.
    const float* q0 = query.data();
    std::int64_t best_row = 0;
    double best = -2;
    for (std::int64_t r = 0; r < n; ++r) {
        double dot = 0, norm = 0, qn = 0;
        for (std::int64_t j = 0; j < d; ++j) {
            dot += static_cast<double>(q0[j]) * rows[static_cast<std::size_t>(r * d + j)];
            norm += static_cast<double>(rows[static_cast<std::size_t>(r * d + j)]) * rows[static_cast<std::size_t>(r * d + j)];
            qn += static_cast<double>(q0[j]) * q0[j];
        }
        if (dot / std::sqrt(norm * qn) > best) best = dot / std::sqrt(norm * qn), best_row = r;
    }
    CHECK(index.search_exact(q0, 1).front().row == best_row);

    const fs::path dir = scratch("index");
    const auto [bytes, hash] = index.save(dir.string());
    const auto loaded = text::VectorIndex::load(dir.string(), true, index.hnsw(), bytes, hash);
    CHECK(index.search(q0, 0).empty());
    CHECK(index.search_exact(q0, -1).empty());
    const auto a = index.search(q0, k), b = loaded.search(q0, k);
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].row == b[i].row);
    // A file cut short is found before hnswlib reads it.
    fs::resize_file(dir / "hnsw.bin", static_cast<std::uintmax_t>(bytes / 2));
    CHECK_THROWS_WITH(text::VectorIndex::load(dir.string(), true, index.hnsw(), bytes, hash), Contains("hnsw.bin") && Contains("cut short"));
    fs::remove_all(dir);
}

TEST_CASE("a run stopped mid-epoch and resumed writes the model.yaml and best weights of an uninterrupted run", "[text][train]") {
    const fs::path dir = scratch("resume_model");
    write_topic_pairs(dir / "train.tsv", 200, 1);
    write_topic_pairs(dir / "validation.tsv", 40, 2);
    const std::string yaml = text_pairs_yaml(dir, "{type: words, lowercase: true}");
    const std::vector<std::string> base{"train.epochs=3", "train.optimizer.lr=0.01", "train.early_stopping.patience=2"};
    const auto whole = spec::load_spec_string(yaml, "pairs", base);
    train::TrainOptions options;
    options.out_dir = (dir / "whole").string();
    train::train(whole, build_graph(whole, builtin_ops()), options);
    // 400 samples (pairs and their negatives) an epoch in batches of 16: 25 steps; stop inside epoch 2.
    auto stop = base;
    stop.push_back("train.max_steps=37");
    const auto stopped = spec::load_spec_string(yaml, "pairs", stop);
    options.out_dir = (dir / "resumed").string();
    train::train(stopped, build_graph(stopped, builtin_ops()), options);
    options.resume = true;
    train::train(whole, build_graph(whole, builtin_ops()), options);
    const auto read = [](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string{std::istreambuf_iterator<char>(in), {}};
    };
    const std::string model = read(dir / "whole" / "model.yaml");
    CHECK(model.find("threshold:") != std::string::npos);
    CHECK(read(dir / "resumed" / "model.yaml").substr(model.find("run:")) == model.substr(model.find("run:")));
    CHECK(read(dir / "resumed" / "best.safetensors") == read(dir / "whole" / "best.safetensors"));

    // Model::load_run: similarity follows the model's weights as they change.
    graphrun::Model m = graphrun::Model::load_run((dir / "whole").string());
    const float trained = m.similarity("json parser", "fast json objects");
    m.initialize(99);
    CHECK(m.similarity("json parser", "fast json objects") != trained);
    m.load((dir / "whole" / "best.safetensors").string());
    CHECK(m.similarity("json parser", "fast json objects") == trained);
    fs::remove_all(dir);
}
