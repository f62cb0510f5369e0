// SwSyncTimeline against the kernel's sw_sync (built out of tree by the VM runner), with cases ported
// from IGT's tests/sw_sync.c and the kernel's tools/testing/selftests/sync (sync_fence, sync_merge,
// sync_wait, sync_alloc): fences at passed points, merges on one and on many timelines, signal
// order, info timestamps, and a timeline closed with fences pending. Through the SyncFile API only.
import { expect } from 'chai';
import {
  ClosedError,
  FenceError,
  InvalidArgTypeError,
  OutOfRangeError,
  SwSyncTimeline,
  SyncFile,
  UnsupportedError,
  SW_SYNC_PATH,
} from 'explicit-sync';
import { isOpen, shouldReject, shouldThrow } from '../helpers.mjs';
import { describeWith } from './kernel-features.mjs';

const signaled = (files: readonly SyncFile[]): boolean[] => files.map((f) => f.isSignaled());

describeWith(
  ['sw_sync'],
  'SwSyncTimeline (kernel)',
  () => {
    describe('SwSyncTimeline.open()', () => {
      it('opens a new timeline each time, close-on-exec, owning its fd', () => {
        const a = SwSyncTimeline.open();
        const b = SwSyncTimeline.open();
        expect(a.fd).to.be.greaterThan(2);
        expect(b.fd).to.not.equal(a.fd);
        expect(a.path).to.equal(SW_SYNC_PATH);
        // Separate timelines: advancing one signals nothing on the other.
        using fa = a.createFence(1);
        using fb = b.createFence(1);
        a.advance();
        expect(signaled([fa, fb])).to.deep.equal([true, false]);
        const fd = a.fd;
        a.close();
        a.close();
        expect(isOpen(fd)).to.equal(false);
        b.close();
      });

      it('is UnsupportedError (ENOENT, feature sw_sync) where the file is missing', () => {
        const e = shouldThrow(() => SwSyncTimeline.open('/sys/kernel/debug/sync/no-such-file'), UnsupportedError);
        expect(e.code).to.equal('ENOENT');
        expect(e.feature).to.equal('sw_sync');
      });
    });

    describe('SwSyncTimeline#createFence()', () => {
      it('a fence at a point already passed is signalled at creation (IGT sync_expired_merge, selftest sync_fence)', () => {
        using tl = SwSyncTimeline.open();
        using zero = tl.createFence(0);
        expect(zero.isSignaled()).to.equal(true);
        tl.advance(5);
        using old = tl.createFence(3);
        using now = tl.createFence(5);
        using later = tl.createFence(6);
        expect(signaled([old, now, later])).to.deep.equal([true, true, false]);
      });

      it('reports driver sw_sync, status and a signal timestamp (SYNC_IOC_FILE_INFO)', () => {
        using tl = SwSyncTimeline.open();
        using f = tl.createFence(1, { name: 'frame 1' });
        const before = f.info();
        expect(before.status).to.equal('active');
        expect(before.fences).to.have.length(1);
        expect(before.fences[0]?.driver).to.equal('sw_sync');
        expect(before.fences[0]?.timestampNs).to.equal(undefined);
        tl.advance();
        const after = f.info();
        expect(after.status).to.equal('signaled');
        expect(after.fences[0]?.timestampNs).to.be.a('bigint');
      });

      it('refuses points outside [0, 2^32 - 1] and names over 31 bytes', () => {
        using tl = SwSyncTimeline.open();
        expect(shouldThrow(() => tl.createFence(-1), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
        expect(shouldThrow(() => tl.createFence(2 ** 32), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
        expect(shouldThrow(() => tl.createFence(1n << 32n), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
        expect(shouldThrow(() => tl.createFence('1' as never), InvalidArgTypeError).code).to.equal('ERR_INVALID_ARG_TYPE');
        expect(shouldThrow(() => tl.createFence(1, { name: 'x'.repeat(32) }), TypeError)).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
        using ok = tl.createFence(2n ** 32n - 1n, { name: 'x'.repeat(31) });
        expect(ok.fd).to.be.greaterThan(2);
      });
    });

    describe('SwSyncTimeline#advance()', () => {
      it('signals fences in point order, whatever order they were made in (IGT sync_multi_consumer, selftest sync_fence)', () => {
        using tl = SwSyncTimeline.open();
        const points = [5, 1, 4, 2, 3];
        const fences = points.map((p) => tl.createFence(p));
        try {
          for (let value = 1; value <= 5; value++) {
            tl.advance();
            expect(signaled(fences), `at ${value}`).to.deep.equal(points.map((p) => p <= value));
          }
        } finally {
          for (const f of fences) f.close();
        }
      });

      it('gives increasing signal timestamps to fences signalled one after another', () => {
        using tl = SwSyncTimeline.open();
        const fences = [1, 2, 3, 4].map((p) => tl.createFence(p));
        try {
          for (let i = 0; i < fences.length; i++) tl.advance();
          const stamps = fences.map((f) => f.info().fences[0]?.timestampNs ?? 0n);
          for (let i = 1; i < stamps.length; i++) expect(stamps[i]! >= stamps[i - 1]!, `timestamp ${i}`).to.equal(true);
          expect(stamps[3]! > stamps[0]!).to.equal(true);
        } finally {
          for (const f of fences) f.close();
        }
      });

      it('resolves a pending wait when the timeline reaches its point (selftest sync_wait)', async () => {
        using tl = SwSyncTimeline.open();
        using f = tl.createFence(2);
        const waiting = f.wait({ timeoutMs: 20_000 });
        tl.advance();
        expect(f.isSignaled()).to.equal(false);
        setTimeout(() => tl.advance(), 50);
        await waiting;
        expect(f.isSignaled()).to.equal(true);
      });

      it('refuses a step outside [0, 2^32 - 1]; advance(0) changes nothing', () => {
        using tl = SwSyncTimeline.open();
        using f = tl.createFence(1);
        tl.advance(0);
        expect(f.isSignaled()).to.equal(false);
        expect(shouldThrow(() => tl.advance(-1), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
        expect(shouldThrow(() => tl.advance(2 ** 32), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
      });
    });

    describe('merges (SyncFile#merge)', () => {
      it('many fences of one timeline merge into the latest one (selftest sync_merge, IGT sync_merge_same)', () => {
        using tl = SwSyncTimeline.open();
        const fences = Array.from({ length: 32 }, (_, i) => tl.createFence(i + 1));
        try {
          using merged = SyncFile.merge(...fences);
          expect(merged.info().fences).to.have.length(1);
          tl.advance(31);
          expect(merged.isSignaled()).to.equal(false);
          tl.advance();
          expect(merged.isSignaled()).to.equal(true);
          using self = fences[0]!.merge(fences[0]!);
          expect(self.info().fences).to.have.length(1);
        } finally {
          for (const f of fences) f.close();
        }
      });

      it('fences of three timelines merge into one that signals when all have (selftest sync_merge, IGT sync_multi_timeline_wait)', async () => {
        using a = SwSyncTimeline.open();
        using b = SwSyncTimeline.open();
        using c = SwSyncTimeline.open();
        using fa = a.createFence(5);
        using fb = b.createFence(5);
        using fc = c.createFence(5);
        using merged = SyncFile.merge(fa, fb, fc);
        expect(merged.info().fences).to.have.length(3);
        const waiting = merged.wait({ timeoutMs: 20_000 });
        a.advance(5);
        b.advance(5);
        expect(merged.isSignaled()).to.equal(false);
        expect(merged.info().fences.map((f) => f.status)).to.deep.equal(['signaled', 'signaled', 'active']);
        c.advance(5);
        await waiting;
        expect(merged.info().status).to.equal('signaled');
      });
    });

    describe('lifetime', () => {
      it('every method after close() throws ClosedError; fences outlive the timeline', () => {
        const tl = SwSyncTimeline.open();
        const f = tl.createFence(0);
        tl.close();
        expect(shouldThrow(() => tl.createFence(1), ClosedError).code).to.equal('EBADF');
        expect(shouldThrow(() => tl.advance(), ClosedError).code).to.equal('EBADF');
        expect(f.isSignaled()).to.equal(true);
        f.close();
      });

      it('closing a timeline signals its pending fences with ENOENT: waits reject with FenceError (IGT sync_timeline_closed)', async () => {
        const tl = SwSyncTimeline.open();
        using f = tl.createFence(1);
        const waiting = f.wait({ timeoutMs: 20_000 });
        tl.close();
        const e = await shouldReject(waiting, FenceError);
        expect(e.code).to.equal('ENOENT');
        expect(f.info().status).to.equal('error');
      });
    });
  },
  () => {
    // A kernel without sw_sync (e.g. one for which the runner could not build it): the documented error.
    const e = shouldThrow(() => SwSyncTimeline.open(), UnsupportedError);
    expect(e.code).to.equal('ENOENT');
    expect(e.feature).to.equal('sw_sync');
  },
);
