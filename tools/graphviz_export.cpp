// graphviz_export: draws a graph dump (`graphrun dump`, format graphrun-graph
// version 1) as Graphviz DOT, or renders it to SVG/PNG with Graphviz's `dot`.
// It reads only the dump, so it needs nothing of the engine.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/atomic_file.hpp"
#include "graphrun/error.hpp"
#include "tools/external_program.hpp"

namespace {

using nlohmann::json;

constexpr const char* usage_text = "usage: graphviz_export GRAPH.json [-o OUT] [-T dot|svg|png]";

// Exit status 2: something the user can fix (arguments, the dump, a missing `dot`);
// any other std::runtime_error (dot failed, a write failed) is exit status 1.
struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Edge {
    std::size_t from, output;
};

struct Node {
    std::string name, kind, op;
    std::vector<Edge> inputs;
    std::vector<std::string> output_labels;  // "(N, 64)", with the dtype when it is not float32
    std::uint64_t parameters = 0;
    std::string composite_kind, composite_name;  // empty when not a part of a composite
    std::optional<double> profile_ms;            // forward + backward
};

struct Graph {
    std::string name, loss;
    std::vector<Node> nodes;
    std::set<std::string> outputs;
    std::optional<std::uint64_t> trainable;
    std::optional<std::int64_t> profile_steps;
};

std::string with_separators(std::uint64_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// Names come from user files: they must neither end the string nor smuggle in
// Graphviz escapes such as \N or \l.
std::string dot_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') out += "\\n";
        else out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    }
    return out + '"';
}

