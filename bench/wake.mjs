// Wake latencies of `npm run bench`: from just before the signalling call until the awaiting code
// runs again, for a timeline point, a binary syncobj and a vgem sync_file, in two loop states:
//   busy   — signalled from JS (the loop is running JS when the fence signals);
//   asleep — the loop is asleep in epoll when another process (the C coprocess, `fire`) signals;
// for the library, the koffi peer (a blocking wait on a thread of libuv's pool) and the floor (a
// uv_poll kept armed on an eventfd, delivering into JS: the cheapest way an fd event reaches
// awaiting JS; plus a setImmediate round trip). The C side measures the same kinds on its own
// objects (a helper thread signals for _asleep). Rounds go in chunks of 20, C then JS then koffi,
// after n/10 warm-up rounds on each side; median and percentiles per kind and side.
import { closeSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { eventfd, waitBinary, waitSyncFile, waitTimeline } from './koffi.mjs';

const now = () => process.hrtime.bigint();

/**
 * The addon's own uv_poll primitive (native/fd_watcher.cc, an internal export the library's waits
 * are built on): the floor watches its eventfd with it, armed once for the whole run.
 */
function loadFdWatcher() {
  const require = createRequire(import.meta.url);
  return require('../build/Release/explicit_sync.node').FdWatcher;
}

function stats(values) {
  values.sort((a, b) => a - b);
  const n = values.length;
  return { ns: values[n >> 1], p10_ns: values[Math.floor(n / 10)], p90_ns: values[Math.floor((n * 9) / 10)], rounds: n };
}

/** A second object on the same syncobj, so that signalling it wakes the first through the kernel. */
function peer(importFn, obj) {
  const fd = obj.exportFd();
  try {
    return importFn(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The JS side's objects. `passFds()` are the fds the C coprocess gets as 3..6 (see baseline.c's
 * `fire`): close them once it is spawned.
 */
export class WakeFixture {
  constructor(dev, vgem) {
    this.dev = dev;
    this.tl = dev.createTimeline();
    this.tlSignaller = peer((fd) => dev.importTimeline(fd), this.tl);
    this.point = 0n;
    this.bin = dev.createSyncobj();
    this.binSignaller = peer((fd) => dev.importSyncobj(fd), this.bin);
    this.vgem = vgem;
    this.buf = vgem.createBuffer({ width: 64, height: 64 });
    this.dmabuf = this.buf.exportDmaBuf();
    this.efd = eventfd();
    this.one = Buffer.alloc(8);
    this.one.writeBigUInt64LE(1n);
    this.sink = Buffer.alloc(8);
    this.onFloor = undefined;
    const FdWatcher = loadFdWatcher();
    this.floor = new FdWatcher(this.efd, () => {
      readSync(this.efd, this.sink, 0, 8, null);
      const f = this.onFloor;
      this.onFloor = undefined;
      f?.();
    });
    this.floor.start(1); // READABLE
  }

  passFds() {
    return [this.tl.exportFd(), this.bin.exportFd(), this.vgem.fd, this.efd];
  }

  close() {
    this.floor.close();
    closeSync(this.efd);
    this.dmabuf.close();
    this.buf.close();
    this.binSignaller.close();
    this.bin.close();
    this.tlSignaller.close();
    this.tl.close();
  }
}

/**
 * One round of each kind, per side: `arm()` starts the wait and returns its promise, `signal()`
 * signals from JS (busy) and `fire()` names what the coprocess signals (asleep).
 */
function kinds(fx, c) {
  const dev = fx.dev;
  const busy = async (arm, signal, after) => {
    const done = arm();
    const t0 = now();
    signal();
    await done;
    const t1 = now();
    after?.();
    return Number(t1 - t0);
  };
  const asleep = async (arm, fire, after) => {
    let t1 = 0n;
    const done = arm().then(() => {
      t1 = now();
    });
    const t0 = await c.fire(...fire);
    await done;
    after?.();
    return Number(t1 - t0);
  };
  const timeline = (wait) => (state) => {
    const p = ++fx.point;
    if (state === 'busy') return busy(() => wait(p), () => fx.tlSignaller.signal(p));
    return asleep(() => wait(p), ['timeline', p]);
  };
  const binary = (wait) => (state) => {
    fx.binSignaller.reset();
    if (state === 'busy') return busy(wait, () => fx.binSignaller.signal());
    return asleep(wait, ['binary', 0]);
  };
  const syncFile = (wait) => (state) => {
    const fence = fx.buf.attachFence({ write: true });
    const sf = fx.dmabuf.exportSyncFile('read');
    const after = () => sf.close();
    if (state === 'busy') return busy(() => wait(sf), () => fence.signal(), after);
    // The coprocess signals the fence id on the same DRM file; the JS fence object is left as is.
    return asleep(() => wait(sf), ['vgem', fence.id], after);
  };
  const floor = (state) => {
    const arm = () => new Promise((resolve) => (fx.onFloor = resolve));
    if (state === 'busy') return busy(arm, () => writeSync(fx.efd, fx.one));
    return asleep(arm, ['eventfd', 0]);
  };
  const setImmediateRound = async () => {
    const t0 = now();
    await new Promise((resolve) => setImmediate(resolve));
    return Number(now() - t0);
  };
  return {
    timeline: { js: timeline((p) => fx.tl.wait(p)), koffi: timeline((p) => waitTimeline(dev.fd, fx.tl.handle, p)) },
    binary: { js: binary(() => fx.bin.wait()), koffi: binary(() => waitBinary(dev.fd, fx.bin.handle)) },
    sync_file: { js: syncFile((sf) => sf.wait()), koffi: syncFile((sf) => waitSyncFile(sf.fd)) },
    floor: { js: floor },
    set_immediate: { js: setImmediateRound, busyOnly: true },
  };
}

/**
 * Runs every kind in both states; returns { js, c, koffi, floor }: name → stats (name_asleep for
 * asleep). `floor` is the floor measured alongside each kind: a chunk of floor rounds right after
 * each chunk of that kind's JS and koffi rounds, in the same state, so that both sides see the same
 * caches and load (a chunk follows the coprocess's C rounds, which evict the JIT's and TCG's warm
 * code; the standalone floor runs its rounds back to back and would look cheaper than it is here).
 */
export async function benchWake(fx, c, n) {
  const chunk = 20;
  const out = { js: {}, c: {}, koffi: {}, floor: {} };
  const all = kinds(fx, c);
  const warm = Math.max(1, Math.floor(n / 10));
  for (const state of c ? ['busy', 'asleep'] : ['busy']) {
    for (const [kind, sides] of Object.entries(all)) {
      if (state === 'asleep' && sides.busyOnly) continue;
      const name = state === 'busy' ? kind : `${kind}_asleep`;
      const hasC = c && kind !== 'floor' && kind !== 'set_immediate';
      const paired = kind !== 'floor' && kind !== 'set_immediate';
      const v = { js: [], c: [], koffi: [], floor: [] };
      if (hasC) await c.wake(name, warm);
      for (let i = 0; i < warm; i++) {
        await sides.js(state);
        if (sides.koffi) await sides.koffi(state);
      }
      for (let done = 0; done < n; done += chunk) {
        const k = Math.min(chunk, n - done);
        if (hasC) v.c.push(...(await c.wake(name, k)));
        for (let i = 0; i < k; i++) v.js.push(await sides.js(state));
        if (sides.koffi) for (let i = 0; i < k; i++) v.koffi.push(await sides.koffi(state));
        if (paired) for (let i = 0; i < k; i++) v.floor.push(await all.floor.js(state));
      }
      out.js[name] = stats(v.js);
      if (hasC) out.c[name] = stats(v.c);
      if (sides.koffi) out.koffi[name] = stats(v.koffi);
      if (paired) out.floor[name] = stats(v.floor);
    }
  }
  return out;
}
