#pragma once
// echo: the listener answers by itself. The upstream is never connected; every byte from the
// client is sent back to it, and the client's half-close ends the reply direction (the engine
// does that for any channel whose upstream was never connected). No options.
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_echo(sluice::Registry& registry);

}  // namespace sluice::builtin
