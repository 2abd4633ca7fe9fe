#include "echo/echo.hpp"

SLUICE_PLUGIN(sluice::builtin::register_echo)
