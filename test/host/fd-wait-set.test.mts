// The thread's epoll set for fd waits (lib/fd-poller.ts, native/fd_poller.cc): every wait on an fd
// (sync_files, a KMS device's events) is one entry of one epoll set, not a uv_poll of its own.
// FIFOs stand in for sync_files here (readable once written, as a signalled fence is); real
// sync_files are waited on in test/vm.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, ClosedError, ExplicitSyncError, FdLostError, TimeoutError, inspect } from 'explicit-sync';
import { native } from '../../dist/native.js';
import { FdWaitQueue } from '../../dist/watcher.js';
import { FD_WAIT_SET, fdWaitSetFd } from '../../dist/fd-poller.js';
import { FdResource } from '../../dist/resource.js';
import { openFifo as openFifoIn, shouldReject, sleep, waitSetEntries } from '../helpers.mjs';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'es-fd-wait-set-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The epoll fds of this process (the set's among them, and libuv's own). */
function epollFds(): number[] {
  const out: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventpoll]') out.push(Number(fd));
    } catch {
      // readdir's own fd, closed by now
    }
  }
  return out;
}

/** A stand-in fence: a FIFO (readable once written), waited on as SyncFile#wait() does. */
interface Fence {
  fd: number;
  wait(opts?: { timeoutMs?: number; ref?: boolean }): Promise<void>;
  signal(): void;
  close(): void;
}
/** With `owned`, an {@link Owned} FdResource owns the FIFO's fd, as a SyncFile owns its sync_file's. */
function fifoFence({ owned = false } = {}): Fence {
  const fd = openFifoIn(dir);
  const owner = owned ? new Owned(fd) : undefined;
  const queue = new FdWaitQueue(fd, () => native.pollIn(fd, 0), owner);
  return {
    fd,
    wait: (opts = {}) =>
      queue.wait({ timeoutMs: opts.timeoutMs, signal: undefined, ref: opts.ref ?? true, onTimeout: () => new TimeoutError('poll') }),
    signal: () => void writeSync(fd, 'x'),
    close: () => {
      queue.close();
      if (owner !== undefined) owner.close();
      else closeSync(fd);
    },
  };
}

/** Counts FinalizationRegistry registrations (the GC backstop's) until restore(). */
function countRegistrations(): { readonly count: number; restore(): void } {
  const register = FinalizationRegistry.prototype.register;
  let count = 0;
  FinalizationRegistry.prototype.register = function (this: FinalizationRegistry<unknown>, ...args: Parameters<typeof register>) {
    count++;
    return register.apply(this, args);
  };
  return {
    get count() {
      return count;
    },
    restore: () => void (FinalizationRegistry.prototype.register = register),
  };
}

/**
 * The start of a child's script (CommonJS): `fd`, a new FIFO at `path` opened non-blocking, and
 * `q`, an FdWaitQueue on it; `fs` and `native` in scope.
 */
function queueChild(path: string): string {
  execFileSync('mkfifo', [path]);
  return `
      const fs = require('node:fs');
      const { FdWaitQueue } = require(${JSON.stringify(watcher)});
      const { native } = require(${JSON.stringify(nativeJs)});
      const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      const q = new FdWaitQueue(fd, () => native.pollIn(fd, 0));`;
}

/** An FdResource owning a stand-in's fd, as a SyncFile owns its sync_file's. */
class Owned extends FdResource {
  constructor(fd: number) {
    super(fd, 'Owned');
  }
}

const watcher = fileURLToPath(new URL('../../dist/watcher.js', import.meta.url));
const nativeJs = fileURLToPath(new URL('../../dist/native.js', import.meta.url));
const resourceJs = fileURLToPath(new URL('../../dist/resource.js', import.meta.url));

