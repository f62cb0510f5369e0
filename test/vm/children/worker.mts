// Worker body for workers.test.mts. workerData: { mode, path, timelineFd?, point? }.
// Modes:
//  'wait'      import the timeline fd on its own Device, post 'waiting', wait for `point`, post
//              'resolved'; also run its own create/signal/wait round trips; close everything.
//  'pending'   leave waits pending (timeline, syncobj, sync_file, ref and unref), post 'pending',
//              then stay until terminate()d, or exit by itself when told to ('exit' message).
import { parentPort, workerData } from 'node:worker_threads';
import { Device, VgemDevice } from 'explicit-sync';
import { vgemFence } from '../syncobj-helpers.mjs';

const data = workerData as { mode: string; path: string; timelineFd?: number; point?: number };
const port = parentPort!;

if (data.mode === 'wait') {
  using dev = Device.open(data.path);
  using shared = dev.importTimeline(data.timelineFd!);
  const p = shared.wait(data.point!, { timeoutMs: 60000 });
  port.postMessage('waiting');
  // Its own timelines, meanwhile: async waits resolved by its own signals.
  using own = dev.createTimeline();
  for (let i = 1; i <= 20; i++) {
    const w = own.wait(i);
    own.signal(i);
    await w;
  }
  await p;
  port.postMessage({ resolved: shared.query().toString() });
} else if (data.mode === 'pending') {
  const dev = Device.open(data.path);
  const vgem = VgemDevice.open();
  const t = dev.createTimeline();
  const s = dev.createSyncobj();
  const { syncFile } = vgemFence(vgem);
  const waits = [
    t.wait(10),
    t.wait(20, { until: 'available', ref: false }),
    t.wait(30, { timeoutMs: 600000 }),
    s.wait(),
    syncFile.wait(),
    syncFile.wait({ ref: false, timeoutMs: 600000 }),
  ];
  for (const w of waits) w.catch(() => {});
  // The handler's closure keeps the device, the vgem device and the rest alive until the worker
  // ends: held only by block-scoped consts they would be garbage once this block has run, and the
  // GC backstop would close them (signalling the vgem fences early, with a leak warning).
  const alive = [dev, vgem, t, s, syncFile];
  port.on('message', (m) => {
    if (m === 'exit') process.exit(alive.length === 5 ? 7 : 1);
  });
  port.postMessage('pending');
}
