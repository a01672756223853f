// KIVI's options as methods read them (kivi, kivi_eviction): bits, group_size, residual,
// checked with errors naming the file and the method.
#pragma once
#include "compress/kivi_cache.h"
#include "methods/method.h"

namespace echokv {

KiviOptions read_kivi_options(MethodOptions& m);

}  // namespace echokv
