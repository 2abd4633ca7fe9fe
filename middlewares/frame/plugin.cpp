#include "frame/frame.hpp"

SLUICE_PLUGIN(sluice::builtin::register_frame)