// A value for an error message, cut short: a hostile file may hold megabytes where a name belongs.
std::string brief(const json& value) {
    const std::string text = value.dump();
    return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

// Reads the dump, turning every surprise into an InputError that says where.
class Reader {
public:
    explicit Reader(std::string path) : path_(std::move(path)) {}

    Graph read(const std::string& text) const {
        json doc;
        try {
            doc = json::parse(text);
        } catch (const json::parse_error& e) {
            std::string what = e.what();  // "[json.exception.parse_error.101] parse error at ...": the tag is noise
            if (const auto tag_end = what.find("] "); tag_end != std::string::npos) what.erase(0, tag_end + 2);
            // Its "last read: '...'" quotes the file, which may be binary or a megabyte long.
            for (char& c : what) c = static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f ? '?' : c;
            fail(fmt::format("not JSON (at byte {}): {}", e.byte, what.size() > 200 ? what.substr(0, 197) + "..." : what));
        }
        if (!doc.is_object()) fail("expected a JSON object (a graphrun graph dump) at the top level");
        if (!doc.contains("format") || doc["format"] != "graphrun-graph")
            fail(fmt::format("\"format\" is {}, expected \"graphrun-graph\" (a file written by `graphrun dump`)",
                             doc.contains("format") ? brief(doc["format"]) : "missing"));
        const json& version = field(doc, "version", "a whole number", &json::is_number_integer, "");
        if (version != 1) fail(fmt::format("version {} is not supported; graphviz_export reads version 1", version.dump()));

        Graph graph;
        graph.name = text_of(doc, "name", "");
        if (doc.contains("outputs"))
            for (const json& name : field(doc, "outputs", "an array of node names", &json::is_array, "")) {
                if (!name.is_string()) fail(fmt::format("\"outputs\" holds {}, expected node names", brief(name)));
                graph.outputs.insert(name.get<std::string>());
            }
        if (doc.contains("loss") && !doc["loss"].is_null()) graph.loss = text_of(doc, "loss", "");
        if (doc.contains("parameters"))
            graph.trainable = count_of(field(doc, "parameters", "an object", &json::is_object, ""), "trainable", "\"parameters\": ");
        if (doc.contains("profile")) {
            const json& profile = field(doc, "profile", "an object", &json::is_object, "");
            if (profile.contains("steps"))
                graph.profile_steps = field(profile, "steps", "a whole number", &json::is_number_integer, "\"profile\": ").get<std::int64_t>();
        }

        std::map<std::string, std::size_t> index_of;
        const json& nodes = field(doc, "nodes", "an array", &json::is_array, "");
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const json& entry = nodes[i];
            if (!entry.is_object()) fail(fmt::format("nodes[{}]: expected an object", i));
            Node node;
            node.name = text_of(entry, "name", fmt::format("nodes[{}]: ", i));
            const std::string where = fmt::format("nodes[{}] ({}): ", i, brief(entry["name"]));  // brief: names may hold newlines
            node.kind = text_of(entry, "kind", where);
            if (node.kind != "input" && node.kind != "parameter" && node.kind != "op")
                fail(where + fmt::format("\"kind\" is \"{}\", expected \"input\", \"parameter\" or \"op\"", node.kind));
            node.op = text_of(entry, "op", where);
            node.parameters = count_of(entry, "parameters", where);
            for (const json& input : field(entry, "inputs", "an array", &json::is_array, where)) {
                const std::string at = where + "\"inputs\": ";
                if (!input.is_object()) fail(at + fmt::format("holds {}, expected objects {{\"node\": NAME, \"output\": INDEX}}", brief(input)));
                const std::string from_name = text_of(input, "node", at);
                const std::uint64_t output = count_of(input, "output", at);
                // The dump lists nodes in topological order, so a producer comes before its readers.
                const auto from = index_of.find(from_name);
                if (from == index_of.end())
                    fail(at + fmt::format("node '{}' does not exist (or comes later; nodes must be in topological order)", from_name));
                if (output >= graph.nodes[from->second].output_labels.size())
                    fail(at + fmt::format("reads output {} of '{}', which has {} output(s)", output, from_name, graph.nodes[from->second].output_labels.size()));
                node.inputs.push_back({from->second, output});
            }
            for (const json& output : field(entry, "outputs", "an array", &json::is_array, where))
                node.output_labels.push_back(output_label(output, where + "\"outputs\": "));
            if (entry.contains("composite") && !entry["composite"].is_null()) {
                const json& composite = field(entry, "composite", "an object or null", &json::is_object, where);
                node.composite_kind = text_of(composite, "kind", where + "\"composite\": ");
                node.composite_name = text_of(composite, "name", where + "\"composite\": ");
            }
            if (entry.contains("profile")) {
                const json& profile = field(entry, "profile", "an object", &json::is_object, where);
                node.profile_ms = 0;
                for (const char* key : {"forward_ms", "backward_ms"}) {
                    const double ms = field(profile, key, "a number", &json::is_number, where + "\"profile\": ").get<double>();
                    if (!(ms >= 0)) fail(where + fmt::format("\"profile\": \"{}\" is {}, expected a time of 0 or more", key, ms));
                    *node.profile_ms += ms;
                }
            }
            if (const auto [earlier, fresh] = index_of.emplace(node.name, i); !fresh)
                fail(where + fmt::format("the name is also that of nodes[{}]; node names must be unique", earlier->second));
            graph.nodes.push_back(std::move(node));
        }
        for (const std::string& name : graph.outputs)
            if (!index_of.count(name)) fail(fmt::format("\"outputs\" names '{}', which is not a node", name));
        if (!graph.loss.empty() && !index_of.count(graph.loss)) fail(fmt::format("\"loss\" names '{}', which is not a node", graph.loss));
        return graph;
    }

private:
    [[noreturn]] void fail(const std::string& message) const { throw InputError(path_ + ": " + message); }

    const json& field(const json& object, const char* key, const char* expected, bool (json::*is_type)() const noexcept,
                      const std::string& where) const {
        const auto found = object.find(key);
        if (found == object.end()) fail(where + fmt::format("\"{}\" is missing; expected {}", key, expected));
        if (!((*found).*is_type)()) fail(where + fmt::format("\"{}\" is {}, expected {}", key, brief(*found), expected));
        return *found;
    }
    std::string text_of(const json& object, const char* key, const std::string& where) const {
        return field(object, key, "a string", &json::is_string, where).get<std::string>();
    }
    std::uint64_t count_of(const json& object, const char* key, const std::string& where) const {
        return field(object, key, "a whole number (0 or more)", &json::is_number_unsigned, where).get<std::uint64_t>();
    }

    std::string output_label(const json& output, const std::string& where) const {
        if (!output.is_object()) fail(where + fmt::format("holds {}, expected objects {{\"shape\": [...], \"dtype\": ...}}", brief(output)));
        std::vector<std::string> dims;
        for (const json& dim : field(output, "shape", "an array of sizes and names such as \"N\"", &json::is_array, where)) {
            if (dim.is_number_unsigned()) dims.push_back(std::to_string(dim.get<std::uint64_t>()));
            else if (dim.is_string()) dims.push_back(dim.get<std::string>());
            else fail(where + fmt::format("\"shape\" holds {}, expected sizes (0 or more) and names such as \"N\"", brief(dim)));
        }
        const std::string dtype = text_of(output, "dtype", where);
        return (dims.empty() ? "scalar" : fmt::format("({})", fmt::join(dims, ", "))) + (dtype == "float32" ? "" : " " + dtype);
    }

    std::string path_;
};

