// The flight recorder against the kernel: events of real waits and signals, the kernel's signal
// timestamp of a sync_file, labels in errors and in the kernel's own view of a dma-buf (fdinfo),
// inspect()'s verdicts, util.inspect, `await using`, and a trace of one compositor-kit frame on
// vkms whose flows run acquire -> commit -> flip -> release.
import { expect } from 'chai';
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { inspect as utilInspect } from 'node:util';
import {
  CHANNELS,
  ClosedError,
  Device,
  KmsDevice,
  ScanoutReleases,
  SurfaceSync,
  SurfaceCommit,
  TimelineTimeoutError,
  VgemDevice,
  inspect,
  disableInspect,
  enableInspect,
  startTrace,
  stopTrace,
  type ObjectEvent,
  type SignalEvent,
  type WaitContext,
  type ChromeTraceEvent,
  ReleasePoint,
} from 'explicit-sync';
import { shouldReject } from '../helpers.mjs';
import { openTimelineDevice, suiteDevices, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith, expectNoVkms, has } from './kernel-features.mjs';

/** Collects the wait channel's settled contexts while `fn` runs. */
async function collectWaits(fn: () => Promise<void>): Promise<WaitContext[]> {
  const done: WaitContext[] = [];
  const handlers = {
    start: () => undefined,
    end: () => undefined,
    asyncStart: () => undefined,
    asyncEnd: (c: WaitContext) => void done.push(c),
    error: () => undefined,
  };
  const ch = diagnosticsChannel.tracingChannel<string, WaitContext>(CHANNELS.wait);
  ch.subscribe(handlers);
  try {
    await fn();
  } finally {
    ch.unsubscribe(handlers);
  }
  return done;
}

