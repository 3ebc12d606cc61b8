// graphrun against PyTorch: values and gradients that PyTorch 1.13 computed
// (tests/fixtures/make_fixtures.py, committed as JSON) for the LSTM layer and
// cell, cosine similarity, the contrastive loss, the Siamese head, softmax,
// log_softmax and cross_entropy.
// Gradients are of sum(w * output) for the recorded upstream w, or of the
// scalar loss; every comparison is relative to the tensor's scale, to 1e-5.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"

using namespace graphrun;
using testing::check_close;
using testing::load_fixture;

namespace {

constexpr double kRel = 1e-5;

using Fixture = std::map<std::string, Tensor>;

const Tensor& at(const Fixture& f, const std::string& name) {
    INFO("fixture tensor '" << name << "'");
    REQUIRE(f.count(name) == 1);
    return f.at(name);
}

// Declares a parameter (or an input, for labels) with the fixture tensor's
// type, and remembers to feed it.
struct Builder {
    explicit Builder(const Fixture& f) : fixture(f) {}

    const Fixture& fixture;
    Graph graph{builtin_ops()};
    std::vector<std::string> fed;

    ValueRef parameter(const std::string& name) {
        fed.push_back(name);
        return graph.parameter(name, at(fixture, name).type());
    }
    ValueRef input(const std::string& name) {
        fed.push_back(name);
        return graph.input(name, at(fixture, name).type());
    }
    void feed(Executor& ex) const {
        for (const auto& name : fed) ex.set(name, at(fixture, name).clone());
    }
};

// Rows [begin, end) of a tensor whose first dimension is the batch.
Tensor rows(const Tensor& t, std::int64_t begin, std::int64_t end) {
    Shape shape = t.shape();
    shape[0] = end - begin;
    Tensor out(shape);
    const std::int64_t row = t.numel() / t.dim(0);
    for (std::int64_t j = 0; j < out.numel(); ++j) out.f32()[j] = t.f32()[begin * row + j];
    return out;
}

void check_lstm(bool return_sequences) {
    const Fixture f = load_fixture("lstm");
    const std::string out = return_sequences ? "h_seq" : "h_final";
    const std::string suffix = return_sequences ? "_seq" : "";
    Builder b{f};
    const ValueRef x = b.parameter("x");  // (N, T, E)
    const ValueRef w_ih = b.parameter("weight_ih");
    const ValueRef w_hh = b.parameter("weight_hh");
    const ValueRef bias = b.parameter("bias");
    const std::int64_t units = at(f, "weight_hh").dim(1);
    const ValueRef h = b.graph.add("lstm", "lstm", {x, w_ih, w_hh, bias},
                                   Attrs{{"units", std::int64_t{units}}, {"return_sequences", return_sequences}});
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close(out, ex.value(h), at(f, out), kRel);

    ex.backward({{h, at(f, return_sequences ? "w_seq" : "w_final").clone()}});
    for (const std::string p : {"x", "weight_ih", "weight_hh", "bias"})
        check_close("d" + p + suffix, ex.grad(p), at(f, "d" + p + suffix), kRel);
}

}  // namespace

TEST_CASE("lstm, final state, matches nn.LSTM", "[fixtures]") { check_lstm(false); }

TEST_CASE("lstm, every state, matches nn.LSTM", "[fixtures]") { check_lstm(true); }

TEST_CASE("lstm_cell matches nn.LSTMCell", "[fixtures]") {
    const Fixture f = load_fixture("lstm_cell");
    Builder b{f};
    const ValueRef x = b.parameter("x");  // (N, E)
    const ValueRef h = b.parameter("h");  // (N, H)
    const ValueRef c = b.parameter("c");  // (N, H)
    const ValueRef w_ih = b.parameter("weight_ih");
    const ValueRef w_hh = b.parameter("weight_hh");
    const ValueRef bias = b.parameter("bias");
    const std::int64_t units = at(f, "weight_hh").dim(1);
    const ValueRef h1 = b.graph.add("cell", "lstm_cell", {x, h, c, w_ih, w_hh, bias}, Attrs{{"units", std::int64_t{units}}});
    const ValueRef c1{h1.node, 1};
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close("h1", ex.value(h1), at(f, "h1"), kRel);
    check_close("c1", ex.value(c1), at(f, "c1"), kRel);

    ex.backward({{h1, at(f, "w_h").clone()}, {c1, at(f, "w_c").clone()}});
    for (const std::string p : {"x", "h", "c", "weight_ih", "weight_hh", "bias"})
        check_close("d" + p, ex.grad(p), at(f, "d" + p), kRel);
}

TEST_CASE("cosine matches F.cosine_similarity", "[fixtures]") {
    const Fixture f = load_fixture("cosine");
    Builder b{f};
    const ValueRef y = b.graph.add("cos", "cosine", {b.parameter("a"), b.parameter("b")});  // (N)
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close("y", ex.value(y), at(f, "y"), kRel);

    ex.backward({{y, at(f, "w").clone()}});
    check_close("da", ex.grad("a"), at(f, "da"), kRel);
    check_close("db", ex.grad("b"), at(f, "db"), kRel);
}

