#include "capture/capture.hpp"

SLUICE_PLUGIN(sluice::builtin::register_capture)
