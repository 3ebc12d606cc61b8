// libFuzzer target: the YAML spec loader on arbitrary bytes. Any input may be
// refused with graphrun::Error; nothing else may happen (no crash, no other
// exception, no sanitizer report).
#include <cstddef>
#include <cstdint>
#include <string>

#include "graphrun/error.hpp"
#include "engine/spec/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        graphrun::spec::load_spec_string(text, "fuzz");
    } catch (const graphrun::Error&) {
    }
    return 0;
}