// Row 0 of a is zero: PyTorch clamps |a| to eps = 1e-8, so y[0] = 0, db[0] = 0
// and da[0] = w[0] b[0] / (eps |b[0]|), about 1e8. That row would set the scale
// of the whole tensor, so row 0 and the other rows are compared apart.
TEST_CASE("cosine with a zero vector matches F.cosine_similarity", "[fixtures]") {
    const Fixture f = load_fixture("cosine_zero");
    Builder b{f};
    const ValueRef y = b.graph.add("cos", "cosine", {b.parameter("a"), b.parameter("b")});
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close("y", ex.value(y), at(f, "y"), kRel);
    CHECK(ex.value(y).f32()[0] == 0.0f);

    ex.backward({{y, at(f, "w").clone()}});
    const std::int64_t n = at(f, "a").dim(0);
    for (const std::string p : {"a", "b"}) {
        const Tensor& got = ex.grad(p);
        const Tensor& want = at(f, "d" + p);
        check_close("d" + p + "[0] (the zero row)", rows(got, 0, 1), rows(want, 0, 1), kRel);
        check_close("d" + p + "[1:]", rows(got, 1, n), rows(want, 1, n), kRel);
    }
}

TEST_CASE("contrastive_loss matches PyTorch", "[fixtures]") {
    const Fixture f = load_fixture("contrastive");
    Builder b{f};
    const ValueRef d = b.parameter("d");  // (N)
    const ValueRef y = b.input("y");      // (N), 1 similar, 0 dissimilar
    const ValueRef loss = contrastive_loss(b.graph, "loss", d, y, 1.0);
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close("loss", ex.value(loss), at(f, "loss"), kRel);

    ex.backward(loss);
    check_close("dd", ex.grad("d"), at(f, "dd"), kRel);
}

TEST_CASE("the Siamese head (cosine, 1 - cos, contrastive_loss) matches PyTorch", "[fixtures]") {
    const Fixture f = load_fixture("siamese_head");
    Builder b{f};
    const ValueRef a = b.parameter("a");  // (N, D)
    const ValueRef bb = b.parameter("b");  // (N, D)
    const ValueRef y = b.input("y");       // (N)
    const ValueRef cos = b.graph.add("cos", "cosine", {a, bb});
    const ValueRef one = b.graph.add("one", "constant", {}, Attrs{{"value", 1.0}});
    const ValueRef d = b.graph.add("d", "sub", {one, cos});  // () - (N) -> (N)
    const ValueRef loss = contrastive_loss(b.graph, "loss", d, y, 1.0);
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close("d", ex.value(d), at(f, "d"), kRel);
    check_close("loss", ex.value(loss), at(f, "loss"), kRel);

    ex.backward(loss);
    check_close("da", ex.grad("a"), at(f, "da"), kRel);
    check_close("db", ex.grad("b"), at(f, "db"), kRel);
}

namespace {

// softmax or log_softmax: y and the gradient of sum(w * y).
void check_softmax(const std::string& op) {
    const Fixture f = load_fixture(op);
    Builder b{f};
    const ValueRef y = b.graph.add("y", op, {b.parameter("x")});  // (N, C)
    Executor ex(b.graph);
    b.feed(ex);
    ex.forward();
    check_close(op + " y", ex.value(y), at(f, "y"), kRel);

    ex.backward({{y, at(f, "w").clone()}});
    check_close(op + " dx", ex.grad("x"), at(f, "dx"), kRel);
}

}  // namespace

TEST_CASE("softmax matches torch.softmax", "[fixtures]") { check_softmax("softmax"); }

TEST_CASE("log_softmax matches torch.log_softmax", "[fixtures]") { check_softmax("log_softmax"); }

TEST_CASE("cross_entropy matches F.cross_entropy, with i64 and i32 labels", "[fixtures]") {
    const Fixture f = load_fixture("cross_entropy");
    const Tensor& labels64 = at(f, "labels");  // (N) i64, as PyTorch has them
    Tensor labels32(labels64.shape(), DType::i32);
    for (std::int64_t n = 0; n < labels64.numel(); ++n) labels32.i32()[n] = static_cast<std::int32_t>(labels64.i64()[n]);
    for (const Tensor& labels : {labels64, labels32}) {
        INFO("labels " << dtype_name(labels.dtype()));
        Builder b{f};
        const ValueRef logits = b.parameter("logits");  // (N, C)
        const ValueRef loss = b.graph.add("loss", "cross_entropy", {logits, b.graph.input("labels", labels.type())});
        Executor ex(b.graph);
        b.feed(ex);
        ex.set("labels", labels.clone());
        ex.forward();
        check_close("loss", ex.value(loss), at(f, "loss"), kRel);

        ex.backward(loss);
        check_close("dlogits", ex.grad("logits"), at(f, "dlogits"), kRel);
    }
}
