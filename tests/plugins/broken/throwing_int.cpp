// throwing-int: throws something that is not a std::exception (an int) from its register
// function. The loader must refuse it with a clear error, as for any other throw, not terminate.
#include "sluice/plugin.hpp"

namespace {

void register_types(sluice::Registry&) {
  throw 42;
}

}  // namespace

SLUICE_PLUGIN(register_types)
