#include "graphrun/version.hpp"

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <tbb/info.h>
#include <tbb/version.h>

namespace graphrun {

std::string version() { return GRAPHRUN_VERSION; }

namespace {
std::string isa_name(dnnl::cpu_isa isa) {
    switch (isa) {
        case dnnl::cpu_isa::sse41: return "sse41";
        case dnnl::cpu_isa::avx: return "avx";
        case dnnl::cpu_isa::avx2: return "avx2";
        case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
        case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
        case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
        case dnnl::cpu_isa::avx512_core: return "avx512_core";
        case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
        case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
        case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
        case dnnl::cpu_isa::all: return "all";
    }
    return fmt::format("unknown ({})", static_cast<int>(isa));
}
}  // namespace

RuntimeInfo runtime_info() {
    const dnnl_version_t* v = dnnl_version();
    return {fmt::format("{}.{}.{} ({})", v->major, v->minor, v->patch, v->hash), TBB_runtime_version(),
            isa_name(dnnl::get_effective_cpu_isa()), tbb::info::default_concurrency()};
}

}  // namespace graphrun
