// The implicit ↔ explicit bridge on one buffer.
//
// Implicit sync: a driver attaches fences to a buffer's reservation object, and every other user
// of the buffer waits for them inside the kernel. Explicit sync: you hold the fence yourself (a
// sync_file fd) and decide who waits for it, and when. A dma-buf converts between the two:
//   dmabuf.exportSyncFile()  implicit → explicit: the buffer's current fences, as one sync_file;
//   dmabuf.importSyncFile()  explicit → implicit: a fence you hold, attached to the buffer.
//
// vgem stands in for a GPU: its fences stay unsignalled until we signal them, like a render job
// that has not finished. Run it where vgem exists, e.g. in the project's VM:
//   npx explicit-sync vm -- node examples/bridge.mjs
//
// (Node 20 has no `using` in JavaScript, so objects are closed in `finally`; in TypeScript ≥ 5.2
// write `using buffer = …` instead.)
import { VgemDevice } from 'explicit-sync';

const vgem = VgemDevice.open(); // the first vgem card node in /dev/dri
const buffer = vgem.createBuffer({ width: 256, height: 256 });
const dmabuf = buffer.exportDmaBuf(); // the buffer as a dma-buf fd: what you would share
try {
  // 1. implicit → explicit. "The GPU is writing the buffer": an unsignalled write fence on it.
  const render = buffer.attachFence({ write: true });
  const readable = dmabuf.exportSyncFile('read'); // a reader waits for the writers
  try {
    const drivers = readable.info().fences.map((f) => f.driver);
    console.log(`exported a sync_file: signalled=${readable.isSignaled()}, fences from ${drivers.join(', ')}`);
    // Wait on Node's event loop (no thread blocks); the "GPU" finishes 50 ms from now.
    setTimeout(() => render.signal(), 50);
    const t0 = performance.now();
    await readable.wait({ timeoutMs: 5000 });
    console.log(`the render fence signalled after ${(performance.now() - t0).toFixed(0)} ms: safe to read`);
  } finally {
    readable.close();
  }

  // 2. explicit → implicit. We hold a fence of our own (another vgem job's, as a sync_file) and
  // attach it to the buffer, so that implicitly synchronised users (a display driver, a
  // compositor that knows nothing of our sync_file) wait for it too.
  const scratch = vgem.createBuffer({ width: 1, height: 1 });
  const job = scratch.attachFence({ write: true });
  const scratchBuf = scratch.exportDmaBuf();
  const ourFence = scratchBuf.exportSyncFile('readwrite'); // the fence we hold explicitly
  try {
    dmabuf.importSyncFile(ourFence, 'write');
    const seen = dmabuf.exportSyncFile('read'); // what an implicit reader now waits for
    try {
      console.log(`after importSyncFile the buffer is busy: signalled=${seen.isSignaled()}`);
      job.signal();
      await seen.wait({ timeoutMs: 5000 });
      console.log('our fence signalled: the buffer is idle again');
    } finally {
      seen.close();
    }
  } finally {
    ourFence.close();
    scratchBuf.close();
    scratch.close();
  }
  console.log('bridge: ok');
} finally {
  dmabuf.close();
  buffer.close();
  vgem.close(); // also signals any vgem fence still pending
}
