#include "pass/pass.hpp"

SLUICE_PLUGIN(sluice::builtin::register_pass)
