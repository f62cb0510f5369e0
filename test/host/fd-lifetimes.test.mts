// fd lifetimes you can debug (issue 18), without a device: a pipe or /dev/null stands in for a
// sync_file through the internal adopt entry (the public fromFd() would refuse it). Children run
// what needs its own process: a GC, a full fd table, the once-per-process blocking-wait warning.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ClosedError, DmaBuf, ExplicitSyncError, Syncobj, SyncFile, Timeline } from 'explicit-sync';
import { FdLostError } from '../../dist/errors.js';
import { kAdopt } from '../../dist/resource.js';
import { fakeDevice } from './syncobj-fakes.mjs';
import { isOpen, shouldThrow } from '../helpers.mjs';

const dist = (file: string): string => fileURLToPath(new URL(`../../dist/${file}`, import.meta.url));

/** Runs `code` (CommonJS) in a child node; returns its stdout and stderr together. */
function child(code: string, options: { nodeArgs?: string[]; env?: Record<string, string>; ulimit?: number } = {}): string {
  const prelude = `
    const es = require('explicit-sync');
    const { kAdopt } = require(${JSON.stringify(dist('resource.js'))});
    const fs = require('node:fs');
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message, count: w.count, kinds: w.kinds }));
  `;
  const node = [process.execPath, ...(options.nodeArgs ?? []), '--no-warnings', '-e', prelude + code];
  const argv = options.ulimit === undefined ? node : ['-c', `ulimit -n ${options.ulimit} && exec "$@"`, 'sh', ...node];
  return execFileSync(options.ulimit === undefined ? process.execPath : '/bin/sh', options.ulimit === undefined ? node.slice(1) : argv, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...options.env },
  });
}

/** The `RESULT <json>` line a child printed. */
function result<T>(out: string): T {
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`no RESULT in child output:\n${out}`);
  return JSON.parse(line.slice(7)) as T;
}

