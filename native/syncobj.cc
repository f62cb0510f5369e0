// Placeholder: filled in by the syncobj family.
#include "util.h"

namespace es {

void InitSyncobj(Napi::Env, Napi::Object) {}

}  // namespace es
