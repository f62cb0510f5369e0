// fds between unrelated processes, against the real kernel: two node processes, each spawned on its
// own (neither inherits the other's fds), meet on a socket path and share a syncobj timeline, a
// vgem dma-buf and a sync_file through it; a sender SIGKILLed mid-flood leaves the receiver with
// every whole message, a clean ECONNRESET and no fd open. In this process: the hand-over of
// received DRM fds to their adopters.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DmaBuf, SyncFile, UnixSocket, VgemDevice } from 'explicit-sync';
import { isOpen, openFds } from '../helpers.mjs';
import { childScript } from './child-helpers.mjs';
import { openTimelineDevice, vgemFence } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

interface Peer {
  /** Resolves when it exits: its stdout, exit code and signal. */
  done: Promise<{ out: string; code: number | null; signal: string | null; err: string }>;
  /** Resolves when it printed `line`. */
  printed(line: string): Promise<void>;
  kill(): void;
}

/** Starts `node fd-share.mjs <role> <path>` on its own: stdio is pipes, no other fd is passed. */
function peer(role: string, path: string): Peer {
  const child = spawn(process.execPath, [childScript('fd-share'), role, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiting = new Map<string, () => void>();
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    for (const [line, resolve] of waiting) if (out.split('\n').includes(line)) resolve();
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  return {
    done: new Promise((resolve) =>
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ out, code, signal, err });
      }),
    ),
    printed: (line) => new Promise((resolve) => (out.split('\n').includes(line) ? resolve() : waiting.set(line, resolve))),
    kill: () => child.kill('SIGKILL'),
  };
}

function resultOf(r: { out: string; err: string; code: number | null }): Record<string, unknown> {
  const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`no RESULT (exit ${r.code}):\n${r.out}\n${r.err}`);
  return JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>;
}

describeWith(['timeline', 'vgem'], 'UnixSocket: fds between unrelated processes (kernel)', function () {
  this.timeout(300_000); // two Node processes under TCG take seconds each to start
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'es-share-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a client sends a timeline, a dma-buf and a sync_file; each side signals, the other\'s wait resolves', async () => {
    const path = join(dir, 'compositor.sock');
    const compositor = peer('compositor', path);
    await compositor.printed('READY');
    const client = peer('client', path);
    const [c, k] = await Promise.all([compositor.done, client.done]);
    const cr = resultOf(c);
    const kr = resultOf(k);
    expect(c.code, c.err).to.equal(0);
    expect(k.code, k.err).to.equal(0);
    // importTimeline makes a handle of its own (the message keeps the fd); the fromFd adopters take theirs over.
    expect(cr['handedOver']).to.deep.equal({ timeline: false, buffer: true, syncFile: true });
    // The compositor sees the client's vgem fence, through the buffer and as the acquire fence.
    expect(cr['seen']).to.deep.equal({ data: 'frame 1', implicitSignaled: false, acquireDriver: 'vgem' });
    expect(c.out).to.contain('compositor: point 1 and both fences signalled; released point 2');
    expect(k.out).to.contain('client: released');
    expect(kr['said']).to.equal('waiting');
    expect(cr['end'], 'the client closed: end of stream').to.equal(null);
    expect(cr['query']).to.equal('2');
  });

  it('a sender SIGKILLed mid-flood: the receiver adopts every whole message, then gets ECONNRESET, and has no fd left open', async () => {
    const path = join(dir, 'sink.sock');
    const sink = peer('sink', path);
    await sink.printed('READY');
    const flood = peer('flood', path);
    // Killed once it waits on a full socket buffer, and has our message in its own, unread (the
    // sink may accept only after the flood began: connect() does not wait for accept()).
    await Promise.all([flood.printed('FLOODING'), sink.printed('WELCOMED')]);
    flood.kill();
    const [s, f] = await Promise.all([sink.done, flood.done]);
    expect(f.signal).to.equal('SIGKILL');
    const r = resultOf(s);
    expect(s.code, s.err).to.equal(0);
    expect(r['messages']).to.be.greaterThan(0);
    expect(r['error']).to.equal('ECONNRESET recvmsg');
    expect(r['left']).to.deep.equal([]);
  });
}, () => expectNoDeviceWith('timeline'));

describeWith(['timeline', 'vgem'], 'ReceivedFd: hand-over to the DRM adopters (kernel)', function () {
  it('SyncFile.fromFd, DmaBuf.fromFd take received fds over (closed once, by them); importTimeline leaves its fd to the message', async () => {
    using dev = openTimelineDevice();
    using vgem = VgemDevice.open();
    const before = openFds();
    const [a, b] = UnixSocket.socketpair();
    const { fence, syncFile } = vgemFence(vgem);
    const buf = vgem.createBuffer({ width: 4, height: 4 });
    const dmabuf = buf.exportDmaBuf();
    const timeline = dev.createTimeline();
    const tfd = timeline.exportFd();
    await a.send('objects', [syncFile, dmabuf, tfd]);
    closeSync(tfd);
    const m = (await b.receive())!;
    const numbers = m.fds.map((f) => f.fd);
    const sf = SyncFile.fromFd(numbers[0]!);
    const db = DmaBuf.fromFd(numbers[1]!);
    const imported = dev.importTimeline(numbers[2]!);
    expect(m.fds.map((f) => f.closed)).to.deep.equal([true, true, false]);
    m.close();
    expect(numbers.map(isOpen)).to.deep.equal([true, true, false]);
    expect(sf.isSignaled()).to.equal(false);
    expect(db.size).to.equal(dmabuf.size);
    const waited = sf.wait({ timeoutMs: 60_000 });
    fence.signal();
    await waited;
    timeline.signal(3);
    expect(imported.query()).to.equal(3n);
    for (const o of [sf, db, imported, timeline, dmabuf, syncFile, a, b]) o.close();
    buf.close();
    expect(numbers.map(isOpen)).to.deep.equal([false, false, false]);
    expect(openFds()).to.deep.equal(before);
  });
}, () => expectNoDeviceWith('timeline'));