describe('fd identity: close() never closes a stranger\'s fd', () => {
  it('closed behind its back and reused: close() leaves the new file open and throws FdLostError (EBADF)', () => {
    const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    const n = sf.fd;
    closeSync(n); // the user's mistake
    const stranger = openSync('/dev/zero', 'r'); // the lowest free number: n
    try {
      expect(stranger).to.equal(n);
      const err = shouldThrow(() => sf.close(), FdLostError);
      expect(err).to.be.instanceOf(ClosedError);
      expect(err.code).to.equal('EBADF');
      expect(err.reused).to.equal(true);
      expect(err.fd).to.equal(n);
      expect(err.message).to.match(new RegExp(`^EBADF: SyncFile lost its fd ${n} .*another file \\(/dev/zero\\)`));
      expect(readlinkSync(`/proc/self/fd/${stranger}`)).to.equal('/dev/zero');
      expect(sf.closed).to.equal(true);
      sf.close(); // idempotent: nothing more to say
    } finally {
      closeSync(stranger);
    }
  });

  it('closed behind its back, not reused: close() throws FdLostError with reused false', () => {
    const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    closeSync(sf.fd);
    const err = shouldThrow(() => sf.close(), FdLostError);
    expect(err.reused).to.equal(false);
    expect(err.message).to.match(/is not open any more/);
  });

  it('a number another object adopted since (same kind of file) is that object\'s: not closed', () => {
    const a = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    const n = a.fd;
    closeSync(n);
    const b = SyncFile[kAdopt](openSync('/dev/null', 'r')); // same number, same inode as a's file
    try {
      expect(b.fd).to.equal(n);
      expect(shouldThrow(() => a.close(), FdLostError).reused).to.equal(true);
      expect(isOpen(n)).to.equal(true);
    } finally {
      b.close(); // still b's: closes it without complaint
    }
    expect(isOpen(n)).to.equal(false);
  });

  it('[Symbol.dispose] never throws: it warns with code EXPLICIT_SYNC_FD_LOST instead', async () => {
    const seen: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => void seen.push(`${w.code}`);
    process.on('warning', onWarning);
    try {
      const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
      closeSync(sf.fd);
      expect(() => sf[Symbol.dispose]()).not.to.throw();
      await new Promise((r) => setImmediate(r));
      expect(seen).to.deep.equal(['EXPLICIT_SYNC_FD_LOST']);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('the GC backstop leaves a reused number alone too', () => {
    const out = child(
      `
      (() => { const sf = SyncFile(); fs.closeSync(sf.fd); })();
      function SyncFile() { return es.SyncFile[kAdopt](fs.openSync('/dev/null', 'r')); }
      const stranger = fs.openSync('/dev/zero', 'r');
      (async () => {
        for (let i = 0; i < 40 && warnings.length === 0; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
        let open = false;
        try { open = fs.readlinkSync('/proc/self/fd/' + stranger) === '/dev/zero'; } catch {}
        console.log('RESULT ' + JSON.stringify({ open, warnings }));
      })();`,
      { nodeArgs: ['--expose-gc'] },
    );
    const r = result<{ open: boolean; warnings: { code: string; message: string }[] }>(out);
    expect(r.open).to.equal(true);
    expect(r.warnings).to.have.length(1);
    expect(r.warnings[0]!.code).to.equal('EXPLICIT_SYNC_LEAK');
    expect(r.warnings[0]!.message).to.match(/its fd was not closed: EBADF: SyncFile lost its fd \d+/);
  });
});

describe('leak warnings: one summary, opt-in creation stacks', function () {
  this.timeout(60_000);
  const LEAK_1000 = `
    function makeThem() { for (let i = 0; i < 1000; i++) es.SyncFile[kAdopt](fs.openSync('/dev/null', 'r')); }
    makeThem();
    (async () => {
      const total = () => warnings.filter((w) => w.code === 'EXPLICIT_SYNC_LEAK').reduce((s, w) => s + w.count, 0);
      for (let i = 0; i < 400 && total() < 1000; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
      console.log('RESULT ' + JSON.stringify({ total: total(), warnings: warnings.filter((w) => w.code === 'EXPLICIT_SYNC_LEAK') }));
    })();`;
  type Leaks = { total: number; warnings: { message: string; count: number; kinds: Record<string, number> }[] };

  it('1,000 dropped sync files give one warning at once and a summary with the count, not 1,000 lines', () => {
    const r = result<Leaks>(child(LEAK_1000, { nodeArgs: ['--expose-gc'] }));
    expect(r.total).to.equal(1000);
    expect(r.warnings.length).to.be.within(2, 4); // the first one, then at most one per second
    expect(r.warnings[0]!.count).to.equal(1);
    expect(r.warnings[0]!.message).to.match(/^SyncFile \(fd \d+\) was garbage-collected without close\(\); its fd was closed\. Set EXPLICIT_SYNC_TRACE_LEAKS=1/);
    const summary = r.warnings[1]!;
    expect(summary.message).to.match(/^\d[\d,]* more objects were garbage-collected without close\(\) since \d{4}-.*\(\d[\d,]* SyncFile\)/);
    expect(summary.kinds['SyncFile']).to.equal(summary.count);
    expect(summary.message).not.to.match(/created at/i);
  });

  it('with EXPLICIT_SYNC_TRACE_LEAKS=1 they say where the objects were created', () => {
    const r = result<Leaks>(child(LEAK_1000, { nodeArgs: ['--expose-gc'], env: { EXPLICIT_SYNC_TRACE_LEAKS: '1' } }));
    expect(r.total).to.equal(1000);
    expect(r.warnings[0]!.message).to.match(/Created at:\n\s+at makeThem \(\[eval\]/);
    expect(r.warnings[0]!.message).not.to.include(dist(''));
    expect(r.warnings[1]!.message).to.match(/created at:\n\s+\d[\d,]* × at makeThem \(\[eval\]/);
  });
});

describe('EMFILE: errors say whose fds they are', function () {
  this.timeout(60_000);
  type Failures = Array<{ name: string; code: string; errno: number; syscall: string; message: string; isExplicit: boolean }>;
  it('Device.list(), Device.open({ require }), VgemDevice.open(), KmsDevice.open({ driver }) throw EMFILE with the counts', () => {
    const out = child(
      `
      const keep = [];
      for (let i = 0; i < 3; i++) keep.push(es.SyncFile[kAdopt](fs.openSync('/dev/null', 'r')));
      keep.push(es.DmaBuf[kAdopt](fs.openSync('/dev/null', 'r')));
      const filler = [];
      try { for (;;) filler.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
      const failures = [];
      for (const f of [() => es.Device.list(), () => es.Device.open({ require: ['timeline'] }), () => es.VgemDevice.open(), () => es.KmsDevice.open({ driver: 'vkms' })]) {
        try { f(); failures.push(null); } catch (e) {
          failures.push({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message, isExplicit: e instanceof es.ExplicitSyncError });
        }
      }
      for (const fd of filler) fs.closeSync(fd);
      for (const o of keep) o.close();
      console.log('RESULT ' + JSON.stringify(failures));`,
      { ulimit: 64 },
    );
    const failures = result<Failures>(out);
    expect(failures).to.have.length(4);
    for (const f of failures) {
      expect(f).to.include({ name: 'ExplicitSyncError', code: 'EMFILE', errno: -24, syscall: 'scandir', isExplicit: true });
      expect(f.message).to.equal("EMFILE: too many open files, scandir '/dev/dri' (explicit-sync owns 4 fds: 3 SyncFile, 1 DmaBuf)");
    }
  });

  it('every library error for EMFILE/ENFILE carries the counts; other codes do not', () => {
    const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    try {
      expect(new ExplicitSyncError(24, 'open').message).to.match(/^EMFILE: too many open files, open \(explicit-sync owns \d+ fds?: .*\d+ SyncFile/);
      expect(new ExplicitSyncError(23, 'DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD').message).to.match(/^ENFILE: .*\(explicit-sync owns/);
      expect(new ExplicitSyncError(22, 'open').message).to.equal('EINVAL: invalid argument, open');
    } finally {
      sf.close();
    }
  });
});

describe('internal entry points are off the public surface', () => {
  it('SyncFile, DmaBuf, Timeline and Syncobj have no callable adopt()', () => {
    for (const cls of [SyncFile, DmaBuf, Timeline, Syncobj]) {
      expect((cls as unknown as Record<string, unknown>)['adopt'], cls.name).to.equal(undefined);
      expect(Object.getOwnPropertyNames(cls), cls.name).not.to.include('adopt');
    }
  });
});

describe('one wording for fds that are not open', () => {
  /** A number that is certainly not open. */
  function closedFd(): number {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    return fd;
  }

  const entries: Array<[string, string, (fd: number) => unknown]> = [
    ['SyncFile.fromFd', 'SYNC_IOC_FILE_INFO', (fd) => SyncFile.fromFd(fd)],
    ['SyncFile.fromFd({ dup: true })', 'SYNC_IOC_FILE_INFO', (fd) => SyncFile.fromFd(fd, { dup: true })],
    ['DmaBuf.fromFd', 'fstatfs', (fd) => DmaBuf.fromFd(fd)],
  ];
  for (const [name, call, fn] of entries) {
    it(`${name}: "EBADF: fd N is not open, ${call}"`, () => {
      const fd = closedFd();
      const err = shouldThrow(() => fn(fd), ExplicitSyncError);
      expect(err.code).to.equal('EBADF');
      expect(err.errno).to.equal(-9);
      expect(err.message).to.equal(`EBADF: fd ${fd} is not open, ${call}`);
    });
  }

  for (const method of ['importTimeline', 'importSyncobj'] as const) {
    it(`device.${method}: "EBADF: fd N is not open, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE"`, () => {
      const devFd = openSync('/dev/null', 'r');
      try {
        const dev = fakeDevice();
        Object.defineProperty(dev, kDeviceFdKey(), { value: () => devFd });
        const fd = closedFd();
        const err = shouldThrow(() => dev[method](fd), ExplicitSyncError);
        expect(err.code).to.equal('EBADF');
        expect(err.message).to.equal(`EBADF: fd ${fd} is not open, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE`);
      } finally {
        closeSync(devFd);
      }
    });
  }
});

/** Device's fd accessor key (module-private to the package; the fakes use it too). */
function kDeviceFdKey(): symbol {
  const sym = Object.getOwnPropertySymbols(fakeDevice()).find((s) => s.description === 'explicit-sync.deviceFd');
  if (sym === undefined) throw new Error('no device fd symbol');
  return sym;
}

describe('blocking waits on the main thread', function () {
  this.timeout(60_000);
  // A FIFO with data in it is readable: waitSync() returns at once, so only the warning is tested
  // (its fence-error check then fails on the FIFO with ENOTTY, which ws() ignores).
  const READY = `
    const ws = (sf, ...args) => { try { sf.waitSync(...args); } catch (e) { if (e.code !== 'ENOTTY') throw e; } };
    function readyFile() {
      const fifo = require('node:path').join(require('node:os').tmpdir(), 'es-fifo-' + process.pid + '-' + Math.random());
      require('node:child_process').execFileSync('mkfifo', [fifo]);
      const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      fs.writeSync(fd, 'x');
      fs.unlinkSync(fifo);
      return es.SyncFile[kAdopt](fd);
    }
    const report = () => setImmediate(() => console.log('RESULT ' + JSON.stringify(warnings.filter((w) => w.code === 'EXPLICIT_SYNC_BLOCKING_WAIT'))));`;
  type Warnings = { code: string; message: string }[];

  it('an unbounded SyncFile#waitSync() warns once per process (EXPLICIT_SYNC_BLOCKING_WAIT)', () => {
    const r = result<Warnings>(child(`${READY} const sf = readyFile(); ws(sf); ws(sf); const sf2 = readyFile(); ws(sf2, 1000); sf.close(); sf2.close(); report();`));
    expect(r).to.have.length(1);
    expect(r[0]!.message).to.match(/^SyncFile#waitSync blocks the main thread, and with it the event loop, with no bound/);
  });

  it('a bound over 50 ms warns; 50 ms or less does not', () => {
    expect(result<Warnings>(child(`${READY} const sf = readyFile(); ws(sf, 50); ws(sf, 0); sf.close(); report();`))).to.deep.equal([]);
    const r = result<Warnings>(child(`${READY} const sf = readyFile(); ws(sf, 51); sf.close(); report();`));
    expect(r).to.have.length(1);
    expect(r[0]!.message).to.match(/for up to 51 ms/);
  });

  it('a worker thread never warns', () => {
    const code = `${READY}
      const { Worker } = require('node:worker_threads');
      const worker = new Worker(${JSON.stringify(`
        const es = require('explicit-sync');
        const { kAdopt } = require(${JSON.stringify(dist('resource.js'))});
        const fs = require('node:fs');
        const seen = [];
        process.on('warning', (w) => seen.push({ code: w.code, message: w.message }));
        const fifo = require('node:path').join(require('node:os').tmpdir(), 'es-wfifo-' + process.pid + '-' + Math.random());
        require('node:child_process').execFileSync('mkfifo', [fifo]);
        const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
        fs.writeSync(fd, 'x');
        fs.unlinkSync(fifo);
        const sf = es.SyncFile[kAdopt](fd);
        try { sf.waitSync(); } catch (e) { if (e.code !== 'ENOTTY') throw e; }
        sf.close();
        setImmediate(() => require('node:worker_threads').parentPort.postMessage(seen));
      `)}, { eval: true });
      worker.on('message', (seen) => warnings.push(...seen));
      worker.on('exit', report);`;
    expect(result<Warnings>(child(code))).to.deep.equal([]);
  });
});
