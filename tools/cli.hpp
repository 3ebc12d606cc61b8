// The graphrun command line: parsed arguments, and one function per command.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tools/graph_json.hpp"
#include "engine/spec/builder.hpp"
#include "engine/text/metric.hpp"
#include "engine/train/communicator.hpp"
#include "tools/command_line.hpp"

namespace graphrun::cli {


// The ranks of a data-parallel run under mpirun; nullptr for one process.
inline train::Communicator* communicator = nullptr;

// What a graph dump says of the spec it came from (name, outputs, loss).
GraphDumpInfo dump_info(const spec::Spec& spec, const BuiltGraph& built);

int run_train(const Args& args);
int run_dump(const Args& args);
int run_plot(const Args& args);

// OUT/validation.tsv: one line per validation pair, similarity <tab> label.
void write_validation_tsv(const std::string& out_dir, const std::vector<float>& similarity, const std::vector<float>& label);
// Draws OUT/training.svg with gnuplot. Returns "" or, without gnuplot, a one-line note.
// The histogram shows the scores as `metric` reads them (the cosine, or the distance).
std::string draw_training_svg(const std::string& out_dir, const std::string& title, const text::Metric& metric);
int run_check(const Args& args);
int run_gradcheck(const Args& args);
int run_predict(const Args& args);
int run_evaluate(const Args& args);
int run_score(const Args& args);
int run_embed(const Args& args);
int run_index(const Args& args);
int run_search(const Args& args);
// OUT/eval.svg: similarity histograms of similar and dissimilar pairs, and the ROC curve.
std::string draw_evaluation_svg(const std::string& path, const std::vector<float>& similarity, const std::vector<float>& label, const std::string& title,
                                const text::Metric& metric);

}  // namespace graphrun::cli
