#include "record/record.hpp"

SLUICE_PLUGIN(sluice::builtin::register_record)
