// Deadlines reach the fence: a deadline the library sets on a sync_file (SyncFile#setDeadline, a
// wait's fenceDeadline) is read back from the fence's driver with SW_SYNC_GET_DEADLINE
// (SwSyncTimeline#deadlineOf), as IGT's sw_sync deadline tests and the kernel's dma-buf selftests do.
// Needs sw_sync and SYNC_IOC_SET_DEADLINE (6.7): 6.12 and 7.3 have both; 6.1's sw_sync has no
// SW_SYNC_GET_DEADLINE and its sync_file no SET_DEADLINE, which the absent case checks.
import { expect } from 'chai';
import { ExplicitSyncError, SwSyncTimeline, SyncFile, TimeoutError, UnsupportedError, monotonicNow } from 'explicit-sync';
import { shouldThrow } from '../helpers.mjs';
import { describeWith, has } from './kernel-features.mjs';

const SECOND = 1_000_000_000n;

describeWith(
  ['sw_sync', 'syncFileDeadline'],
  'deadlines reach the fence (sw_sync, kernel)',
  () => {
    it('SyncFile#setDeadline(bigint): the fence holds that deadline; an earlier one replaces it, a later one not', () => {
      using tl = SwSyncTimeline.open();
      using f = tl.createFence(1);
      expect(tl.deadlineOf(f), 'no deadline set yet').to.equal(undefined);
      const d = monotonicNow() + 60n * SECOND;
      f.setDeadline(d);
      expect(tl.deadlineOf(f)).to.equal(d);
      f.setDeadline(d + SECOND);
      expect(tl.deadlineOf(f), 'a later deadline changes nothing').to.equal(d);
      f.setDeadline(d - SECOND);
      expect(tl.deadlineOf(f), 'the earliest deadline wins').to.equal(d - SECOND);
    });

    it('SyncFile#setDeadline(ms from now): the fence holds now + ms on CLOCK_MONOTONIC', () => {
      using tl = SwSyncTimeline.open();
      using f = tl.createFence(1);
      const before = monotonicNow();
      f.setDeadline(5_000);
      const after = monotonicNow();
      const d = tl.deadlineOf(f) as bigint;
      expect(d >= before + 5n * SECOND && d <= after + 5n * SECOND, `${d} within [${before}, ${after}] + 5 s`).to.equal(true);
    });

    it("a wait's fenceDeadline is set on the fence before the wait; the wait still resolves when it signals", async () => {
      using tl = SwSyncTimeline.open();
      using f = tl.createFence(1);
      const d = monotonicNow() + 30n * SECOND;
      const waiting = f.wait({ fenceDeadline: d, timeoutMs: 20_000 });
      expect(tl.deadlineOf(f)).to.equal(d);
      shouldThrow(() => f.waitSync({ fenceDeadline: d - SECOND, timeoutMs: 0 }), TimeoutError);
      expect(tl.deadlineOf(f), 'waitSync sets it too').to.equal(d - SECOND);
      tl.advance();
      await waiting;
      // The kernel takes no deadline for a fence that has signalled (dma_fence_set_deadline).
      f.setDeadline(d - 2n * SECOND);
      expect(tl.deadlineOf(f)).to.equal(d - SECOND);
    });

    it('a deadline on a merge of fences of two timelines reaches each fence; the merge itself is no sw_sync fence (EINVAL)', () => {
      using a = SwSyncTimeline.open();
      using b = SwSyncTimeline.open();
      using fa = a.createFence(1);
      using fb = b.createFence(1);
      using merged = SyncFile.merge(fa, fb);
      const d = monotonicNow() + 45n * SECOND;
      merged.setDeadline(d);
      expect([a.deadlineOf(fa), b.deadlineOf(fb)]).to.deep.equal([d, d]);
      // The kernel reads the fence, not the timeline: either timeline's fd reads either fence.
      expect(a.deadlineOf(fb)).to.equal(d);
      const e = shouldThrow(() => a.deadlineOf(merged), ExplicitSyncError);
      expect([e.code, e.syscall, e.ioctl]).to.deep.equal(['EINVAL', 'ioctl', 'SW_SYNC_GET_DEADLINE']);
    });

    it('deadlineOf() refuses what is not an open SyncFile', () => {
      using tl = SwSyncTimeline.open();
      const f = tl.createFence(1);
      expect(shouldThrow(() => tl.deadlineOf(3 as never), TypeError)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
      f.close();
      expect(shouldThrow(() => tl.deadlineOf(f), ExplicitSyncError).code).to.equal('EBADF');
    });
  },
  () => {
    // 6.1: its sync_file takes no deadline (UnsupportedError, since 6.7) and its sw_sync cannot
    // report one (SW_SYNC_GET_DEADLINE is unknown there: ENOTTY).
    if (!has('sw_sync')) {
      expect(shouldThrow(() => SwSyncTimeline.open(), UnsupportedError).feature).to.equal('sw_sync');
      return;
    }
    using tl = SwSyncTimeline.open();
    using f = tl.createFence(1);
    expect(shouldThrow(() => f.setDeadline(1000), UnsupportedError).code).to.equal('ENOTTY');
    const e = shouldThrow(() => tl.deadlineOf(f), UnsupportedError);
    expect([e.code, e.feature]).to.deep.equal(['ENOTTY', 'sw_sync deadlines']);
  },
);
