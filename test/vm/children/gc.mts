// Child of lifetimes.test.mts (run with --expose-gc --no-warnings): objects dropped without close()
// and collected by a forced GC. Prints `RESULT <json>` with what it saw.
import { fstatSync, openSync, closeSync, readlinkSync } from 'node:fs';
import { Device, DmaBuf, SyncFile, VgemDevice } from 'explicit-sync';
import { openFds } from '../../helpers.mjs';
import { openTimelineDevice, vgemFence } from '../syncobj-helpers.mjs';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

// Leak warnings are rate-limited summaries: each says in `count` how many objects it reports.
const leaks: { message: string; count: number }[] = [];
process.on('warning', (w: Error & { code?: string; count?: number }) => {
  if (w.code === 'EXPLICIT_SYNC_LEAK') leaks.push({ message: w.message, count: w.count ?? 1 });
});
/** Objects reported leaked (garbage-collected without close()) since `leaks` was last emptied. */
const leaked = (): number => leaks.reduce((n, w) => n + w.count, 0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rssMiB = (): number => Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;

/** Forces GC until `done()` (finalization callbacks run as tasks after a GC, hence the sleeps). */
async function collect(done: () => boolean, rounds = 200): Promise<boolean> {
  for (let i = 0; i < rounds && !done(); i++) {
    gc!();
    await sleep(25);
  }
  return done();
}

/** Settles `p` within `ms`: 'resolved', 'rejected <code>', or 'pending'. */
async function outcome(p: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<string>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([
      p.then(
        () => 'resolved',
        (e: Error & { code?: string }) => `rejected ${e.name} ${e.code ?? ''}`.trim(),
      ),
      t,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const N = Number(process.argv[2] ?? 200);
const result: Record<string, unknown> = { n: N };

const dev = openTimelineDevice();
const vgem = VgemDevice.open();
const buf = vgem.createBuffer({ width: 16, height: 16 });
const dmabuf = buf.exportDmaBuf();
buf.close();

// Warm up everything once (module state, probes, a watcher) so the baseline is fair.
{
  const { fence, syncFile } = vgemFence(vgem);
  const p = syncFile.wait();
  fence.signal();
  await p;
  syncFile.close();
  dev.createTimeline().close();
  void dev.features;
}
gc();
await sleep(50);

// 1. A sweep of objects of every fd/handle-owning kind, dropped without close().
{
  const fdsBefore = openFds().length;
  const rssBefore = rssMiB();
  let waited = 0;
  await (async () => {
    const keep: unknown[] = [];
    for (let i = 0; i < N; i++) {
      keep.push(dmabuf.exportSyncFile('read')); // SyncFile
      keep.push(DmaBuf.fromFd(dmabuf.fd, { dup: true })); // DmaBuf
      keep.push(dev.createTimeline()); // Timeline (a handle, no fd)
      keep.push(dev.createSyncobj()); // Syncobj (a handle, no fd)
    }
    for (let i = 0; i < Math.min(N, 20); i++) keep.push(Device.open(dev.path)); // Device (an fd)
    // SyncFiles that waited once: their watcher exists (stopped) when they are dropped.
    for (let i = 0; i < Math.min(N, 50); i++) {
      const { fence, syncFile } = vgemFence(vgem);
      const p = syncFile.wait();
      fence.signal();
      await p;
      keep.push(syncFile);
      waited++;
    }
    result['fdsPeak'] = openFds().length;
    result['rssPeakMiB'] = rssMiB();
    result['objects'] = keep.length;
    keep.length = 0;
  })();
  const expected = N * 4 + Math.min(N, 20) + waited;
  const t0 = Date.now();
  result['collected'] = await collect(() => leaked() >= expected);
  await sleep(50);
  result['collectMs'] = Date.now() - t0;
  result['warnings'] = leaked();
  result['warningLines'] = leaks.length;
  result['expectedWarnings'] = expected;
  result['fdsBefore'] = fdsBefore;
  result['fdsAfter'] = openFds().length;
  result['rssBeforeMiB'] = rssBefore;
  result['rssAfterMiB'] = rssMiB();
  result['firstWarning'] = leaks[0]?.message;
  result['summaryWarning'] = leaks[1]?.message;
}

// 2. A closed object never closes its old fd number, which someone else may own now.
{
  leaks.length = 0;
  const reused = await (async () => {
    const sf = dmabuf.exportSyncFile('read');
    const n = sf.fd;
    sf.close();
    const other = openSync('/dev/null', 'r'); // takes the lowest free number: n
    return { n, other };
  })();
  // dup: true wraps a copy; collecting the wrapper closes only the copy.
  const original = dmabuf.exportSyncFile('read');
  (() => void SyncFile.fromFd(original.fd, { dup: true }))();
  await collect(() => leaked() >= 1, 100);
  await sleep(50);
  let stillOpen = false;
  try {
    fstatSync(reused.other);
    stillOpen = readlinkSync(`/proc/self/fd/${reused.other}`) === '/dev/null';
  } catch {
    stillOpen = false;
  }
  result['reuse'] = {
    sameNumber: reused.n === reused.other,
    otherStillOpen: stillOpen,
    warnings: leaked(),
    originalStillWorks: original.isSignaled(),
  };
  closeSync(reused.other);
  original.close();
}

// 3. An object dropped while a wait on it is pending stays alive until the wait settles: the
//    wait resolves when the fence signals, and only then can the object be collected.
{
  leaks.length = 0;
  const fdsBefore = openFds().length;
  const { fence, sfPending } = (() => {
    const { fence, syncFile } = vgemFence(vgem);
    return { fence, sfPending: syncFile.wait() };
  })();
  // A timeline wait, its Timeline dropped: signalled through a second handle on the same syncobj.
  const { tlPending, tfd } = (() => {
    const t = dev.createTimeline();
    return { tlPending: t.wait(5), tfd: t.exportFd() };
  })();
  await collect(() => false, 10);
  const beforeSignal = { warnings: leaked(), sf: await outcome(sfPending, 10), tl: await outcome(tlPending, 10) };
  fence.signal();
  const other = dev.importTimeline(tfd);
  closeSync(tfd);
  other.signal(5);
  other.close();
  const afterSignal = { sf: await outcome(sfPending, 10000), tl: await outcome(tlPending, 10000) };
  await collect(() => leaked() >= 2);
  await sleep(50);
  result['pending'] = { beforeSignal, afterSignal, warningsAfter: leaked(), fdsBefore, fdsAfter: openFds().length };
}

// 4. A SyncFile collected after waiting, and a new one on (likely) the same fd number: the new
//    one's waits work (the old watcher never touches the new fd).
{
  leaks.length = 0;
  const oldFd = await (async () => {
    const { fence, syncFile } = vgemFence(vgem);
    const p = syncFile.wait();
    fence.signal();
    await p;
    return syncFile.fd;
  })();
  await collect(() => leaked() >= 1);
  await sleep(50);
  const { fence, syncFile } = vgemFence(vgem);
  const p = syncFile.wait({ timeoutMs: 15000 });
  setTimeout(() => fence.signal(), 50);
  result['fdReuse'] = { sameNumber: syncFile.fd === oldFd, wait: await outcome(p, 20000), warnings: leaked() };
  syncFile.close();
}

dmabuf.close();
vgem.close();
dev.close();
console.log(`RESULT ${JSON.stringify(result)}`);
