#pragma once
// Log levels shared by the engine and plugins. Plugins log through Context::log (channel lines,
// prefixed with the channel id) or Services::log (load time); the engine owns the sink.
#include <cstdint>

namespace sluice {

enum class Level : std::uint8_t { trace, debug, info, warn, error };

}  // namespace sluice
