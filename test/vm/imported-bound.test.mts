// Waits on imported timelines and syncobjs (which may come from another process) are bounded by
// default: a peer that never submits or signals cannot hang a wait, least of all a waitSync().
import { expect } from 'chai';
import { closeSync } from 'node:fs';
import {
  Device,
  IMPORTED_DEFAULT_TIMEOUT_MS,
  Syncobj,
  Timeline,
  TimelineTimeoutError,
  TimeoutError,
  monotonicNow,
} from 'explicit-sync';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { openTimelineDevice, since } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

describeWith(['timeline'], 'imported syncobjs and timelines: bounded waits (kernel)', function () {
  this.timeout(60000);
  let dev: Device;
  let t: Timeline;
  let s: Syncobj;
  let tfd: number;
  let sfd: number;
  before(() => {
    dev = openTimelineDevice();
    t = dev.createTimeline();
    s = dev.createSyncobj();
    tfd = t.exportFd();
    sfd = s.exportFd();
  });
  after(() => {
    closeSync(tfd);
    closeSync(sfd);
    t.close();
    s.close();
    dev.close();
  });

  it(`created objects are unbounded; imported ones default to ${IMPORTED_DEFAULT_TIMEOUT_MS} ms, or what the import says`, () => {
    expect(IMPORTED_DEFAULT_TIMEOUT_MS).to.equal(10000);
    expect(t.defaultTimeoutMs).to.equal(Infinity);
    expect(s.defaultTimeoutMs).to.equal(Infinity);
    using a = dev.importTimeline(tfd);
    using b = dev.importSyncobj(sfd);
    using c = dev.importTimeline(tfd, { defaultTimeoutMs: 250 });
    using d = dev.importTimeline(tfd, { defaultTimeoutMs: Infinity });
    expect([a.defaultTimeoutMs, b.defaultTimeoutMs, c.defaultTimeoutMs, d.defaultTimeoutMs]).to.deep.equal([10000, 10000, 250, Infinity]);
  });

  it('a wait without timeoutMs times out at the bound, and the error says it was the default bound', async () => {
    using imp = dev.importTimeline(tfd, { defaultTimeoutMs: 300 });
    const t0 = monotonicNow();
    const e = await shouldReject(imp.wait(5), TimelineTimeoutError);
    expect(since(t0)).to.be.greaterThanOrEqual(290);
    expect(e.reason).to.equal('unsubmitted');
    expect(e.message).to.include('default bound').and.include('timeoutMs: Infinity');
    const t1 = monotonicNow();
    const e2 = shouldThrow(() => imp.waitSync(5), TimelineTimeoutError);
    expect(since(t1)).to.be.greaterThanOrEqual(290);
    expect(e2.message).to.include('default bound');
  });

  it('a wait\'s own timeoutMs or deadline wins; timeoutMs: Infinity waits for as long as it takes', async () => {
    using imp = dev.importTimeline(tfd, { defaultTimeoutMs: 200 });
    const e = await shouldReject(imp.wait(5, { timeoutMs: 20 }), TimelineTimeoutError);
    expect(e.message).not.to.include('default bound');
    const unbounded = imp.wait(5, { timeoutMs: Infinity });
    const byDeadline = imp.wait(5, { deadline: monotonicNow() + 60_000_000_000n });
    expect(await settlesWithin(unbounded, 800)).to.equal(false);
    expect(await settlesWithin(byDeadline, 10)).to.equal(false);
    t.signal(5);
    await unbounded;
    await byDeadline;
  });

  it('imported with defaultTimeoutMs: Infinity, waits are unbounded', async () => {
    using imp = dev.importTimeline(tfd, { defaultTimeoutMs: Infinity });
    const p = imp.wait(9);
    expect(await settlesWithin(p, 600)).to.equal(false);
    t.signal(9);
    await p;
  });

  it('blocking multi-waits take the smallest bound among their entries', () => {
    using imp = dev.importTimeline(tfd, { defaultTimeoutMs: 200 });
    const t0 = monotonicNow();
    shouldThrow(() => Timeline.waitAllSync([{ timeline: t, point: 100 }, { timeline: imp, point: 100 }]), TimeoutError);
    expect(since(t0)).to.be.greaterThanOrEqual(190);
  });

  it('an imported binary syncobj is bounded the same way', async () => {
    using imp = dev.importSyncobj(sfd, { defaultTimeoutMs: 200 });
    const e = await shouldReject(imp.wait(), TimeoutError);
    expect(e.message).to.include('default bound');
    shouldThrow(() => imp.waitSync(), TimeoutError);
    shouldThrow(() => Syncobj.waitAllSync([s, imp]), TimeoutError);
  });
}, () => expectNoDeviceWith('timeline'));
