#include "rewrite/rewrite.hpp"

SLUICE_PLUGIN(sluice::builtin::register_rewrite)
