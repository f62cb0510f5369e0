// Placeholder: filled in by the sync_file family.
#include "util.h"

namespace es {

void InitSyncFile(Napi::Env, Napi::Object) {}

}  // namespace es
