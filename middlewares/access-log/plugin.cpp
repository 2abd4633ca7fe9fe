#include "access-log/access_log.hpp"

SLUICE_PLUGIN(sluice::builtin::register_access_log)
