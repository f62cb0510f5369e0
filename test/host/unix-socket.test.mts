// UnixSocket on the host: the socket mechanics with ordinary fds (FIFOs, files, /dev/null, other
// sockets) — data and fds both ways, order, backpressure on a full socket buffer, the fd bound,
// truncated messages (MSG_CTRUNC, MSG_TRUNC) provoked for real, a peer that goes away, close while
// pending, and no fd left open on either side. Ownership and processes: unix-socket-fds.test.mts.
import { expect } from 'chai';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClosedError,
  DEFAULT_MAX_FDS,
  ExplicitSyncError,
  FdMessage,
  ReceivedFd,
  TruncatedMessageError,
  UnixSocket,
} from 'explicit-sync';
import { isOpen, openFds, openFifo, settlesWithin, shouldReject } from '../helpers.mjs';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'es-unix-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The open flags of one of our fds (/proc/self/fdinfo), as a number. */
function fdFlags(fd: number): number {
  const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').find((l) => l.startsWith('flags:'))!;
  return parseInt(line.split(/\s+/)[1]!, 8);
}
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

/**
 * Runs `fn` with a fresh socket pair (the second end with `options2`, when given), closed
 * afterwards; checks that no fd was left open.
 */
async function withPair(fn: (a: UnixSocket, b: UnixSocket) => Promise<void>, options = {}, options2?: object): Promise<void> {
  const before = openFds();
  const [a, b0] = UnixSocket.socketpair(options);
  const b = options2 === undefined ? b0 : UnixSocket.fromFd(b0.fd, { dup: true, ...options2 });
  if (b !== b0) b0.close();
  try {
    await fn(a, b);
  } finally {
    a.close();
    b.close();
  }
  expect(openFds(), 'fds left open').to.deep.equal(before);
}

