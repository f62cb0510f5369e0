// Placeholder: filled in by the dma_buf family.
#include "util.h"

namespace es {

void InitDmaBuf(Napi::Env, Napi::Object) {}

}  // namespace es