describeWith(['timeline', 'vgem'], 'flight recorder (kernel: virtio_gpu timelines, vgem fences)', function () {
  this.timeout(60000);
  const devices = suiteDevices();
  let dev: Device;
  let vgem: VgemDevice;
  before(() => ({ dev, vgem } = devices));
  after(() => disableInspect());

  it('explicit-sync:wait: a timeline wait, start to resolve, with its label, mechanism and the timeline before and after', async () => {
    using tl = dev.createTimeline({ label: 'acquire' });
    const waits = await collectWaits(async () => {
      const p = tl.wait(3, { timeoutMs: 10_000 });
      tl.signal(3);
      await p;
    });
    expect(waits).to.have.length(1);
    const w = waits[0]!;
    expect(w.object).to.include({ kind: 'Timeline', label: 'acquire' });
    expect(w.point).to.equal(3n);
    expect(w.mode).to.equal('signaled');
    expect(w.mechanism).to.equal(dev.features.waitMechanism);
    expect(w.outcome).to.equal('resolved');
    expect(w.lastSignaled).to.equal(3n);
    expect(w.endNs! >= w.startNs).to.equal(true);
  });

  it('explicit-sync:wait: a timeout says unsubmitted or unsignalled, as the error does', async () => {
    using tl = dev.createTimeline({ label: 'never' });
    const failed: WaitContext[] = [];
    const handlers = { start: () => undefined, end: () => undefined, asyncStart: () => undefined, asyncEnd: () => undefined, error: (c: WaitContext) => void failed.push(c) };
    const ch = diagnosticsChannel.tracingChannel<string, WaitContext>(CHANNELS.wait);
    ch.subscribe(handlers);
    try {
      const err = await shouldReject(tl.wait(2, { timeoutMs: 50 }), TimelineTimeoutError);
      expect(err.message).to.include("timeline 'never' point 2");
    } finally {
      ch.unsubscribe(handlers);
    }
    expect(failed).to.have.length(1);
    expect(failed[0]).to.include({ outcome: 'timedout', reason: 'unsubmitted' });
  });

  it("a sync_file wait records the kernel's signal timestamp (SYNC_IOC_FILE_INFO): signal <= wake", async () => {
    const { fence, syncFile } = vgemFence(vgem);
    using sf = syncFile;
    const waits = await collectWaits(async () => {
      const p = sf.wait({ timeoutMs: 10_000 });
      fence.signal();
      await p;
    });
    expect(waits).to.have.length(1);
    const w = waits[0]!;
    expect(w.mechanism).to.equal('uv_poll');
    expect(w.signalNs).to.be.a('bigint');
    expect(w.signalNs! >= w.startNs && w.signalNs! <= w.endNs!).to.equal(true);
  });

  it('explicit-sync:signal and explicit-sync:object carry kind, id, label, point and the timeline state', () => {
    const seen: Array<SignalEvent | ObjectEvent> = [];
    const on = (m: unknown): void => void seen.push(m as SignalEvent | ObjectEvent);
    diagnosticsChannel.subscribe(CHANNELS.signal, on);
    diagnosticsChannel.subscribe(CHANNELS.object, on);
    try {
      const tl = dev.createTimeline({ label: 'present' });
      tl.signal(7);
      tl.close();
    } finally {
      diagnosticsChannel.unsubscribe(CHANNELS.signal, on);
      diagnosticsChannel.unsubscribe(CHANNELS.object, on);
    }
    const ops = seen.map((e) => ('op' in e ? e.op : ''));
    expect(ops).to.deep.equal(['open', 'label', 'signal', 'close']);
    const sig = seen[2] as SignalEvent;
    expect(sig.object).to.include({ kind: 'Timeline', label: 'present' });
    expect(sig).to.include({ point: 7n, lastSubmitted: 7n, lastSignaled: 7n });
    expect((seen[0] as ObjectEvent).id).to.equal(sig.object.id);
  });

  it("labels show in ClosedError and in the kernel's fdinfo of a dma-buf (DMA_BUF_SET_NAME)", () => {
    const tl = dev.createTimeline({ label: 'client 3 release' });
    tl.close();
    expect(() => tl.query()).to.throw(ClosedError, "Timeline 'client 3 release'");
    using bo = vgem.createBuffer({ width: 4, height: 4 });
    using buf = bo.exportDmaBuf();
    buf.setLabel('scanout-7');
    expect(buf.label).to.equal('scanout-7');
    expect(readFileSync(`/proc/self/fdinfo/${buf.fd}`, 'utf8')).to.match(/^name:\s+scanout-7$/m);
    expect(() => buf.setLabel('x'.repeat(32))).to.throw(RangeError);
  });

  it('inspect(): open objects with labels, and each pending wait with its verdict', async () => {
    disableInspect();
    inspect(); // starts the census
    using acq = dev.createTimeline({ label: 'acq' });
    using rel = dev.createTimeline({ label: 'rel' });
    const { fence, syncFile } = vgemFence(vgem);
    using sf = syncFile;
    acq.importSyncFile(2, sf); // point 2 submitted, not signalled
    const rp = new ReleasePoint(rel, 1); // this process owes rel@1
    const ac = new AbortController();
    const waits = [acq.wait(1, { signal: ac.signal }), acq.wait(2, { signal: ac.signal }), rel.wait(1, { signal: ac.signal }), acq.wait(9, { signal: ac.signal })];
    waits.forEach((p) => p.catch(() => undefined));
    const report = inspect();
    const labels = report.objects.map((o) => o.label);
    expect(labels).to.include.members(['acq', 'rel']);
    const verdict = (label: string, point: string): string | undefined =>
      report.waits.find((w) => w.object.label === label && w.point === point)?.verdict;
    expect(verdict('acq', '2')).to.equal('submitted, not signalled');
    expect(verdict('acq', '9')).to.equal('never submitted');
    expect(verdict('rel', '1')).to.equal('release owed');
    expect(report.releases.map((r) => r.point)).to.include('1');
    ac.abort();
    fence.signal();
    rp.close();
    await rp.paid;
    await Promise.allSettled(waits);
    expect(inspect().waits).to.have.length(0);
    disableInspect();
  });

  it('util.inspect shows kind, label, handle, last signalled/submitted and pending waits', async () => {
    using tl = dev.createTimeline({ label: 'shown' });
    tl.signal(4);
    const ac = new AbortController();
    const p = tl.wait(6, { signal: ac.signal }).catch(() => undefined);
    const text = utilInspect(tl);
    expect(text).to.match(/^Timeline \{/);
    expect(text).to.include("label: 'shown'").and.include('lastSignaled: 4n').and.include('pendingWaits: 1').and.include(`handle: ${tl.handle}`);
    ac.abort();
    await p;
    tl.close();
    expect(utilInspect(tl)).to.include('closed: true');
  });

  it('await using a Device rejects its pending waits with ClosedError before the block ends', async () => {
    let pending: Promise<void> | undefined;
    let rejected: unknown;
    {
      await using d = openTimelineDevice();
      const tl = d.createTimeline();
      pending = tl.wait(5);
      pending.catch((e: unknown) => (rejected = e));
    }
    expect(rejected).to.be.instanceOf(ClosedError);
  });
}, () => expectNoDeviceWith('timeline'));

describeWith(['timeline', 'vkms'], 'trace of a compositor-kit frame (kernel: virtio_gpu timelines, vkms)', function () {
  this.timeout(60000);

  it('await using a KmsDevice drains its pending page flip', async () => {
    let flip: Promise<unknown> | undefined;
    let flipped = false;
    enableInspect();
    {
      await using kms = KmsDevice.open({ driver: 'vkms' });
      const out = kms.pickOutput();
      const fb = kms.createFramebuffer({ width: out.mode.width, height: out.mode.height });
      flip = kms.atomic().modeset(out).setPlane(out.plane, out.crtc, fb).commit({ allowModeset: true, pageFlipEvent: true }).flip!;
      flip.then(() => (flipped = true), () => undefined);
      expect(inspect().waits.filter((w) => w.verdict === 'flip pending')).to.have.length(1);
      expect(utilInspect(kms)).to.include('pendingFlips: 1');
    }
    expect(flipped).to.equal(true);
    expect(inspect().waits).to.have.length(0);
    disableInspect();
  });

  it('the trace loads as Chrome JSON and links acquire -> commit -> flip -> release', async () => {
    using dev = openTimelineDevice();
    using kms = KmsDevice.open({ driver: 'vkms' });
    const out = kms.pickOutput();
    using fbA = kms.createFramebuffer({ width: out.mode.width, height: out.mode.height });
    using fbB = kms.createFramebuffer({ width: out.mode.width, height: out.mode.height });
    kms.atomic().modeset(out).setPlane(out.plane, out.crtc, fbA).commit({ allowModeset: true });
    using acquire = dev.createTimeline({ label: 'client acquire' });
    using release = dev.createTimeline({ label: 'client release' });
    using surface = new SurfaceSync<string>();
    using scanout = new ScanoutReleases();
    startTrace();
    let trace;
    try {
      surface.attach('buffer-1');
      surface.setAcquirePoint(acquire, 1);
      surface.setReleasePoint(release, 1);
      const c = surface.commit() as SurfaceCommit<string>;
      acquire.signal(1); // the client's GPU work is done
      expect(await c.ready).to.deep.equal({ status: 'ready' });
      using fence = await c.acquireFence();
      scanout.releaseOnDisplacement(c.release!);
      const r1 = kms.atomic().setPlane(out.plane, out.crtc, fbB).inFence(out.plane, fence).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
      scanout.committed(r1.outFence!);
      await r1.flip;
      // The next frame displaces it: the release is paid from this commit's out-fence.
      const r2 = kms.atomic().setPlane(out.plane, out.crtc, fbA).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
      scanout.committed(r2.outFence!);
      surface.destroySurface(); // the client goes away: the surface's own use of buffer-1 ends too
      await r2.flip;
      r1.outFence!.close();
      r2.outFence!.close();
      await release.wait(1, { timeoutMs: 5000 });
      scanout.close();
    } finally {
      trace = stopTrace();
    }
    const json = JSON.parse(JSON.stringify(trace)) as { traceEvents: ChromeTraceEvent[] };
    for (const e of json.traceEvents) {
      expect(e.ph).to.be.oneOf(['X', 'i', 'M', 's', 'f']);
      expect(e.pid).to.be.a('number');
      expect(e.tid).to.be.a('number');
      expect(e.ts).to.be.a('number');
      expect(e.name).to.be.a('string');
    }
    const threads = json.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args!['name'] as string);
    expect(threads.some((n) => n.includes("'client acquire'"))).to.equal(true);
    expect(threads.some((n) => n.includes("'client release'"))).to.equal(true);
    expect(threads.some((n) => n.includes('page flips'))).to.equal(true);
    const flows = new Set(json.traceEvents.filter((e) => e.ph === 's').map((e) => e.name));
    expect([...flows]).to.include.members(['acquire → commit', 'commit → flip', 'flip → release']);
    // Every flow end binds to a slice on its track that encloses it.
    const slices = json.traceEvents.filter((e) => e.ph === 'X');
    for (const f of json.traceEvents.filter((e) => e.ph === 's' || e.ph === 'f'))
      expect(slices.some((s) => s.tid === f.tid && s.ts <= f.ts && f.ts <= s.ts + s.dur!), `${f.name} ${f.ph}`).to.equal(true);
    expect(json.traceEvents.some((e) => e.ph === 'i' && e.name === 'signal @1')).to.equal(true);
  });
}, () => (has('timeline') ? expectNoVkms() : expectNoDeviceWith('timeline')));
