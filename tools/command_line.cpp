// The graphrun command line's grammar: one CLI11 parser holds every command and
// its options. What CLI11 2.1 lacks is built here on its own definitions: an
// option of another command named as such, the nearest option suggested, our
// exit statuses, `graphrun help CMD`, and bash completion.
#include "tools/command_line.hpp"

#include <algorithm>
#include <set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/spec/loader.hpp"
#include "tools/external_program.hpp"

namespace graphrun::cli {

namespace {

struct CommandInfo {
    const char* name;
    const char* usage;    // after "graphrun NAME"
    const char* summary;  // one line
};

// In the order `graphrun --help` lists them.
const CommandInfo kCommands[] = {
    {"train", "SPEC [options]", "train the graph of SPEC (a YAML file); `graphrun SPEC` is short for this"},
    {"check", "SPEC [options]", "validate SPEC; print its summary table and its data's lengths; check train.length_buckets"},
    {"gradcheck", "SPEC [options]", "check each parameter's gradient against finite differences on a small batch"},
    {"predict", "SPEC --checkpoint CKPT --input NAME=FILE.npy... --output NODE... --out DIR", "run a trained graph on .npy inputs; write the outputs as .npy"},
    {"evaluate", "RUN [--data FILE] [--out FILE.json] | SPEC --checkpoint CKPT ...", "a trained model's figures on held-out data (default: its data.test)"},
    {"score", "RUN TEXT_A TEXT_B | RUN [--data PAIRS.tsv]", "similarity, distance and decision of text pairs under a trained pair model"},
    {"embed", "RUN --side left|right [--data TEXTS.txt] --out VECTORS.npy", "one embedding per line of text, as float32 .npy"},
    {"index", "RUN --data CORPUS.txt --out INDEX", "embed a corpus (a text a line) for search"},
    {"search", "INDEX [--k 10] QUERY... | INDEX --data QUERIES.txt", "the corpus lines most similar to each query, best first"},
    {"dump", "SPEC [-o FILE]", "write the graph as JSON (docs/graph-dump.md), for tools/graphviz_export"},
    {"plot", "OUT", "redraw OUT/training.svg from a run's metrics (needs gnuplot)"},
    {"help", "[COMMAND]", "list the commands, or print one command's options"},
    {"completion", "bash", "print a bash completion script for graphrun"},
};

const CommandInfo* find_command(const std::string& name) {
    for (const auto& c : kCommands)
        if (name == c.name) return &c;
    return nullptr;
}

std::vector<std::string> command_names() {
    std::vector<std::string> names;
    for (const auto& c : kCommands) names.emplace_back(c.name);
    return names;
}

// A command's help as our usage line shows it, defaults after the description.
class HelpFormatter : public CLI::Formatter {
public:
    std::string make_usage(const CLI::App* app, std::string) const override {
        const CommandInfo* c = find_command(app->get_name());
        return c ? fmt::format("usage: graphrun {} {}\n", c->name, c->usage) : "usage: graphrun COMMAND [options]\n";
    }
    std::string make_option_opts(const CLI::Option* o) const override {
        if (o->get_expected_min() == 0) return "";  // a flag
        return " " + o->get_type_name() + (o->get_expected_max() > 1 ? " ..." : "");
    }
    std::string make_option_desc(const CLI::Option* o) const override {
        return o->get_default_str().empty() ? o->get_description() : fmt::format("{} (default: {})", o->get_description(), o->get_default_str());
    }
};

// The parser. CLI11 writes into `args`; values it cannot check the way we want
// (--threads, --set, the number of positionals) are checked after parsing.
struct Parser {
    CLI::App app{"graphrun: train and run dataflow graphs of neural networks on CPUs (oneDNN, oneTBB)", "graphrun"};
    std::string threads_text;  // --threads, checked by hand for our message

