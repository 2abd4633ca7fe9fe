#pragma once
// The plugin ABI: what a plugin and the engine must agree on before any C++ object crosses the
// boundary. The loader reads `sluice_plugin_abi` first and refuses a plugin whose version or
// toolchain identity differs from its own, naming both. Bump `abi_version` whenever a public SDK
// type changes layout or a virtual function is added, removed or reordered.
#include <boost/version.hpp>
#include <cstdint>

namespace sluice {

inline constexpr std::uint32_t abi_version = 6;

// A plain C layout on purpose: it is the one thing read from a plugin that may be of another
// version, so it must never change shape.
struct PluginAbi {
  std::uint32_t abi_version;
  const char* compiler;  // e.g. "gcc 12.2.0"
  const char* boost;     // e.g. "1_81"
};

#define SLUICE_DETAIL_STR2(x) #x
#define SLUICE_DETAIL_STR(x) SLUICE_DETAIL_STR2(x)
#if defined(__clang__)
#define SLUICE_COMPILER_ID \
  "clang " SLUICE_DETAIL_STR(__clang_major__) "." SLUICE_DETAIL_STR(__clang_minor__)
#elif defined(__GNUC__)
#define SLUICE_COMPILER_ID "gcc " SLUICE_DETAIL_STR(__GNUC__) "." SLUICE_DETAIL_STR(__GNUC_MINOR__)
#else
#define SLUICE_COMPILER_ID "unknown"
#endif

// The identity of the code being compiled right now (engine or plugin).
inline constexpr PluginAbi this_abi{abi_version, SLUICE_COMPILER_ID, BOOST_LIB_VERSION};

}  // namespace sluice