describe('UnixSocket.socketpair()', () => {
  it('makes two connected SOCK_SEQPACKET sockets, both O_CLOEXEC|O_NONBLOCK', async () => {
    await withPair(async (a, b) => {
      for (const s of [a, b]) {
        expect(fdFlags(s.fd) & O_NONBLOCK, 'O_NONBLOCK').to.equal(O_NONBLOCK);
        expect(fdFlags(s.fd) & O_CLOEXEC, 'O_CLOEXEC').to.equal(O_CLOEXEC);
      }
      expect(a.limits).to.deep.equal({ maxFds: DEFAULT_MAX_FDS, maxMessageBytes: 65536, maxQueuedSends: 64 });
      expect(a.peerCredentials()).to.deep.equal({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    });
  });
});

describe('UnixSocket#send() / #receive()', () => {
  it('carries data and fds: the same open files, received O_CLOEXEC', async () => {
    await withPair(async (a, b) => {
      const file = join(dir, 'shared');
      const f = openSync(file, 'w+');
      const fifo = openFifo(dir);
      try {
        writeSync(f, 'abc');
        await a.send('hello', [f, fifo]);
        const m = await b.receive();
        expect(m).to.be.instanceOf(FdMessage);
        expect(m!.data.toString()).to.equal('hello');
        expect(m!.fds).to.have.length(2);
        const [rf, rfifo] = m!.fds as [ReceivedFd, ReceivedFd];
        expect(rf).to.be.instanceOf(ReceivedFd);
        expect(rf.fd).to.not.equal(f);
        expect(fdFlags(rf.fd) & O_CLOEXEC).to.equal(O_CLOEXEC);
        expect(fstatSync(rf.fd).ino).to.equal(fstatSync(f).ino);
        // One open file description: the received fd shares the sender's offset.
        writeSync(rf.fd, 'd');
        expect(readFileSync(file, 'utf8')).to.equal('abcd');
        writeSync(rfifo.fd, 'x');
        const buf = Buffer.alloc(1);
        expect(readSync(fifo, buf)).to.equal(1);
        expect(rfifo.describe()).to.match(/\/fifo[\d-]+$/);
        const numbers = m!.fds.map((x) => x.fd);
        m!.close();
        for (const n of numbers) expect(isOpen(n)).to.equal(false);
        expect(rf.closed).to.equal(true);
        m!.close(); // idempotent
      } finally {
        closeSync(f);
        closeSync(fifo);
      }
    });
  });

  it('keeps message boundaries and order over many messages, fds with the message they came in', async () => {
    await withPair(async (a, b) => {
      const fifo = openFifo(dir);
      const N = 500;
      const got: string[] = [];
      const reader = (async () => {
        for await (const m of b) {
          got.push(`${m.data.toString()}:${m.fds.length}`);
          m.close();
          if (got.length === N) break;
        }
      })();
      // A sender that waits for each send: the socket buffer fills, and send() waits for the reader.
      for (let i = 0; i < N; i++) await a.send(`m${i}`, Array.from({ length: i % 4 }, () => fifo));
      closeSync(fifo);
      await reader;
      expect(got).to.deep.equal(Array.from({ length: N }, (_, i) => `m${i}:${i % 4}`));
    });
  });

  it('accepts a Buffer, a Uint8Array, and objects that own an fd (another UnixSocket)', async () => {
    await withPair(async (a, b) => {
      const [x, y] = UnixSocket.socketpair();
      try {
        await a.send(new Uint8Array([1, 2, 3]), [x]);
        await a.send(Buffer.from([4]));
        const m1 = (await b.receive())!;
        expect([...m1.data]).to.deep.equal([1, 2, 3]);
        // A socket end, passed through a socket, works: adopt it and talk to its peer.
        const z = UnixSocket.fromFd(m1.fds[0]!.fd);
        expect(m1.fds[0]!.closed, 'handed over to the adopter').to.equal(true);
        m1.close();
        await y.send('through');
        const m = (await z.receive())!;
        expect(m.data.toString()).to.equal('through');
        m.close();
        z.close();
        expect([...(await b.receive())!.data]).to.deep.equal([4]);
      } finally {
        x.close();
        y.close();
      }
    });
  });
});

describe('UnixSocket: backpressure', () => {
  const big = (i: number): Buffer => Buffer.alloc(32 * 1024, i);

  it('queues what the full socket buffer refuses, resolves each send() once the peer read enough, in order', async () => {
    await withPair(async (a, b) => {
      const N = 24;
      const fifo = openFifo(dir);
      const resolved: number[] = [];
      const sends = Array.from({ length: N }, (_, i) => a.send(big(i), [fifo]).then(() => resolved.push(i)));
      closeSync(fifo);
      expect(a.queuedSends, 'the socket buffer (208 KiB by default) holds a few 32 KiB messages').to.be.greaterThan(0);
      expect(await settlesWithin(sends[N - 1]!, 300), 'the last send waits for the reader').to.equal(false);
      for (let i = 0; i < N; i++) {
        const m = (await b.receive())!;
        expect(m.data[0], `message ${i}`).to.equal(i);
        expect(m.data.length).to.equal(32 * 1024);
        expect(m.fds[0]!.describe(), 'the fd survived its sender closing it').to.match(/\/fifo[\d-]+$/);
        m.close();
      }
      await Promise.all(sends);
      expect(resolved).to.deep.equal(Array.from({ length: N }, (_, i) => i));
      expect(a.queuedSends).to.equal(0);
    });
  });

  it('bounds the queue: beyond maxQueuedSends, send() rejects with ENOBUFS', async () => {
    await withPair(
      async (a, b) => {
        const sends: Promise<unknown>[] = [];
        while (a.queuedSends < 2) sends.push(a.send(big(sends.length)));
        const err = await shouldReject(a.send(big(99)), ExplicitSyncError);
        expect(err.code).to.equal('ENOBUFS');
        expect(err.syscall).to.equal('sendmsg');
        expect(err.operation).to.equal('send');
        for (let i = 0; i < sends.length; i++) (await b.receive())!.close();
        await Promise.all(sends);
      },
      { maxQueuedSends: 2 },
    );
  });
});

describe('UnixSocket: the fd bound and truncated messages', () => {
  it('send() refuses more than maxFds fds (ERR_OUT_OF_RANGE), as a rejection', async () => {
    await withPair(
      async (a) => {
        const err = await shouldReject(a.send('x', [0, 1, 2]), RangeError);
        expect((err as RangeError & { code: string }).code).to.equal('ERR_OUT_OF_RANGE');
      },
      { maxFds: 2 },
    );
  });

  for (const [maxFds, sent] of [[2, 5], [1, 2], [0, 1], [DEFAULT_MAX_FDS, 253]] as const) {
    it(`more fds than the receiver takes (maxFds ${maxFds}, ${sent} sent): TruncatedMessageError, fds that arrived closed, socket usable`, async () => {
      await withPair(
        async (a, b) => {
          const before = openFds();
          await a.send('too many', Array.from({ length: sent }, () => 0));
          const err = await shouldReject(b.receive(), TruncatedMessageError);
          expect(err.code).to.equal('EMSGSIZE');
          expect(err.errno).to.equal(-90);
          expect(err.syscall).to.equal('recvmsg');
          expect(err.operation).to.equal('receive');
          expect(err.truncated).to.equal('fds');
          // CMSG_SPACE pads the control buffer to 8 bytes: an odd bound has room for one more fd,
          // which arrives (no MSG_CTRUNC) and is refused all the same.
          expect(err.closedFds).to.equal(Math.min(sent, maxFds % 2 === 1 ? maxFds + 1 : maxFds));
          expect(openFds(), 'the fds that arrived were closed').to.deep.equal(before);
          await a.send('next');
          const m = (await b.receive())!;
          expect(m.data.toString()).to.equal('next');
          m.close();
        },
        { maxFds: 253 },
        { maxFds },
      );
    });
  }

  it('more data than maxMessageBytes (MSG_TRUNC): TruncatedMessageError with the real size, its fds closed', async () => {
    await withPair(
      async (a, b) => {
        const before = openFds();
        await a.send(Buffer.alloc(100), [0]);
        const err = await shouldReject(b.receive(), TruncatedMessageError);
        expect(err.truncated).to.equal('data');
        expect(err.bytes).to.equal(100);
        expect(err.closedFds).to.equal(1);
        expect(openFds()).to.deep.equal(before);
      },
      {},
      { maxMessageBytes: 16 },
    );
  });
});

describe('UnixSocket: a peer that goes away', () => {
  it('receive() resolves null at the end of the stream (pending and later), after the messages sent before', async () => {
    const [a, b] = UnixSocket.socketpair();
    try {
      const pending = b.receive();
      await a.send('last words');
      a.close();
      expect((await pending)!.data.toString()).to.equal('last words');
      expect(await b.receive()).to.equal(null);
      expect(await b.receive()).to.equal(null);
      const seen: unknown[] = [];
      for await (const m of b) seen.push(m);
      expect(seen).to.deep.equal([]);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a pending receive() resolves null when the peer closes', async () => {
    const [a, b] = UnixSocket.socketpair();
    const pending = b.receive();
    setTimeout(() => a.close(), 20);
    expect(await pending).to.equal(null);
    b.close();
  });

  it('send() to a closed peer rejects with EPIPE (no SIGPIPE), ECONNRESET when it left messages unread', async () => {
    const [a, b] = UnixSocket.socketpair();
    await a.send('unread');
    b.close();
    const first = await shouldReject(a.send('x'), ExplicitSyncError);
    expect(first.code).to.equal('ECONNRESET');
    expect(first.syscall).to.equal('sendmsg');
    const second = await shouldReject(a.send('x'), ExplicitSyncError);
    expect(second.code).to.equal('EPIPE');
    expect(second.errno).to.equal(-32);
    expect(second.operation).to.equal('send');
    a.close();
  });

  it('queued sends reject when the peer closes, and their fd duplicates are closed', async () => {
    const before = openFds();
    const [a, b] = UnixSocket.socketpair();
    const fifo = openFifo(dir);
    const sends = Array.from({ length: 20 }, (_, i) => a.send(Buffer.alloc(32 * 1024, i), [fifo]).then(() => 'sent', (e: ExplicitSyncError) => e.code));
    closeSync(fifo);
    expect(a.queuedSends).to.be.greaterThan(0);
    b.close();
    const outcomes = await Promise.all(sends);
    expect(outcomes.filter((o) => o === 'sent').length).to.be.greaterThan(0);
    for (const o of outcomes.slice(outcomes.indexOf('ECONNRESET'))) expect(o).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    a.close();
    expect(openFds()).to.deep.equal(before);
  });
});

describe('UnixSocket#close()', () => {
  it('rejects pending receives and queued sends with ClosedError, ends iteration, closes the queued fds', async () => {
    const before = openFds();
    const [a, b] = UnixSocket.socketpair();
    const fifo = openFifo(dir);
    const sends = Array.from({ length: 20 }, () => a.send(Buffer.alloc(32 * 1024), [fifo]).catch((e: Error) => e));
    closeSync(fifo);
    const iterating = (async () => {
      const seen: unknown[] = [];
      for await (const m of b) seen.push(m);
      return seen;
    })();
    const [c, d] = UnixSocket.socketpair();
    const pending = c.receive();
    c.close();
    d.close();
    expect((await shouldReject(pending, ClosedError)).code).to.equal('EBADF');
    a.close();
    const outcomes = await Promise.all(sends);
    expect(outcomes.some((o) => o instanceof ClosedError)).to.equal(true);
    b.close();
    for (const m of (await iterating) as FdMessage[]) m.close();
    expect(await shouldReject(a.send('x'), ClosedError)).to.have.property('syscall', 'sendmsg');
    expect(await shouldReject(a.receive(), ClosedError)).to.have.property('syscall', 'recvmsg');
    expect(openFds()).to.deep.equal(before);
  });
});
