// Loads a trained Siamese model and prints the cosine similarity of two token
// sequences, with each branch's embedding computed on its own, as the Keras
// user did with K.function.
//
// usage: embed SPEC.yaml CHECKPOINT.safetensors "IDS1" "IDS2"
//   IDS are space-separated token ids, e.g. "12 7 431"; each is padded with 0
//   (or cut) to the length its input declares.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <graphrun/graphrun.hpp>

namespace {

// One row of token ids for an input of shape (N, T): padded with 0 after the text.
graphrun::Tensor token_row(const graphrun::Model& model, const std::string& input, const std::string& text) {
    graphrun::ValueInfo type;
    for (const auto& in : model.inputs())
        if (in.name == input) type = in;  // e.g. x1: int32, shape (N, 52)
    if (type.name.empty()) throw graphrun::Error("the model has no input " + input);
    const std::int64_t length = type.shape.at(1);
    graphrun::Tensor row({1, length}, type.dtype);
    std::istringstream ids(text);
    std::int64_t id = 0;
    for (std::int64_t t = 0; t < length && ids >> id; ++t) {
        if (type.dtype == graphrun::DType::i64) row.i64()[t] = id;
        else row.i32()[t] = static_cast<std::int32_t>(id);
    }
    return row;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: embed SPEC.yaml CHECKPOINT.safetensors \"IDS1\" \"IDS2\"\n");
        return 2;
    }
    try {
        graphrun::Model model = graphrun::Model::from_file(argv[1]);
        model.load(argv[2]);
        // Each branch alone: only its own input is fed.
        const auto left = model.run({{"x1", token_row(model, "x1", argv[3])}}, {"left_dense"}).at("left_dense");
        const auto right = model.run({{"x2", token_row(model, "x2", argv[4])}}, {"right_dense"}).at("right_dense");
        double dot = 0, left_norm = 0, right_norm = 0;
        for (std::int64_t k = 0; k < left.numel(); ++k) {
            dot += left.f32()[k] * right.f32()[k];
            left_norm += left.f32()[k] * left.f32()[k];
            right_norm += right.f32()[k] * right.f32()[k];
        }
        // The graph's own similarity node, on both at once, says the same.
        const auto both = model.run({{"x1", token_row(model, "x1", argv[3])}, {"x2", token_row(model, "x2", argv[4])}}, {"similarity"});
        std::printf("graphrun %s\nembedding size %lld\ncosine similarity %.6f (the graph's similarity node: %.6f)\n", graphrun::version().c_str(),
                    static_cast<long long>(left.numel()), dot / std::sqrt(left_norm * right_norm), both.at("similarity").f32()[0]);
        return 0;
    } catch (const graphrun::Error& e) {
        std::fprintf(stderr, "embed: %s\n", e.what());
        return 2;
    }
}