std::string node_statement(const Graph& graph, const Node& node, double total_ms, double hottest_ms) {
    const std::string shapes = fmt::format("{}", fmt::join(node.output_labels, "\n"));
    std::string label, style;
    if (node.kind == "input") {
        label = node.name + "\n" + shapes;
        style = "shape=invhouse, style=filled, fillcolor=\"#dbe9f6\"";
    } else if (node.kind == "parameter") {
        label = fmt::format("{}\n{}\n{} params", node.name, shapes, with_separators(node.parameters));
        style = "shape=note, fontsize=9, style=filled, fillcolor=\"#f3f3f3\", color=gray50";
    } else {
        label = fmt::format("{}\n{}\n{}", node.name, node.op, shapes);
        std::string fill = "white";
        if (node.profile_ms && total_ms > 0) {
            label += fmt::format("\n{:.1f} ms, {:.0f}%", *node.profile_ms, 100 * *node.profile_ms / total_ms);
            // White to orange by share of the time; the hottest node is full orange so that differences show.
            const double heat = *node.profile_ms / hottest_ms;
            const auto channel = [heat](int full) { return static_cast<int>(255 - heat * (255 - full) + 0.5); };
            fill = fmt::format("#{:02x}{:02x}{:02x}", channel(0xfd), channel(0x8d), channel(0x3c));
        }
        style = fmt::format("shape=box, style=\"rounded,filled\", fillcolor=\"{}\"", fill);
    }
    if (node.name == graph.loss) style += ", penwidth=2.5, color=\"#b22222\"";
    else if (graph.outputs.count(node.name)) style += ", penwidth=2";
    return fmt::format("{} [label={}, {}];\n", dot_string(node.name), dot_string(label), style);
}

std::string to_dot(const Graph& graph) {
    double total_ms = 0, hottest_ms = 0;
    for (const Node& node : graph.nodes)
        if (node.profile_ms) total_ms += *node.profile_ms, hottest_ms = std::max(hottest_ms, *node.profile_ms);

    std::string title = graph.name;
    if (graph.trainable) title += fmt::format("\n{} trainable parameters", with_separators(*graph.trainable));
    if (total_ms > 0)
        title += fmt::format("\n{:.1f} ms {}(forward + backward)", total_ms,
                             graph.profile_steps ? fmt::format("over {} steps ", *graph.profile_steps) : "");
    std::string dot = "digraph " + dot_string(graph.name) + " {\n";
    dot += fmt::format("  graph [rankdir=TB, newrank=true, labelloc=t, fontname=\"Helvetica\", fontsize=16, "
                       "nodesep=0.3, ranksep=0.35, label={}];\n", dot_string(title));
    dot += "  node [fontname=\"Helvetica\", fontsize=11, margin=\"0.1,0.04\", height=0.3];\n";
    dot += "  edge [fontname=\"Helvetica\", fontsize=8, fontcolor=gray35, color=gray40, arrowsize=0.6];\n";

    // One cluster per composite, in order of first appearance.
    std::vector<std::string> composites;
    std::map<std::string, std::string> cluster_body;
    for (const Node& node : graph.nodes) {
        if (node.composite_name.empty()) {
            dot += "  " + node_statement(graph, node, total_ms, hottest_ms);
            continue;
        }
        auto [body, fresh] = cluster_body.emplace(node.composite_name, "");
        if (fresh) {
            composites.push_back(node.composite_name);
            body->second = fmt::format("    graph [label={}, style=\"rounded,dashed\", color=gray55, fontsize=11, labeljust=l];\n",
                                       dot_string(node.composite_name + " (" + node.composite_kind + ")"));
        }
        body->second += "    " + node_statement(graph, node, total_ms, hottest_ms);
    }
    for (const std::string& name : composites)
        dot += fmt::format("  subgraph {} {{\n{}  }}\n", dot_string("cluster_" + name), cluster_body[name]);

    // The inputs that start the long chains (x1 and x2 of a Siamese net) share
    // the top row, so parallel branches sit side by side; short-chain inputs
    // such as labels are left next to where they are used.
    std::vector<std::size_t> depth_below(graph.nodes.size(), 0);
    for (std::size_t i = graph.nodes.size(); i-- > 0;)
        for (const Edge& edge : graph.nodes[i].inputs) depth_below[edge.from] = std::max(depth_below[edge.from], depth_below[i] + 1);
    std::size_t deepest_input = 0;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (graph.nodes[i].kind == "input") deepest_input = std::max(deepest_input, depth_below[i]);
    std::string top_row;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (graph.nodes[i].kind == "input" && 2 * depth_below[i] > deepest_input) top_row += " " + dot_string(graph.nodes[i].name) + ";";
    if (!top_row.empty()) dot += "  { rank=min;" + top_row + " }\n";

    for (const Node& node : graph.nodes)
        for (const Edge& edge : node.inputs)
            dot += fmt::format("  {} -> {} [label={}];\n", dot_string(graph.nodes[edge.from].name), dot_string(node.name),
                               dot_string(" " + graph.nodes[edge.from].output_labels[edge.output]));
    return dot + "}\n";
}

