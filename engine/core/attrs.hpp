// Node attributes (sizes, flags, constants) and the schema each op declares
// for them, so a bad attribute is caught when the node is built, with a
// message that lists what the op accepts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace graphrun {

using AttrValue = std::variant<std::int64_t, double, bool, std::string>;

enum class AttrKind { integer, number, boolean, string };
const char* attr_kind_name(AttrKind kind);

struct AttrSpec {
    std::string name;
    AttrKind kind;
    std::optional<AttrValue> default_value;  // none: the attribute is required
    std::string doc;
    // false for how the op runs rather than what it computes (lstm's impl):
    // left out of structure_hash, so weights move between implementations.
    bool part_of_model = true;
};

class Attrs {
public:
    Attrs() = default;
    Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> values) : values_(values) {}

    void set(const std::string& name, AttrValue value) { values_[name] = std::move(value); }
    bool has(const std::string& name) const { return values_.count(name) != 0; }
    const std::map<std::string, AttrValue>& values() const { return values_; }

    // Typed reads of an attribute that validate() has already checked.
    std::int64_t integer(const std::string& name) const;
    double number(const std::string& name) const;  // an integer reads as a number too
    bool boolean(const std::string& name) const;
    const std::string& string(const std::string& name) const;

private:
    std::map<std::string, AttrValue> values_;
};

// Checks `given` against `schema`: unknown names (listing the known ones),
// missing required ones, wrong kinds. Returns the attributes with defaults
// filled in. Throws Error with a message starting with `where`.
Attrs validate_attrs(const std::string& where, const std::vector<AttrSpec>& schema, const Attrs& given);

std::string to_string(const AttrValue& value);

// Whether `value` is of `kind`; an integer is a number too.
bool attr_fits(AttrKind kind, const AttrValue& value);

}  // namespace graphrun