    explicit Parser(Args& a) {
        app.set_help_flag("-h,--help", "print this help and exit");
        app.add_flag("--version", a.version, "print graphrun's version, its libraries', the CPU's instruction set and the default threads");
        app.require_subcommand(0, 1);
        app.formatter(std::make_shared<HelpFormatter>());
        app.footer(
            "`graphrun SPEC` is short for `graphrun train SPEC`.\n"
            "`graphrun help COMMAND` or `graphrun COMMAND --help` prints a command's options.");

        auto command = [&](const char* name) {
            const CommandInfo& info = *find_command(name);
            CLI::App* c = app.add_subcommand(name, info.summary);
            c->set_help_flag("-h,--help", "print this command's options and exit");
            c->allow_extras();  // unknown options and extra arguments get our messages (check_leftovers)
            c->footer("`--opt value` and `--opt=value` both work.");
            return c;
        };
        auto spec = [&](CLI::App* c) { c->add_option("SPEC", a.spec, "the graph's YAML spec (graphs/siamese.yaml)")->type_name("FILE"); };
        auto set = [&](CLI::App* c) {
            c->add_option("--set", a.overrides, "change a value of the spec by its dotted path, e.g. train.epochs=3 (repeatable)")
                ->type_name("KEY=VALUE")
                ->allow_extra_args(false);
        };
        auto threads = [&](CLI::App* c) {
            c->add_option("--threads", threads_text, "threads to run on")->type_name("N")->default_str("every core");
        };

        CLI::App* train = command("train");
        spec(train);
        set(train);
        train->add_option("--out", a.out, "the run's folder: checkpoint, metrics, pictures")->type_name("DIR")->default_str("runs/<the spec's name>");
        train->add_flag("--resume", a.resume, "continue the run in --out from its checkpoint");
        train->add_flag("--overwrite", a.overwrite, "replace a run already in --out");
        train->add_option("--init", a.init, "start from these weights instead of random ones")->type_name("CKPT");
        threads(train);
        train->add_flag("--allow-positive-only", a.allow_positive_only, "train even with no dissimilar pairs (the embeddings collapse)");
        train->add_flag("--profile", a.profile, "print the ops by time after the run");
        train->add_option("--dump", a.dump, "write the graph (and its profile) as JSON after the run")->type_name("FILE");

        CLI::App* check = command("check");
        spec(check);
        set(check);
        threads(check);

        CLI::App* gradcheck = command("gradcheck");
        spec(gradcheck);
        set(gradcheck);
        threads(gradcheck);

        CLI::App* predict = command("predict");
        spec(predict);
        set(predict);
        predict->add_option("--checkpoint", a.checkpoint, "the trained weights (safetensors)")->type_name("CKPT");
        predict->add_option("--input", a.input_texts, "an input of the graph and its .npy file (repeatable)")
            ->type_name("NAME=FILE.npy")
            ->allow_extra_args(false);
        predict->add_option("--output", a.outputs, "a node whose output to write as DIR/NODE.npy (repeatable)")->type_name("NODE")->allow_extra_args(false);
        predict->add_option("--out", a.out, "the folder for the .npy files")->type_name("DIR");
        threads(predict);

        CLI::App* evaluate = command("evaluate");
        evaluate->add_option("RUN", a.spec, "a run's folder (the --out of graphrun train), or a spec with --checkpoint")->type_name("RUN|SPEC");
        set(evaluate);
        evaluate->add_option("--checkpoint", a.checkpoint, "with a SPEC: the trained weights (safetensors)")->type_name("CKPT");
        evaluate->add_option("--data", a.data, "held-out data in the layout of the training data")->type_name("FILE")->default_str("the model's data.test");
        evaluate->add_option("--out", a.out, "where the figures go as JSON")->type_name("FILE.json")->default_str("RUN/eval.json; with a SPEC, none");
        evaluate->add_option("--candidates", a.candidates, "pair models: rank each text among this many test pairs' partners")->type_name("N")->default_str("1000");
        threads(evaluate);

        CLI::App* score = command("score");
        score->add_option("RUN", a.spec, "a run's folder (the --out of graphrun train)")->type_name("DIR");
        score->add_option("TEXTS", a.texts, "a left and a right text")->type_name("TEXT");
        score->add_option("--data", a.data, "a TSV of pairs, left <tab> right: one line out per pair")->type_name("FILE")->default_str("standard input");
        threads(score);

        CLI::App* embed = command("embed");
        embed->add_option("RUN", a.spec, "a run's folder (the --out of graphrun train)")->type_name("DIR");
        embed->add_option("--side", a.side, "which branch embeds the texts: left or right")->type_name("left|right");
        embed->add_option("--data", a.data, "one text a line")->type_name("FILE")->default_str("standard input");
        embed->add_option("--out", a.out, "the (lines, dimension) float32 array")->type_name("FILE.npy");
        embed->add_flag("--overwrite", a.overwrite, "replace --out if it exists");
        threads(embed);

        CLI::App* index = command("index");
        index->add_option("RUN", a.spec, "a run's folder (the --out of graphrun train)")->type_name("DIR");
        index->add_option("--data", a.data, "the corpus: one text a line, embedded by the model's right branch")->type_name("FILE")->default_str("standard input");
        index->add_option("--out", a.out, "the index's folder")->type_name("INDEX");
        index->add_flag("--approximate", a.approximate, "also build an HNSW graph (hnswlib): approximate, fast search (default beyond 200,000 lines)");
        index->add_flag("--overwrite", a.overwrite, "replace --out if it exists");
        threads(index);

        CLI::App* search = command("search");
        search->add_option("INDEX", a.spec, "an index's folder (the --out of graphrun index)")->type_name("DIR");
        search->add_option("QUERIES", a.texts, "texts to search for, embedded by the model's left branch")->type_name("QUERY");
        search->add_option("--data", a.data, "queries, one a line")->type_name("FILE")->default_str("standard input");
        search->add_option("--k", a.k, "how many lines to print for each query")->type_name("N")->default_str("10");
        threads(search);

        CLI::App* dump = command("dump");
        spec(dump);
        set(dump);
        dump->add_option("-o,--out", a.out, "write to FILE")->type_name("FILE")->default_str("standard output");

        CLI::App* plot = command("plot");
        plot->add_option("OUT", a.spec, "a run's folder (holding metrics.jsonl)")->type_name("DIR");

        CLI::App* help = command("help");
        help->add_option("COMMAND", a.topic, "the command whose options to print")->type_name("");

        CLI::App* completion = command("completion");
        completion->add_option("SHELL", a.topic, "bash")->type_name("");
    }

