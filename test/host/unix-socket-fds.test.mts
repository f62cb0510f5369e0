// UnixSocket on the host, continued: who owns a received fd (hand-over to an adopter, take(), the
// GC backstop, worker teardown), UnixServer, timeouts and cancellation, bad input, and two
// unrelated processes that meet on a socket path (one of them SIGKILLed mid-send).
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, linkSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  AbortError,
  ClosedError,
  ExplicitSyncError,
  SyncFile,
  TimeoutError,
  UnixServer,
  UnixSocket,
  type FdMessage,
} from 'explicit-sync';
import { kAdopt } from '../../dist/resource.js';
import { isOpen, shouldReject, shouldThrow } from '../helpers.mjs';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'es-unix-fds-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

/** One message carrying `n` fds of /dev/null, received on a fresh pair (closed before returning). */
async function receiveDevNull(n: number): Promise<FdMessage> {
  const [a, b] = UnixSocket.socketpair();
  try {
    const f = openSync('/dev/null', 'r');
    await a.send('fds', Array.from({ length: n }, () => f));
    closeSync(f);
    return (await b.receive())!;
  } finally {
    a.close();
    b.close();
  }
}

describe('ReceivedFd: owned until adopted', () => {
  it('an adopter of the same number takes it over: the ReceivedFd reads closed, the fd is closed once, by the adopter', async () => {
    const m = await receiveDevNull(1);
    const n = m.fds[0]!.fd;
    // SyncFile.fromFd(received.fd) on a real sync_file (test/vm); here the adopt entry it ends in.
    const sf = SyncFile[kAdopt](n);
    expect(m.fds[0]!.closed).to.equal(true);
    expect(m.fds[0]!.fd).to.equal(-1);
    m.close(); // nothing left to close: no FdLostError
    expect(isOpen(n)).to.equal(true);
    sf.close();
    expect(isOpen(n)).to.equal(false);
  });

  it('an adopter that refuses the fd leaves it with the ReceivedFd', async () => {
    const m = await receiveDevNull(1);
    const n = m.fds[0]!.fd;
    expect(shouldThrow(() => SyncFile.fromFd(n), ExplicitSyncError).code).to.equal('ENOTTY');
    expect(m.fds[0]!.fd).to.equal(n);
    m.close();
    expect(isOpen(n)).to.equal(false);
  });

  it('an adopter of a duplicate ({ dup: true }) leaves the original to the message', async () => {
    const m = await receiveDevNull(1);
    const s = UnixSocket.socketpair();
    const n = m.fds[0]!.fd;
    const copy = UnixSocket.fromFd(s[0].fd, { dup: true });
    expect(m.fds[0]!.fd).to.equal(n);
    m.close();
    for (const x of [copy, ...s]) x.close();
    expect(isOpen(n)).to.equal(false);
  });

  it('take() hands the bare number over: the env stops owning it, the ReceivedFd reads closed', async () => {
    const m = await receiveDevNull(2);
    const n = m.fds[0]!.take();
    expect(m.fds[0]!.closed).to.equal(true);
    expect(shouldThrow(() => m.fds[0]!.take(), ClosedError).code).to.equal('EBADF');
    const other = m.fds[1]!.fd;
    m.close();
    expect(isOpen(n)).to.equal(true);
    expect(isOpen(other)).to.equal(false);
    closeSync(n);
  });

  it('using closes the fds nobody adopted', async () => {
    let n: number;
    {
      using m = await receiveDevNull(1);
      n = m.fds[0]!.fd;
      expect(isOpen(n)).to.equal(true);
    }
    expect(isOpen(n)).to.equal(false);
  });

  it('a message dropped without close(): the GC backstop closes its fds and warns (EXPLICIT_SYNC_LEAK)', () => {
    const code = `
      const { UnixSocket } = require('explicit-sync');
      const fs = require('node:fs');
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.code + ' ' + w.message));
      (async () => {
        const [a, b] = UnixSocket.socketpair();
        const f = fs.openSync('/dev/null', 'r');
        await a.send('x', [f, f]);
        fs.closeSync(f);
        let numbers;
        await (async () => { const m = await b.receive(); numbers = m.fds.map((x) => x.fd); })();
        a.close(); b.close();
        for (let i = 0; i < 40 && warnings.length === 0; i++) { gc(); await new Promise((r) => setTimeout(r, 25)); }
        const open = numbers.filter((n) => { try { fs.fstatSync(n); return true; } catch { return false; } });
        console.log('RESULT ' + JSON.stringify({ open, warnings }));
      })();`;
    const out = execFileSync(process.execPath, ['--expose-gc', '--no-warnings', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    const r = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7)) as { open: number[]; warnings: string[] };
    expect(r.open).to.deep.equal([]);
    expect(r.warnings.join('\n')).to.match(/EXPLICIT_SYNC_LEAK .*ReceivedFd/);
  });

  it('a worker that exits without closing: its received fds are closed, the ones it took are not', async () => {
    const [a, b] = UnixSocket.socketpair();
    const f = openSync('/dev/null', 'r');
    await a.send('x', [f, f]);
    closeSync(f);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { UnixSocket } = require('explicit-sync');
       (async () => {
         const s = UnixSocket.fromFd(workerData.fd, { dup: true });
         const m = await s.receive();
         s.close();
         parentPort.postMessage({ kept: m.fds[0].fd, taken: m.fds[1].take() });
       })();`,
      { eval: true, workerData: { fd: b.fd } },
    );
    const [msg] = (await Promise.all([new Promise((r) => worker.once('message', r)), new Promise((r) => worker.once('exit', r))])) as [{ kept: number; taken: number }, unknown];
    expect(isOpen(msg.kept), 'closed at worker teardown').to.equal(false);
    expect(isOpen(msg.taken), 'taken: the caller\'s').to.equal(true);
    closeSync(msg.taken);
    a.close();
    b.close();
  });
});

describe('UnixServer', () => {
  it('listen / connect / accept: connections in order, the peer\'s credentials, close() removes the socket file', async () => {
    const path = join(dir, 'server.sock');
    const server = UnixServer.listen(path);
    try {
      expect(server.path).to.equal(path);
      expect(shouldThrow(() => UnixServer.listen(path), ExplicitSyncError)).to.include({ code: 'EADDRINUSE', syscall: 'bind' });
      const accepted = server.accept();
      const c1 = UnixSocket.connect(path);
      const c2 = UnixSocket.connect(path);
      const s1 = await accepted;
      const s2 = await server.accept();
      await c1.send('one');
      await c2.send('two');
      expect((await s1.receive())!.data.toString()).to.equal('one');
      expect((await s2.receive())!.data.toString()).to.equal('two');
      expect(s1.peerCredentials().pid).to.equal(process.pid);
      for (const s of [c1, c2, s1, s2]) s.close();
    } finally {
      server.close();
    }
    expect(existsSync(path)).to.equal(false);
  });

  it('for await yields connections and ends at close(); a pending accept() rejects with ClosedError', async () => {
    const path = join(dir, 'iter.sock');
    const server = UnixServer.listen(path, { maxFds: 3 });
    const got: UnixSocket[] = [];
    const loop = (async () => {
      for await (const s of server) got.push(s);
    })();
    const clients = [UnixSocket.connect(path), UnixSocket.connect(path)];
    while (got.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(got[0]!.limits.maxFds).to.equal(3);
    server.close();
    await loop;
    expect(await shouldReject(server.accept(), ClosedError)).to.have.property('syscall', 'accept4');
    for (const s of [...got, ...clients]) s.close();
  });

  it('connect errors: ENOENT, ECONNREFUSED (a socket file nobody listens on), with syscall connect', () => {
    const e1 = shouldThrow(() => UnixSocket.connect(join(dir, 'nope.sock')), ExplicitSyncError);
    expect(e1).to.include({ code: 'ENOENT', syscall: 'connect', errno: -2 });
    const path = join(dir, 'stale.sock');
    const server = UnixServer.listen(path);
    linkSync(path, `${path}.link`);
    server.close();
    const e2 = shouldThrow(() => UnixSocket.connect(`${path}.link`), ExplicitSyncError);
    expect(e2).to.include({ code: 'ECONNREFUSED', syscall: 'connect' });
  });
});

describe('UnixSocket#receive(): timeouts, cancellation, ref', () => {
  it('times out with TimeoutError (ETIME), aborts with AbortError; the next caller gets the next message', async () => {
    const [a, b] = UnixSocket.socketpair();
    try {
      const t = await shouldReject(b.receive({ timeoutMs: 30 }), TimeoutError);
      expect(t).to.include({ code: 'ETIME', syscall: 'recvmsg', operation: 'receive' });
      const ac = new AbortController();
      const aborted = b.receive({ signal: ac.signal });
      const next = b.receive();
      ac.abort('stop');
      expect((await shouldReject(aborted, AbortError)).cause).to.equal('stop');
      await a.send('for the next');
      expect((await next)!.data.toString()).to.equal('for the next');
    } finally {
      a.close();
      b.close();
    }
  });

  it('an idle socket and a receive({ ref: false }) do not keep the process alive; a ref\'d receive does', () => {
    const run = (ref: boolean): string =>
      execFileSync(process.execPath, ['-e', `
        const { UnixSocket } = require('explicit-sync');
        const [a, b] = UnixSocket.socketpair();
        b.receive({ ref: ${ref} }).then((m) => console.log('got', m && m.data.toString()));
        setTimeout(() => a.send('late'), 300).unref();
        process.on('exit', () => console.log('exit'));`], { encoding: 'utf8', timeout: 60_000 });
    expect(run(false)).to.equal('exit\n');
    expect(run(true)).to.equal('got late\nexit\n');
  });
});

describe('UnixSocket: bad input', () => {
  it('refuses bad arguments with Node-style errors, synchronously for the factories, as rejections for send/receive', async () => {
    const [a, b] = UnixSocket.socketpair();
    try {
      const code = (e: unknown): string => (e as { code: string }).code;
      expect(code(shouldThrow(() => UnixSocket.connect(42 as unknown as string), TypeError))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(code(shouldThrow(() => UnixSocket.connect('a\0b'), TypeError))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(code(shouldThrow(() => UnixSocket.connect('x'.repeat(108)), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      expect(code(shouldThrow(() => UnixSocket.socketpair({ maxFds: 254 }), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      expect(code(shouldThrow(() => UnixSocket.socketpair({ maxFd: 2 } as object), TypeError))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(code(shouldThrow(() => UnixSocket.socketpair({ maxMessageBytes: 0 }), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      expect(code(shouldThrow(() => UnixServer.listen(join(dir, 'b.sock'), { backlog: -1 }), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      const f = openSync('/dev/null', 'r');
      expect(shouldThrow(() => UnixSocket.fromFd(f), ExplicitSyncError).code).to.equal('ENOTSOCK');
      closeSync(f);
      const send = (data: unknown, fds?: unknown): Promise<unknown> => a.send(data as string, fds as number[]);
      expect(code(await shouldReject(send(''), TypeError))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(code(await shouldReject(send(42), TypeError))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(code(await shouldReject(send(Buffer.alloc(65537)), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      expect(code(await shouldReject(send('x', 3), TypeError))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(code(await shouldReject(send('x', [-1]), RangeError))).to.equal('ERR_OUT_OF_RANGE');
      expect(code(await shouldReject(send('x', ['3']), TypeError))).to.equal('ERR_INVALID_ARG_TYPE');
      const [c, d] = UnixSocket.socketpair();
      c.close();
      d.close();
      expect(code(await shouldReject(send('x', [c]), ClosedError))).to.equal('EBADF');
      expect(code(await shouldReject(send('x', [0x7ffffff0]), ExplicitSyncError))).to.equal('EBADF');
      expect(code(await shouldReject(b.receive({ timeout: 5 } as object), TypeError))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(code(await shouldReject(b.receive({ timeoutMs: -1 }), RangeError))).to.equal('ERR_OUT_OF_RANGE');
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('two unrelated processes on a socket path (host)', function () {
  this.timeout(120_000);
  const peer = fileURLToPath(new URL('./children/unix-peer.mjs', import.meta.url));

  /** Starts `node unix-peer.mjs ...args`; resolves with its stdout when it exits. */
  function start(args: string[], onLine?: (line: string) => void): { done: Promise<{ out: string; signal: string | null }>; kill(): void } {
    const child = spawn(process.execPath, [peer, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine?.(line);
    });
    return {
      done: new Promise((resolve) => child.on('close', (_code, signal) => resolve({ out, signal }))),
      kill: () => child.kill('SIGKILL'),
    };
  }
  const result = (out: string): Record<string, unknown> => JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT '))!.slice(7));

  it('an fd opened by one crosses to the other; the sender SIGKILLed mid-flood: the receiver gets every whole message, then ECONNRESET, no fd left open', async () => {
    const path = join(dir, 'peers.sock');
    const file = join(dir, 'secret');
    writeFileSync(file, 'from the sender');
    let welcomed!: () => void;
    const welcome = new Promise<void>((resolve) => (welcomed = resolve));
    const listener = start(['listen', path], (line) => line === 'WELCOMED' && welcomed());
    let sender: { kill(): void } | undefined = undefined;
    const flooding = new Promise<void>((resolve) => {
      sender = start(['send', path, file, '100000'], (line) => line === 'FLOODING' && resolve());
    });
    // Killed while it waits on a full socket buffer with the listener's welcome unread (connect()
    // does not wait for accept(): the flood may begin before the listener accepted).
    await Promise.all([flooding, welcome]);
    sender!.kill();
    const { out } = await listener.done;
    const r = result(out);
    expect(r['first']).to.equal('from the sender');
    expect(r['distinct']).to.deep.equal(['from the sender']);
    expect(r['messages']).to.be.greaterThan(1);
    // It died with our welcome unread: after the messages it sent, recvmsg says ECONNRESET.
    expect(r['error']).to.equal('ECONNRESET recvmsg');
    expect(r['left']).to.deep.equal([]);
  });
});