describe('fd waits: one epoll set per thread', () => {
  it('waits on 40 fds pending at once add no fd but the set; the census names it', async () => {
    const fences = Array.from({ length: 40 }, () => fifoFence());
    try {
      const first = fences[0]!.wait();
      const set = fdWaitSetFd();
      expect(set, 'the set exists once an fd wait is pending').to.be.at.least(0);
      const epolls = epollFds();
      expect(epolls).to.include(set);
      const waits = [first, ...fences.slice(1).map((f) => f.wait({ timeoutMs: 10_000 }))];
      expect(epollFds(), 'no epoll fd per wait').to.deep.equal(epolls);
      expect(fdWaitSetFd()).to.equal(set);
      expect(inspect().fds.find(([kind]) => kind === FD_WAIT_SET)).to.deep.equal([FD_WAIT_SET, 1]);
      for (const f of fences) f.signal();
      await Promise.all(waits);
    } finally {
      for (const f of fences) f.close();
    }
  });

  it('an fd closed with a wait pending leaves the set; its number, reused by another file, is waited on afresh', async () => {
    const a = fifoFence();
    const pending = a.wait();
    const fd = a.fd;
    a.close();
    expect((await shouldReject(pending, ClosedError)).code).to.equal('EBADF');
    const b = fifoFence();
    try {
      expect(b.fd, 'the lowest free number comes back').to.equal(fd);
      const p = b.wait({ timeoutMs: 10_000 });
      await sleep(5);
      b.signal();
      await p;
    } finally {
      b.close();
    }
  });

  for (const owned of [false, true])
    it(`an fd closed behind its owner's back and reused: closing ${owned ? 'an FdResource owner (FdLostError)' : 'the queue'} leaves the new file's entry and wait`, async () => {
      const a = openFifoIn(dir);
      const owner = owned ? new Owned(a) : undefined;
      const qa = new FdWaitQueue(a, () => native.pollIn(a, 0), owner);
      const lost = qa.wait({ timeoutMs: undefined, signal: undefined, ref: false, onTimeout: () => new TimeoutError('poll') });
      closeSync(a); // not the owner's close()
      const b = fifoFence();
      try {
        expect(b.fd, 'the number comes back').to.equal(a);
        const p = b.wait({ timeoutMs: 10_000 });
        qa.close(); // the first owner lets go: nothing is deleted from the set by number
        if (owner !== undefined) expect(() => owner.close()).to.throw(FdLostError);
        expect((await shouldReject(lost, ClosedError)).code).to.equal('EBADF');
        expect(waitSetEntries(), 'the new file\'s entry').to.include(a);
        await sleep(5);
        b.signal();
        await p;
      } finally {
        b.close();
      }
    });

  it('an owner\'s close takes its fd out of the set though another fd holds the file (a peer\'s copy)', async () => {
    // The kernel removes an entry only when the file's last fd closes: without the owner's
    // EPOLL_CTL_DEL, an entry per file and fd number lingers for as long as a peer keeps its copy.
    const raw = openFifoIn(dir);
    const rawCopy = native.dup(raw);
    const fd = openFifoIn(dir);
    const copy = native.dup(fd);
    try {
      const rq = new FdWaitQueue(raw, () => native.pollIn(raw, 0)); // no FdResource owner
      const owner = new Owned(fd);
      const q = new FdWaitQueue(fd, () => native.pollIn(fd, 0), owner);
      const ac = new AbortController();
      const waits = [rq, q].map((queue) =>
        queue.wait({ timeoutMs: undefined, signal: ac.signal, ref: true, onTimeout: () => new TimeoutError('poll') }),
      );
      expect(waitSetEntries()).to.include.members([raw, fd]);
      ac.abort();
      for (const w of waits) await shouldReject(w, AbortError);
      rq.close();
      closeSync(raw);
      q.close();
      owner.close();
      const left = waitSetEntries();
      expect(left, 'closing alone leaves the entry of a file another fd holds').to.include(raw);
      expect(left, 'the owner\'s close took its fd out').to.not.include(fd);
    } finally {
      closeSync(copy);
      closeSync(rawCopy);
    }
    expect(waitSetEntries(), 'the last fd of the file closed: its entry went with it').to.not.include(raw);
  });

  it('a fence waited on again after a timeout is armed again (a report is taken once)', async () => {
    const f = fifoFence();
    try {
      await shouldReject(f.wait({ timeoutMs: 20 }), TimeoutError);
      const p = f.wait({ timeoutMs: 10_000 });
      await sleep(5);
      f.signal();
      await p;
      await f.wait({ timeoutMs: 0 }); // and stays signalled
    } finally {
      f.close();
    }
  });

  it('a ref\'d wait keeps the process alive until it resolves; once idle the set does not', function () {
    this.timeout(30_000);
    // The child exits with 3 only if the wait kept it alive until the FIFO was written from outside
    // (a timer would keep it alive itself, so the write comes from a shell in the background), and
    // ends by itself afterwards: the idle set is unref'd.
    const path = join(dir, 'fifo-ref');
    const code = `${queueChild(path)}
      require('node:child_process').spawn('sh', ['-c', 'sleep 0.3; echo x > ${path}'], { stdio: 'ignore' }).unref();
      q.wait({ timeoutMs: undefined, signal: undefined, ref: true, onTimeout: () => new Error('timeout') }).then(() => { process.exitCode = 3; q.close(); fs.closeSync(fd); });`;
    let status = 0;
    try {
      execFileSync(process.execPath, ['-e', code], { timeout: 20_000, encoding: 'utf8' });
    } catch (err) {
      status = (err as { status: number }).status;
    }
    expect(status, 'exit status (3: resolved, then exited by itself)').to.equal(3);
  });

  it('a ref\'d wait that times out beside an unref\'d one lets the process exit; the unref\'d one stays pending', function () {
    this.timeout(30_000);
    // The fd's ref turns from true to false while it stays armed (the native side's count): the
    // child must end by itself, with the ref:false wait never settled (exit status 0, output "t").
    const code = `${queueChild(join(dir, 'fifo-mixed'))}
      q.wait({ timeoutMs: undefined, signal: undefined, ref: false, onTimeout: () => new Error('timeout') }).then(() => process.stdout.write('resolved'));
      q.wait({ timeoutMs: 200, signal: undefined, ref: true, onTimeout: () => new Error('timeout') }).catch(() => process.stdout.write('t'));`;
    const t0 = performance.now();
    const out = execFileSync(process.execPath, ['-e', code], { timeout: 20_000, encoding: 'utf8' });
    expect(out).to.equal('t');
    expect(performance.now() - t0, 'ms until the child exited').to.be.below(15_000);
  });

  it('a worker\'s set goes with the worker when it is terminated with waits pending', function () {
    this.timeout(30_000);
    const path = join(dir, 'fifo-worker');
    execFileSync('mkfifo', [path]);
    // In a child, so that the count of epoll fds is not disturbed by this process's other tests.
    const code = `
      const { Worker } = require('node:worker_threads');
      const fs = require('node:fs');
      const epolls = () => fs.readdirSync('/proc/self/fd').filter((f) => { try { return fs.readlinkSync('/proc/self/fd/' + f) === 'anon_inode:[eventpoll]'; } catch { return false; } }).length;
      const before = epolls();
      const src = \`
        const fs = require('node:fs');
        const { FdWaitQueue } = require(${JSON.stringify(watcher)});
        const { native } = require(${JSON.stringify(nativeJs)});
        const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
        const q = new FdWaitQueue(fd, () => native.pollIn(fd, 0));
        q.wait({ timeoutMs: undefined, signal: undefined, ref: true, onTimeout: () => new Error('timeout') });
        require('node:worker_threads').parentPort.postMessage(require('node:fs').readdirSync('/proc/self/fd').length);\`;
      let rounds = 0;
      let during = 0;
      const next = () => {
        const w = new Worker(src, { eval: true });
        w.on('message', () => { during = Math.max(during, epolls() - before); w.terminate(); });
        w.on('exit', () => (++rounds < 4 ? next() : setTimeout(() => process.stdout.write(during + ' ' + (epolls() - before)), 50)));
      };
      next();`;
    const out = execFileSync(process.execPath, ['-e', code], { timeout: 25_000, encoding: 'utf8' });
    // While a worker waits: its loop's epoll fd and its wait set (2); after the 4 workers: none.
    expect(out, 'epoll fds while a worker waits, and after 4 workers').to.equal('2 0');
  });
});

