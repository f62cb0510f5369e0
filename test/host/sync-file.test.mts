// SyncFile on the host: argument validation, wrong fd types, error mapping, and the wait machinery.
// The host has no sync_file source, so the wait tests use a FIFO as a stand-in fence: it polls
// readable ("signalled") once a byte is written into it, and a stand-in SYNC_IOC_FILE_INFO status
// (signalled, or signalled with an error) for the wait machinery's error-fence path, which this VM's
// drivers cannot produce (no vgem, virtio_gpu or vkms fence signals with an error). Real fences are
// tested in test/vm.
import { expect } from 'chai';
import { kAdopt } from '../../dist/resource.js';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  ClosedError,
  ExplicitSyncError,
  FenceError,
  InvalidArgTypeError,
  InvalidArgValueError,
  OutOfRangeError,
  SyncFile,
  TimeoutError,
  UnsupportedError,
  monotonicNow,
} from 'explicit-sync';
import { native } from '../../dist/native.js';
import { isOpen, openFifo as openFifoIn, settlesWithin, shouldReject, shouldThrow, sleep } from '../helpers.mjs';

let dir: string;
const openFifo = (): number => openFifoIn(dir);

/** The SYNC_IOC_FILE_INFO status (1 signalled, < 0 an error) of stand-in fences, by fd. */
const standInStatus = new Map<number, number>();

/**
 * Within the calling describe(): SYNC_IOC_FILE_INFO on a stand-in fence's fd reports its stand-in
 * status (struct sync_file_info with no fences) instead of the FIFO's ENOTTY.
 */
function useStandInStatus(): void {
  const binding = native as unknown as { syncFileInfoInto(fd: number, out: Uint8Array): number };
  let real: typeof binding.syncFileInfoInto;
  before(() => {
    real = binding.syncFileInfoInto;
    binding.syncFileInfoInto = (fd, out) => {
      const status = standInStatus.get(fd);
      if (status === undefined) return real(fd, out);
      out.fill(0, 0, 56);
      new DataView(out.buffer, out.byteOffset).setInt32(32, status, true);
      return 0;
    };
  });
  after(() => {
    binding.syncFileInfoInto = real;
    standInStatus.clear();
  });
}

