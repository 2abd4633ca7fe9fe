#pragma once
// pass: passes every chunk on untouched and has no options. A placeholder in a chain, and the
// measure of what one middleware costs on the data path (bench/ chains eight of them).
#include "sluice/plugin.hpp"

namespace sluice::builtin {

void register_pass(sluice::Registry& registry);

}  // namespace sluice::builtin