describe('fd waits and the GC backstop', () => {
  it('an owner waited on is registered only after the wait settles: closed then, it never reaches the registry', async () => {
    const registered = countRegistrations();
    const fences: Fence[] = [];
    try {
      const a = fifoFence({ owned: true });
      fences.push(a);
      const p = a.wait();
      await sleep(5); // the end of the tick that made it: its registration was due, and deferred
      expect(registered.count, 'while its wait is pending').to.equal(0);
      a.signal();
      await p;
      a.close();
      const b = fifoFence({ owned: true });
      fences.push(b);
      const q = b.wait();
      await sleep(5);
      b.signal();
      await q;
      await sleep(5);
      expect(registered.count, 'a, closed when its wait resolved, never; b, kept open, not yet').to.equal(0);
      await sleep(150);
      expect(registered.count, 'b, within 100 ms of its wait').to.equal(1);
    } finally {
      registered.restore();
      for (const f of fences) f.close();
    }
  });

  it('a wait epoll_ctl refuses (a regular file: EPERM) rejects with its errno and leaves nothing pending', async () => {
    const registered = countRegistrations();
    const path = join(dir, 'regular');
    writeFileSync(path, 'x');
    const owner = new Owned(openSync(path, 'r'));
    try {
      const q = new FdWaitQueue(owner.fd, () => false, owner);
      const e = await shouldReject(
        q.wait({ timeoutMs: 10_000, signal: undefined, ref: true, onTimeout: () => new TimeoutError('poll') }),
        ExplicitSyncError,
      );
      expect([e.code, e.syscall]).to.deep.equal(['EPERM', 'epoll_ctl']);
      expect(q.pending).to.equal(0);
      await sleep(5);
      expect(registered.count, 'the owner, no longer rooted, registered at the end of its tick').to.equal(1);
      q.close();
    } finally {
      registered.restore();
      owner.close();
    }
  });

  it('an owner dropped after its wait resolved is still collected, closed and reported', function () {
    this.timeout(30_000);
    const path = join(dir, 'fifo-gc');
    execFileSync('mkfifo', [path]);
    const code = `
      const fs = require('node:fs');
      const { FdWaitQueue } = require(${JSON.stringify(watcher)});
      const { native } = require(${JSON.stringify(nativeJs)});
      const { FdResource } = require(${JSON.stringify(resourceJs)});
      class Owned extends FdResource { constructor(fd) { super(fd, 'Owned'); } }
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.code));
      const fd = fs.openSync(${JSON.stringify(path)}, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      (async () => {
        await (async () => {
          const owner = new Owned(fd);
          const q = new FdWaitQueue(fd, () => native.pollIn(fd, 0), owner);
          const p = q.wait({ timeoutMs: undefined, signal: undefined, ref: true, onTimeout: () => new Error('timeout') });
          await new Promise((r) => setTimeout(r, 5));
          fs.writeSync(fd, 'x');
          await p;
        })(); // dropped without close(): registered within 100 ms (leaks.ts LATER_MS), then collected
        for (let i = 0; i < 200 && warnings.length === 0; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
        let open = true;
        try { fs.fstatSync(fd); } catch { open = false; }
        process.stdout.write(JSON.stringify({ warnings, open }));
      })();`;
    const out = execFileSync(process.execPath, ['--expose-gc', '--no-warnings', '-e', code], { timeout: 25_000, encoding: 'utf8' });
    expect(JSON.parse(out)).to.deep.equal({ warnings: ['EXPLICIT_SYNC_LEAK'], open: false });
  });
});
