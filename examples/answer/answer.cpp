// Answers from a trained pair model, a line of standard input at a time.
//
//   answer RUN INDEX   each line is a query: the 5 most similar lines of the
//                      indexed corpus (graphrun index RUN --data ... --out INDEX)
//   answer RUN         each line is "left <tab> right": their similarity and
//                      whether the model calls them similar
//
// RUN is a run's folder, the --out of `graphrun train` on text pairs.
#include <iostream>
#include <string>

#include <graphrun/graphrun.hpp>

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::cerr << "usage: answer RUN [INDEX]   (queries, or left<tab>right pairs, on standard input)\n";
        return 2;
    }
    try {
        const graphrun::Model model = graphrun::Model::load_run(argv[1]);
        if (argc == 3) {
            const graphrun::Index index = graphrun::Index::load(argv[2]);
            for (std::string query; std::getline(std::cin, query);) {
                std::cout << "query: " << query << "\n";
                for (const auto& hit : index.search(query, 5)) std::cout << "  " << hit.similarity << "  " << hit.text << "\n";
            }
            return 0;
        }
        const auto threshold = model.threshold();
        for (std::string line; std::getline(std::cin, line);) {
            const auto tab = line.find('\t');
            if (tab == std::string::npos) {
                std::cerr << "answer: expected left<tab>right, got: " << line << "\n";
                return 2;
            }
            const float s = model.similarity(line.substr(0, tab), line.substr(tab + 1));
            std::cout << s << "\t" << (threshold && s >= *threshold ? "similar" : "dissimilar") << "\n";
        }
    } catch (const graphrun::Error& e) {
        std::cerr << "answer: " << e.what() << "\n";
        return 2;
    }
    return 0;
}
