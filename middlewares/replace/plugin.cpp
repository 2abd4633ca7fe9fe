#include "replace/replace.hpp"

SLUICE_PLUGIN(sluice::builtin::register_replace)