/** A stand-in "fence" over a FIFO: signal() it, or fail() it (signalled with error `errno` < 0). */
function fakeFence(): { sf: SyncFile; signal(): void; fail(errno: number): void } {
  const fd = openFifo();
  const sf = SyncFile[kAdopt](fd);
  standInStatus.set(fd, 1);
  const signal = (): void => void writeSync(fd, 'x');
  return { sf, signal, fail: (errno) => (standInStatus.set(fd, errno), signal()) };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'es-sync-file-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('SyncFile.fromFd()', () => {
  it('rejects non-fd arguments with Node-style errors', () => {
    expect(shouldThrow(() => SyncFile.fromFd('3' as unknown as number), InvalidArgTypeError).code).to.equal(
      'ERR_INVALID_ARG_TYPE',
    );
    expect(shouldThrow(() => SyncFile.fromFd(-1), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
    expect(shouldThrow(() => SyncFile.fromFd(1.5), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
    const fd = openSync('/dev/null', 'r');
    try {
      shouldThrow(() => SyncFile.fromFd(fd, { dup: 1 as unknown as boolean }), InvalidArgTypeError);
    } finally {
      closeSync(fd);
    }
  });

  it('says a pipe is not a sync_file (code ENOTTY), and leaves the fd open', () => {
    const fd = openFifo();
    try {
      const e = shouldThrow(() => SyncFile.fromFd(fd), ExplicitSyncError);
      expect(e.code).to.equal('ENOTTY');
      expect(e.ioctl).to.equal('SYNC_IOC_FILE_INFO');
      expect(e.message).to.contain('not a sync_file');
      expect(e.cause).to.be.instanceOf(ExplicitSyncError);
      expect(isOpen(fd)).to.equal(true);
    } finally {
      closeSync(fd);
    }
  });

  it('says a regular file and a character device are not sync_files', () => {
    for (const path of ['/proc/self/status', '/dev/null']) {
      const fd = openSync(path, 'r');
      try {
        const e = shouldThrow(() => SyncFile.fromFd(fd, { dup: true }), ExplicitSyncError);
        expect(e.code).to.equal('ENOTTY');
        expect(e).to.not.be.instanceOf(UnsupportedError);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('EBADF for an fd that is not open', () => {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    expect(shouldThrow(() => SyncFile.fromFd(fd), ExplicitSyncError).code).to.equal('EBADF');
  });
});

describe('SyncFile.merge()', () => {
  it('needs at least one SyncFile, and only SyncFiles', () => {
    expect(shouldThrow(() => SyncFile.merge(), InvalidArgValueError).code).to.equal('ERR_INVALID_ARG_VALUE');
    shouldThrow(() => SyncFile.merge(3 as unknown as SyncFile), InvalidArgTypeError);
    const { sf } = fakeFence();
    try {
      shouldThrow(() => sf.merge({} as SyncFile), InvalidArgTypeError);
      shouldThrow(() => sf.merge([]), InvalidArgValueError);
      shouldThrow(() => sf.merge(sf, { name: 'x'.repeat(32) }), OutOfRangeError);
      shouldThrow(() => sf.merge(sf, { name: 7 as unknown as string }), InvalidArgTypeError);
    } finally {
      sf.close();
    }
  });
});

describe('monotonicNow()', () => {
  it('is CLOCK_MONOTONIC in nanoseconds (the clock of process.hrtime on Linux)', () => {
    const a = process.hrtime.bigint();
    const now = monotonicNow();
    const b = process.hrtime.bigint();
    expect(typeof now).to.equal('bigint');
    expect(now >= a - 1_000_000n && now <= b + 1_000_000n).to.equal(true);
  });
});

describe('SyncFile#setDeadline()', () => {
  it('validates the deadline', () => {
    const { sf } = fakeFence();
    try {
      shouldThrow(() => sf.setDeadline(-1), OutOfRangeError);
      shouldThrow(() => sf.setDeadline(NaN), OutOfRangeError);
      shouldThrow(() => sf.setDeadline(-1n), OutOfRangeError);
      shouldThrow(() => sf.setDeadline('soon' as unknown as number), InvalidArgTypeError);
      // The kernel's ktime_t is signed: past 2^63 - 1 ns is a RangeError (the README says so), not
      // a deadline in the past; and past u64 too.
      for (const bad of [2n ** 63n, 2n ** 64n - 1n, 2n ** 64n])
        expect(shouldThrow(() => sf.setDeadline(bad), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
      expect(shouldThrow(() => sf.setDeadline(9e12 + 1), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
    } finally {
      sf.close();
    }
  });

  // An fd that answers ENOTTY stands in for a kernel before 6.7. (This leaves the process-wide
  // "no deadlines here" answer cached, which is harmless in a host process with no sync_files.)
  it('turns ENOTTY into UnsupportedError naming the feature and Linux 6.7, and caches it', () => {
    const { sf } = fakeFence();
    try {
      expect(sf.supportsDeadline()).to.equal(false);
      for (let i = 0; i < 2; i++) {
        const e = shouldThrow(() => sf.setDeadline(10), UnsupportedError);
        expect(e.code).to.equal('ENOTTY');
        expect(e.since).to.equal('6.7');
        expect(e.feature).to.contain('SYNC_IOC_SET_DEADLINE');
        expect(e.message).to.contain('6.7');
      }
    } finally {
      sf.close();
    }
  });
});

describe('SyncFile#close()', () => {
  it('is idempotent, sets fd to -1; every method then throws ClosedError', async () => {
    const { sf } = fakeFence();
    sf.close();
    sf.close();
    expect(sf.fd).to.equal(-1);
    expect(sf.closed).to.equal(true);
    for (const fn of [
      () => sf.isSignaled(),
      () => sf.info(),
      () => sf.dup(),
      () => sf.merge(sf),
      () => sf.setDeadline(1),
      () => sf.waitSync(0),
    ]) {
      expect(shouldThrow(fn, ClosedError).code).to.equal('EBADF');
    }
    expect((await shouldReject(sf.wait(), ClosedError)).code).to.equal('EBADF');
  });

  it('using closes', () => {
    let kept: SyncFile;
    {
      using sf = fakeFence().sf;
      kept = sf;
    }
    expect(kept.closed).to.equal(true);
  });
});

describe('SyncFile#dup()', () => {
  it('gives an independent SyncFile on a new fd', () => {
    const { sf } = fakeFence();
    const copy = sf.dup();
    try {
      expect(copy.fd).to.not.equal(sf.fd);
      sf.close();
      writeSync(copy.fd, 'x'); // the FIFO's own fd is closed: signal through the copy's
      expect(copy.isSignaled()).to.equal(true);
    } finally {
      sf.close();
      copy.close();
    }
  });
});

describe('SyncFile#wait() (FIFO stand-in)', () => {
  useStandInStatus();

  it('rejects every pending wait with FenceError (the fence\'s code) when it signals with an error', async () => {
    const { sf, fail } = fakeFence();
    try {
      const waits = [sf.wait(), sf.wait({ timeoutMs: 8000 })];
      fail(-5);
      for (const p of waits) {
        const e = await shouldReject(p, FenceError);
        expect(e.code).to.equal('EIO');
        expect(e.errno).to.equal(-5);
        expect(e.ioctl).to.equal('SYNC_IOC_FILE_INFO');
      }
      // Already signalled with an error: the fast path rejects too.
      expect((await shouldReject(sf.wait({ timeoutMs: 0 }), FenceError)).code).to.equal('EIO');
      expect(sf.isSignaled()).to.equal(true);
    } finally {
      sf.close();
    }
  });

  it('validates options by rejecting', async () => {
    const { sf } = fakeFence();
    try {
      await shouldReject(sf.wait({ timeoutMs: -1 }), OutOfRangeError);
      await shouldReject(sf.wait({ signal: {} as AbortSignal }), InvalidArgTypeError);
      await shouldReject(sf.wait(5 as unknown as object), InvalidArgTypeError);
    } finally {
      sf.close();
    }
  });

  it('resolves at once when already signalled (fast path)', async () => {
    const { sf, signal } = fakeFence();
    try {
      signal();
      await sf.wait({ timeoutMs: 0 });
      expect(sf.isSignaled()).to.equal(true);
    } finally {
      sf.close();
    }
  });

  it('resolves when signalled later', async () => {
    const { sf, signal } = fakeFence();
    try {
      const p = sf.wait();
      expect(await settlesWithin(p, 50)).to.equal(false);
      signal();
      await p;
    } finally {
      sf.close();
    }
  });

  it('rejects with TimeoutError (ETIME) no earlier than the timeout; the fence stays usable', async () => {
    const { sf, signal } = fakeFence();
    try {
      const t0 = performance.now();
      const e = await shouldReject(sf.wait({ timeoutMs: 100 }), TimeoutError);
      const elapsed = performance.now() - t0;
      expect(e.code).to.equal('ETIME');
      expect(elapsed).to.be.at.least(99);
      expect(elapsed).to.be.below(5000);
      signal();
      await sf.wait({ timeoutMs: 1000 });
    } finally {
      sf.close();
    }
  });

  it('rejects with AbortError (cause: the reason) when aborted, and at once when already aborted', async () => {
    const { sf } = fakeFence();
    try {
      const ac = new AbortController();
      const p = sf.wait({ signal: ac.signal });
      const reason = new Error('stop');
      ac.abort(reason);
      const e = await shouldReject(p, AbortError);
      expect(e.code).to.equal('ABORT_ERR');
      expect(e.cause).to.equal(reason);
      await shouldReject(sf.wait({ signal: AbortSignal.abort() }), AbortError);
    } finally {
      sf.close();
    }
  });

  it('close() rejects every pending wait with ClosedError', async () => {
    const { sf } = fakeFence();
    const waits = [sf.wait(), sf.wait({ timeoutMs: 10_000 }), sf.wait({ ref: false })];
    sf.close();
    for (const p of waits) expect((await shouldReject(p, ClosedError)).code).to.equal('EBADF');
  });

  it('serves many concurrent waits on one and on several fences', async () => {
    const fences = [fakeFence(), fakeFence(), fakeFence()];
    try {
      const waits = fences.flatMap(({ sf }) => Array.from({ length: 50 }, () => sf.wait({ timeoutMs: 10_000 })));
      await sleep(10);
      for (const f of fences) f.signal();
      await Promise.all(waits);
    } finally {
      for (const { sf } of fences) sf.close();
    }
  });

  it('a ref: false wait does not keep the process alive', function () {
    this.timeout(30_000);
    const code = `
      const { execFileSync } = require('node:child_process');
      const fs = require('node:fs');
      const { SyncFile } = require('explicit-sync');
      const { kAdopt } = require(${JSON.stringify(fileURLToPath(new URL('../../dist/resource.js', import.meta.url)))});
      const path = ${JSON.stringify(join(dir, 'fifo-child'))};
      execFileSync('mkfifo', [path]);
      const sf = SyncFile[kAdopt](fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
      sf.wait({ ref: false }).then(() => process.exit(3));
      setTimeout(() => {}, 50);`;
    const out = execFileSync(process.execPath, ['-e', code], { timeout: 20_000, encoding: 'utf8' });
    expect(out).to.equal('');
  });
});

describe('SyncFile#waitSync() (FIFO stand-in)', () => {
  useStandInStatus();

  it('throws FenceError when the fence signalled with an error', () => {
    const { sf, fail } = fakeFence();
    try {
      fail(-125);
      expect(shouldThrow(() => sf.waitSync(1000), FenceError).code).to.equal('ECANCELED');
      expect(shouldThrow(() => sf.waitSync(), FenceError).code).to.equal('ECANCELED');
    } finally {
      sf.close();
    }
  });

  it('returns when signalled, throws TimeoutError (ETIME) after the timeout', () => {
    const { sf, signal } = fakeFence();
    try {
      const t0 = performance.now();
      expect(shouldThrow(() => sf.waitSync(50), TimeoutError).code).to.equal('ETIME');
      expect(performance.now() - t0).to.be.at.least(49);
      signal();
      sf.waitSync(0);
      sf.waitSync(3e9); // beyond poll(2)'s int range: still fine
      sf.waitSync();
    } finally {
      sf.close();
    }
  });

  it('validates the timeout', () => {
    const { sf } = fakeFence();
    try {
      shouldThrow(() => sf.waitSync(-5), OutOfRangeError);
    } finally {
      sf.close();
    }
  });
});
