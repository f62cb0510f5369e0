// Module entry point: one AddonData per env (context-aware, loads in worker_threads),
// then every kernel object family registers its own functions.
#include "util.h"

namespace es {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  InitUtil(env, exports);
  InitDevice(env, exports);
  InitFdWatcher(env, exports);
  InitFdPoller(env, exports);
  InitSyncFile(env, exports);
  InitDmaBuf(env, exports);
  InitVgem(env, exports);
  InitSwSync(env, exports);
  InitDmaHeap(env, exports);
  InitSyncobj(env, exports);
  InitSyncobjWait(env, exports);
  InitKms(env, exports);
  InitKmsCommit(env, exports);
  InitUnixSocket(env, exports);
  return exports;
}

}  // namespace es

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return es::Init(env, exports); }

NODE_API_MODULE(explicit_sync, InitAddon)