    CLI::App& sub(const std::string& name) { return *app.get_subcommand(name); }

    // Every long and short name of a command's options, with their dashes.
    static std::vector<std::string> option_names(const CLI::App& c) {
        std::vector<std::string> names;
        for (const CLI::Option* o : c.get_options()) {
            if (o->get_positional()) continue;
            for (const auto& l : o->get_lnames()) names.push_back("--" + l);
            for (const auto& s : o->get_snames()) names.push_back("-" + s);
        }
        return names;
    }

    static bool takes_value(const CLI::App& c, const std::string& name) {
        for (const CLI::Option* o : c.get_options())
            if (!o->get_positional() && o->check_name(name)) return o->get_expected_min() > 0;  // a flag expects none
        return false;
    }

    // Which other commands take an option of this name.
    std::vector<std::string> commands_taking(const std::string& name, const std::string& except) const {
        std::vector<std::string> out;
        for (const auto& c : kCommands) {
            const CLI::App& other = *app.get_subcommand(c.name);
            if (c.name == except) continue;
            const auto names = option_names(other);
            if (std::find(names.begin(), names.end(), name) != names.end()) out.push_back(fmt::format("'{}'", c.name));
        }
        return out;
    }
};

std::string usage_hint(const std::string& command) {
    return fmt::format("usage: graphrun {} {}\n(graphrun help {} lists its options)", command, find_command(command)->usage, command);
}

// The arguments CLI11 left over: an option this command does not take, or one
// positional too many. The first option is reported before any positional.
void check_leftovers(Parser& p, const std::string& command, const std::vector<std::string>& left, const Args& a) {
    const CLI::App& c = p.sub(command);
    for (const auto& arg : left) {
        if (arg.size() < 2 || arg[0] != '-') continue;
        const std::string name = arg.substr(0, arg.find('='));
        const auto others = p.commands_taking(name, command);
        if (!others.empty())
            throw UsageError(fmt::format("{} belongs to {}, not to '{}'\n{}", name, spec::join(others), command, usage_hint(command)));
        throw UsageError(fmt::format("unknown option '{}' for '{}'{}\n{}", name, command, spec::did_you_mean(name, Parser::option_names(c)),
                                     usage_hint(command)));
    }
    if (!left.empty()) {
        const std::string what = command == "plot" || command == "score" || command == "embed" || command == "evaluate" || command == "index" ? "the run" : command == "search" ? "the index" : command == "help" || command == "completion" ? "the topic" : "the spec";
        throw UsageError(fmt::format("unexpected argument '{}' ({} is '{}')\n{}", left.front(), what, command == "help" || command == "completion" ? a.topic : a.spec,
                                     usage_hint(command)));
    }
}

// `graphrun SPEC ...` is `graphrun train SPEC ...`; a first word that is close to
// a command's name but names no file is a mistyped command.
std::vector<std::string> with_command(int argc, char** argv) {
    std::vector<std::string> words(argv + 1, argv + argc);
    if (words.empty()) return words;
    const std::string& first = words.front();
    if (find_command(first) || first == "--help" || first == "-h" || first == "--version") return words;
    if (first[0] != '-' && spec::near_miss(first, command_names()) && first.find('.') == std::string::npos && first.find('/') == std::string::npos)
        throw UsageError(fmt::format("unknown command '{}'{}; the commands are: {}\n(graphrun --help describes them)", first,
                                     spec::did_you_mean(first, command_names()), spec::join(command_names())));
    words.insert(words.begin(), "train");
    return words;
}

std::pair<std::string, std::string> split_pair(const std::string& flag, const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        throw UsageError(fmt::format("{} expects NAME=VALUE, got '{}'", flag, text));
    return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace

Args parse_args(int argc, char** argv) {
    Args a;
    Parser p(a);
    std::vector<std::string> words = with_command(argc, argv);
    if (words.empty()) throw UsageError(fmt::format("no spec given\nusage: graphrun train SPEC [options]   (graphrun --help lists every command)"));
    const std::string command = find_command(words.front()) ? words.front() : "";

    // Help first, wherever it stands: `graphrun train SPEC --bad --help` helps.
    if (std::find_if(words.begin(), words.end(), [](const std::string& w) { return w == "--help" || w == "-h"; }) != words.end()) {
        a.command = "help";
        a.topic = command;
        return a;
    }
    // A value-taking option with nothing after it: CLI11's message names types, ours the option.
    if (!command.empty() && words.size() > 1) {
        const std::string& last = words.back();
        if (last.size() > 1 && last[0] == '-' && last.find('=') == std::string::npos && Parser::takes_value(p.sub(command), last))
            throw UsageError(fmt::format("{} expects a value\n{}", last, usage_hint(command)));
    }

    std::vector<std::string> reversed(words.rbegin(), words.rend());  // CLI11 takes them last first
    try {
        p.app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        throw UsageError(command.empty() ? fmt::format("{}\n(graphrun --help lists every command)", e.what())
                                         : fmt::format("{}\n{}", e.what(), usage_hint(command)));
    }
    if (a.version || command.empty()) {
        a.command = a.version ? "version" : "help";
        return a;
    }
    a.command = command;
    check_leftovers(p, command, p.sub(command).remaining(), a);

    if (!p.threads_text.empty()) {
        try {
            std::size_t used = 0;
            a.threads = std::stoi(p.threads_text, &used);
            if (used != p.threads_text.size() || a.threads < 1) throw std::invalid_argument(p.threads_text);
        } catch (const std::exception&) {
            throw UsageError(fmt::format("--threads expects a positive whole number, got '{}'", p.threads_text));
        }
    }
    for (const auto& kv : a.overrides) split_pair("--set", kv);
    for (const auto& text : a.input_texts) a.inputs.push_back(split_pair("--input", text));

    if (command == "help") {
        if (!a.topic.empty() && !find_command(a.topic))
            throw UsageError(fmt::format("help: no command '{}'{}; the commands are: {}", a.topic, spec::did_you_mean(a.topic, command_names()),
                                         spec::join(command_names())));
        return a;
    }
    if (command == "completion") {
        if (a.topic != "bash") throw UsageError(fmt::format("completion: expected the shell, bash; got '{}'", a.topic));
        return a;
    }
    if (a.spec.empty())
        throw UsageError(command == "plot" ? "no run folder given (graphrun plot OUT)"
                         : command == "score" || command == "embed" || command == "evaluate" || command == "index" ? fmt::format("no run given\n{}", usage_hint(command))
                         : command == "search"                                                                     ? fmt::format("no index given\n{}", usage_hint(command))
                                                                                           : fmt::format("no spec given\n{}", usage_hint(command)));
    if (command == "score" && !a.texts.empty() && a.texts.size() != 2)
        throw UsageError(fmt::format("score takes two texts (left and right), got {}\n{}", a.texts.size(), usage_hint(command)));
    if (command == "score" && !a.texts.empty() && !a.data.empty()) throw UsageError("score: give two texts or --data FILE, not both");
    if (command == "embed" && a.side != "left" && a.side != "right")
        throw UsageError(fmt::format("embed needs --side left or --side right{}\n{}", a.side.empty() ? "" : fmt::format(", got '{}'", a.side), usage_hint(command)));
    if (command == "embed" && a.out.empty()) throw UsageError(fmt::format("embed needs --out FILE.npy\n{}", usage_hint(command)));
    if (command == "index" && a.out.empty()) throw UsageError(fmt::format("index needs --out INDEX (a folder)\n{}", usage_hint(command)));
    if (command == "search" && a.k < 1) throw UsageError(fmt::format("--k expects a whole number of at least 1, got {}", a.k));
    if (command == "search" && !a.texts.empty() && !a.data.empty()) throw UsageError("search: give queries or --data FILE, not both");
    if (command == "evaluate" && a.candidates < 2) throw UsageError(fmt::format("--candidates expects a whole number of at least 2, got {}", a.candidates));
    if (a.resume && !a.init.empty()) throw UsageError("--resume and --init exclude each other: --resume continues from OUT/checkpoint.safetensors");
    if (a.resume && a.overwrite) throw UsageError("--resume and --overwrite exclude each other: --resume continues the run in --out, --overwrite replaces it");
    return a;
}

std::string help_text(const std::string& command) {
    Args unused;
    Parser p(unused);
    if (command.empty()) {
        std::string text = "graphrun: train and run dataflow graphs of neural networks on CPUs (oneDNN, oneTBB)\n\nusage: graphrun COMMAND [options]\n\ncommands:\n";
        for (const auto& c : kCommands) text += fmt::format("  {:<11} {}\n", c.name, c.summary);
        text +=
            "\noptions:\n"
            "  -h, --help  print this help; `graphrun help COMMAND` or `graphrun COMMAND --help` prints a command's options\n"
            "  --version   print graphrun's version, its libraries', the CPU's instruction set and the default threads\n"
            "\n`graphrun SPEC` is short for `graphrun train SPEC`.\n";
        return text;
    }
    CLI::App& c = p.sub(command);
    c.get_formatter()->column_width(26);
    return fmt::format("{}\n", c.help());
}

std::string bash_completion() {
    Args unused;
    Parser p(unused);
    std::string cases, valued;
    for (const auto& c : kCommands) {
        const CLI::App& sub = p.sub(c.name);
        auto names = Parser::option_names(sub);
        names.push_back("--help");
        cases += fmt::format("        {}) options={} ;;\n", c.name, shell_word(fmt::format("{}", fmt::join(names, " "))));
        for (const auto& n : names)
            if (Parser::takes_value(sub, n) && valued.find(" " + n + " ") == std::string::npos) valued += n + " ";
    }
    const std::string commands = fmt::format("{}", fmt::join(command_names(), " "));
    // Generated from the parser above: a new option appears here by itself.
    return fmt::format(R"(# bash completion for graphrun, made by `graphrun completion bash` from its parser.
# Installed by `cmake --install` to share/bash-completion/completions/graphrun;
# or: source <(graphrun completion bash)
_graphrun() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} command="" options i
    for ((i = 1; i < COMP_CWORD; ++i)); do
        case ${{COMP_WORDS[i]}} in
            -*) ;;
            {}) command=${{COMP_WORDS[i]}}; break ;;
            *) command=train; break ;;  # graphrun SPEC: short for graphrun train SPEC
        esac
    done
    if [ -z "$command" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '--help --version' -- "$cur"))
        else
            COMPREPLY=($(compgen -W {} -- "$cur") $(compgen -f -- "$cur"))
        fi
        return
    fi
    case $command in
{}    esac
    case $command in
        help) COMPREPLY=($(compgen -W {} -- "$cur")); return ;;
        completion) COMPREPLY=($(compgen -W 'bash' -- "$cur")); return ;;
    esac
    case ' {}' in
        *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return ;;  # the option's value: often a file
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -o bashdefault -F _graphrun graphrun
)",
                       fmt::join(command_names(), "|"),
                       shell_word(commands), cases, shell_word(commands), valued);
}

}  // namespace graphrun::cli