std::string read_file(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    std::string text;
    char buffer[65536];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) text.append(buffer, n);
    const int error = std::ferror(file) ? errno : 0;
    std::fclose(file);
    if (error) throw InputError(fmt::format("{}: cannot read: {}", path, std::strerror(error)));
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);  // a `dot` that dies early must show as a failed write, not kill us
    try {
        std::string graph_path, out_path, format = "dot";
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "-h" || arg == "--help") {
                std::cout << usage_text << "\n  -o OUT   write to OUT (default: standard output)\n"
                          << "  -T FMT   dot (default), svg or png; svg and png need Graphviz's `dot`\n";
                return 0;
            }
            if ((arg == "-o" || arg == "-T") && i + 1 == argc) throw InputError(arg + " expects a value\n" + usage_text);
            if (arg == "-o") out_path = argv[++i];
            else if (arg == "-T") format = argv[++i];
            else if (arg.size() > 1 && arg[0] == '-') throw InputError(fmt::format("unknown option '{}'\n{}", arg, usage_text));
            else if (!graph_path.empty()) throw InputError(fmt::format("unexpected argument '{}'\n{}", arg, usage_text));
            else graph_path = arg;
        }
        if (graph_path.empty()) throw InputError(std::string("no graph given\n") + usage_text);
        if (format != "dot" && format != "svg" && format != "png") throw InputError(fmt::format("-T expects dot, svg or png, got '{}'", format));
        if (format != "dot" && std::system("command -v dot >/dev/null 2>&1") != 0)
            throw InputError(fmt::format("-T {} needs Graphviz's `dot`, which is not installed: apt-get install graphviz (or use -T dot)", format));

        const std::string dot_text = to_dot(Reader(graph_path).read(read_file(graph_path)));
        std::string bytes = dot_text;
        if (format != "dot") {
            const graphrun::cli::Drawing drawing = graphrun::cli::draw_with(fmt::format("dot -T{} -o {{out}}", format), dot_text);
            if (!drawing.ok)
                throw std::runtime_error(fmt::format("dot -T{} failed ({}); {} is not written", format, drawing.complaint, out_path.empty() ? "nothing" : out_path));
            bytes = drawing.bytes;
        }
        if (!out_path.empty()) {
            try {
                graphrun::io::write_file_atomically(out_path, std::as_bytes(std::span(bytes)));
            } catch (const graphrun::Error& e) {
                throw std::runtime_error(e.what());
            }
        } else if (!(std::cout << bytes << std::flush)) {
            throw std::runtime_error("cannot write to stdout");
        }
        return 0;
    } catch (const InputError& e) {
        std::cerr << "graphviz_export: " << e.what() << "\n";
        return 2;
    } catch (const json::exception& e) {
        // Every field is checked before use; this is the last line against a check we missed.
        std::cerr << "graphviz_export: the graph dump holds a value of an unexpected type: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "graphviz_export: " << e.what() << "\n";
        return 1;
    }
}
