#include "engine/core/attrs.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graphrun/error.hpp"

namespace graphrun {

const char* attr_kind_name(AttrKind kind) {
    switch (kind) {
        case AttrKind::integer: return "integer";
        case AttrKind::number: return "number";
        case AttrKind::boolean: return "boolean";
        case AttrKind::string: return "string";
    }
    return "?";
}

std::string to_string(const AttrValue& value) {
    return std::visit([](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return "'" + v + "'";
        else return fmt::format("{}", v);
    }, value);
}

namespace {
const AttrValue& lookup(const std::map<std::string, AttrValue>& values, const std::string& name) {
    auto it = values.find(name);
    if (it == values.end()) throw Error(fmt::format("attribute '{}' is not set", name));
    return it->second;
}

}  // namespace

bool attr_fits(AttrKind kind, const AttrValue& value) {
    switch (kind) {
        case AttrKind::integer: return std::holds_alternative<std::int64_t>(value);
        case AttrKind::number: return std::holds_alternative<double>(value) || std::holds_alternative<std::int64_t>(value);
        case AttrKind::boolean: return std::holds_alternative<bool>(value);
        case AttrKind::string: return std::holds_alternative<std::string>(value);
    }
    return false;
}

std::int64_t Attrs::integer(const std::string& name) const { return std::get<std::int64_t>(lookup(values_, name)); }

double Attrs::number(const std::string& name) const {
    const auto& v = lookup(values_, name);
    if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    return std::get<double>(v);
}

bool Attrs::boolean(const std::string& name) const { return std::get<bool>(lookup(values_, name)); }
const std::string& Attrs::string(const std::string& name) const { return std::get<std::string>(lookup(values_, name)); }

Attrs validate_attrs(const std::string& where, const std::vector<AttrSpec>& schema, const Attrs& given) {
    std::vector<std::string> names;
    for (const auto& spec : schema) names.push_back(spec.name);
    const std::string known = names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));

    for (const auto& [name, value] : given.values()) {
        const AttrSpec* spec = nullptr;
        for (const auto& s : schema)
            if (s.name == name) spec = &s;
        if (!spec) throw Error(fmt::format("{}: unknown attribute '{}' (known: {})", where, name, known));
        if (!attr_fits(spec->kind, value))
            throw Error(fmt::format("{}: attribute '{}' must be {} {}, got {}", where, name,
                                    spec->kind == AttrKind::integer ? "an" : "a", attr_kind_name(spec->kind), to_string(value)));
    }
    Attrs full = given;
    for (const auto& spec : schema) {
        if (full.has(spec.name)) continue;
        if (!spec.default_value)
            throw Error(fmt::format("{}: missing attribute '{}' ({}: {})", where, spec.name, attr_kind_name(spec.kind), spec.doc));
        full.set(spec.name, *spec.default_value);
    }
    return full;
}

}  // namespace graphrun
