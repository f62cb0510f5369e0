// Child of exit.test.mts: leaves waits pending in one of several ways, then lets the process end.
// Prints `RESULT <json>` from its 'exit' handler with what settled and when.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Device, Syncobj, Timeline, VgemDevice } from 'explicit-sync';
import { vgemFence } from '../syncobj-helpers.mjs';
import { openTimelineDevice } from '../syncobj-helpers.mjs';

const mode = process.argv[2];
const t0 = performance.now();
const settled: string[] = [];
// Objects that must stay open until the process ends: a device held only by a block-scoped const
// is garbage once its block has run, and the GC backstop would then close it (signalling its vgem
// fences early and warning). The 'exit' handler's closure keeps this list, and so them, alive.
const alive: object[] = [];
const note = (what: string) => (r: unknown) => {
  settled.push(`${what}: ${r instanceof Error ? `${r.name} ${(r as { code?: string }).code ?? ''}`.trim() : 'resolved'}`);
};
process.on('exit', (code) => {
  alive.length = 0;
  console.log(`RESULT ${JSON.stringify({ code, ms: Math.round(performance.now() - t0), settled })}`);
});

const dev: Device = openTimelineDevice();
const t: Timeline = dev.createTimeline();
const s: Syncobj = dev.createSyncobj();
alive.push(dev, t, s);

switch (mode) {
  case 'unref': {
    // Only ref:false waits of every kind: nothing keeps the loop alive, the process ends at once.
    const vgem = VgemDevice.open();
    alive.push(vgem);
    const { syncFile } = vgemFence(vgem);
    t.wait(1, { ref: false }).then(note('timeline'), note('timeline'));
    t.wait(2, { ref: false, until: 'available', timeoutMs: 600000 }).then(note('available'), note('available'));
    s.wait({ ref: false }).then(note('syncobj'), note('syncobj'));
    syncFile.wait({ ref: false, timeoutMs: 600000 }).then(note('syncFile'), note('syncFile'));
    break;
  }
  case 'ref-signal': {
    // A ref'd wait keeps the process alive until the point is signalled (by an unref'd timer).
    t.wait(5).then(note('timeline'), note('timeline'));
    t.wait(9, { ref: false }).then(note('unref'), note('unref'));
    setTimeout(() => t.signal(5), 1500).unref();
    break;
  }
  case 'ref-timeout': {
    // A ref'd wait with a timeout keeps the process alive until it times out.
    t.wait(5, { timeoutMs: 1500 }).then(note('timeline'), note('timeline'));
    s.wait({ timeoutMs: 1500 }).then(note('syncobj'), note('syncobj'));
    break;
  }
  case 'ref-then-unref': {
    // ref:true and ref:false waits on one lane: once the ref'd one resolves, the unref'd one no
    // longer holds the process.
    t.wait(3).then(note('ref'), note('ref'));
    t.wait(4, { ref: false }).then(note('unref'), note('unref'));
    setTimeout(() => t.signal(3), 500).unref();
    break;
  }
  case 'exit': {
    // process.exit() with ref'd waits of every kind pending, in this thread and in a worker. This
    // thread's waits start once the worker's are pending: vgem signals a fence by itself 10 s after
    // attaching it (VGEM_FENCE_TIMEOUT), and a worker's start alone took longer than that in the
    // emulated arm64 guest, so a fence made before it was signalled before process.exit().
    const vgem = VgemDevice.open();
    alive.push(vgem);
    const w = new Worker(fileURLToPath(new URL('./worker.mjs', import.meta.url)), {
      workerData: { mode: 'pending', path: dev.path },
    });
    w.once('message', () => {
      const { syncFile } = vgemFence(vgem);
      for (const p of [t.wait(1), t.wait(2, { until: 'available' }), s.wait(), syncFile.wait(), t.wait(3, { timeoutMs: 600000 })])
        p.then(note('main'), note('main'));
      setTimeout(() => process.exit(3), 100);
    });
    break;
  }
  case 'throw': {
    // An uncaught exception with ref'd waits pending: the ordinary exit code 1, no abort.
    t.wait(1).then(note('timeline'), note('timeline'));
    setTimeout(() => {
      throw new Error('boom');
    }, 100);
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
