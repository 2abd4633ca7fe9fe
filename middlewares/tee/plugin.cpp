#include "tee/tee.hpp"

SLUICE_PLUGIN(sluice::builtin::register_tee)
