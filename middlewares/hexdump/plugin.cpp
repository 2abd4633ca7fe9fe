#include "hexdump/hexdump.hpp"

SLUICE_PLUGIN(sluice::builtin::register_hexdump)
