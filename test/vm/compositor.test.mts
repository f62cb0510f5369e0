// The compositor kit against real kernel objects: scripted misbehaving clients as child processes
// (test/vm/children/syncobj-client.mts: their own timeline handles and vgem buffers, the timelines'
// fds passed at spawn), each with its protocol error or outcome, no hang, no fd left open (the root
// hooks count them), and every owed release point signalled, as the client sees it. Then release
// ordering with a pending vgem fence, a pending vkms out-fence and a hold.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  Device,
  KmsDevice,
  ReleasePoint,
  ScanoutReleases,
  SurfaceCommit,
  SurfaceSync,
  SyncobjProtocolError,
  Timeline,
  VgemDevice,
  type SurfaceSyncOptions,
} from 'explicit-sync';
import { childScript } from './child-helpers.mjs';
import { openTimelineDevice } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith, expectNoVkms, has } from './kernel-features.mjs';

/** One client process and the compositor's side of it: its imported timelines and its surface. */
class Client {
  readonly lines: string[] = [];
  readonly #waiters: { match: string; resolve: (l: string) => void }[] = [];
  readonly exited: Promise<number | null>;
  readonly acquire: Timeline;
  readonly release: Timeline;
  readonly surface: SurfaceSync<string>;
  readonly proc: ChildProcess;

  constructor(dev: Device, vgemPath: string, options?: SurfaceSyncOptions) {
    using a = dev.createTimeline();
    using r = dev.createTimeline();
    const fds = [a.exportFd(), r.exportFd()];
    // The compositor imports them as wp_linux_drm_syncobj_manager_v1.import_timeline would.
    this.acquire = dev.importTimeline(fds[0]!);
    this.release = dev.importTimeline(fds[1]!);
    this.proc = spawn(process.execPath, [childScript('syncobj-client'), dev.path, vgemPath], {
      stdio: ['pipe', 'pipe', 'inherit', fds[0]!, fds[1]!],
    });
    for (const fd of fds) closeSync(fd);
    this.exited = new Promise((res) => this.proc.on('exit', (code) => res(code)));
    createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      const i = this.#waiters.findIndex((w) => l.startsWith(w.match));
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(l);
      else this.lines.push(l);
    });
    this.surface = new SurfaceSync<string>(options);
  }

  /** The next line starting with `match` (one already received, or the next to come). */
  line(match: string): Promise<string> {
    const i = this.lines.findIndex((l) => l.startsWith(match));
    if (i >= 0) return Promise.resolve(this.lines.splice(i, 1)[0]!);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  async send(cmd: string): Promise<void> {
    this.proc.stdin!.write(`${cmd}\n`);
    const answer = await this.line('ok');
    expect(answer).to.equal('ok');
  }

  /** A surface commit of `buffer` with acquire point a and release point r (on the client's timelines). */
  commit(buffer: string, a: number, r: number, releaseOn: Timeline = this.release): SurfaceCommit<string> | SyncobjProtocolError {
    this.surface.attach(buffer);
    this.surface.setAcquirePoint(this.acquire, a);
    this.surface.setReleasePoint(releaseOn, r);
    return this.surface.commit();
  }

  /** Ends the client: waits for its release watches; returns what it saw. */
  async finish(): Promise<{ released: number[]; starved: number[] }> {
    this.proc.stdin!.end('exit\n');
    const result = await this.line('RESULT ');
    expect(await this.exited).to.equal(0);
    this.close();
    return JSON.parse(result.slice('RESULT '.length)) as { released: number[]; starved: number[] };
  }

  close(): void {
    this.surface.close();
    this.acquire.close();
    this.release.close();
  }
}

function ok(c: SurfaceCommit<string> | SyncobjProtocolError): SurfaceCommit<string> {
  if (c instanceof SyncobjProtocolError) throw c;
  return c;
}

describeWith(['timeline'], 'compositor kit: misbehaving clients (kernel, child processes)', function () {
  this.timeout(60000);
  let dev: Device;
  let vgem: VgemDevice;
  let client: Client | undefined;
  before(() => {
    dev = openTimelineDevice();
    vgem = VgemDevice.open();
  });
  afterEach(() => {
    if (client?.proc.exitCode === null) client.proc.kill('SIGKILL');
    client?.close();
    client = undefined;
  });
  after(() => {
    vgem.close();
    dev.close();
  });

  async function start(options?: SurfaceSyncOptions): Promise<Client> {
    client = new Client(dev, vgem.path, options);
    await client.line('ready');
    return client;
  }

  it('never submits: the commit is reported unsubmitted, its release point is paid, the queue goes on', async () => {
    const c = await start({ materializeTimeoutMs: 300 });
    await c.send('watch 1');
    await c.send('watch 2');
    const c1 = ok(c.commit('A', 1, 1));
    const o1 = await c1.ready;
    expect(o1.status).to.equal('unsubmitted');
    expect(o1.status !== 'ready' && o1.status !== 'discarded' && o1.error.reason).to.equal('unsubmitted');
    await c.line('released 1'); // nothing used buffer A: paid at once
    await c.send('render 2 20');
    const c2 = ok(c.commit('B', 2, 2));
    expect(await c2.ready).to.deep.equal({ status: 'ready' });
    expect(c.surface.current).to.equal(c2);
    c.surface.destroySurface();
    expect(await c.finish()).to.deep.equal({ released: [1, 2], starved: [] });
  });

  it('submits late: within the bound the commit waits; past it, it is dropped', async () => {
    const c = await start({ materializeTimeoutMs: 1500 });
    await c.send('watch 1');
    await c.send('watch 2');
    await c.send('late 1 300');
    const t0 = performance.now();
    const c1 = ok(c.commit('A', 1, 1));
    expect(await c1.ready).to.deep.equal({ status: 'ready' });
    expect(performance.now() - t0).to.be.greaterThanOrEqual(250);
    await c.send('late 2 2500');
    const c2 = ok(c.commit('B', 2, 2));
    expect((await c2.ready).status).to.equal('unsubmitted');
    expect(c.surface.current).to.equal(c1); // the late frame never replaced the shown one
    c.surface.destroySurface();
    expect(await c.finish()).to.deep.equal({ released: [1, 2], starved: [] });
  });

  it('signals out of order: a later acquire point reaches the earlier ones; commits become ready in order', async () => {
    const c = await start();
    for (const n of [1, 2]) await c.send(`watch ${n}`);
    const c1 = ok(c.commit('A', 1, 1));
    const c2 = ok(c.commit('B', 2, 2));
    const order: number[] = [];
    void c2.ready.then(() => order.push(2));
    void c1.ready.then(() => order.push(1));
    await c.send('signal 2');
    expect(await c2.ready).to.deep.equal({ status: 'ready' });
    expect(await c1.ready).to.deep.equal({ status: 'ready' });
    expect(order).to.deep.equal([1, 2]);
    expect(c1.status).to.equal('displaced');
    await c.line('released 1'); // displaced by the next buffer
    c.surface.destroySurface();
    expect(await c.finish()).to.deep.equal({ released: [1, 2], starved: [] });
  });

  it('reuses a release point: unordered_point (posted as conflicting_points, 6), the timeline is not corrupted', async () => {
    const c = await start();
    await c.send('watch 1');
    await c.send('render 1');
    const c1 = ok(c.commit('A', 1, 1));
    expect(await c1.ready).to.deep.equal({ status: 'ready' });
    await c.send('render 2');
    const err = c.commit('B', 2, 1);
    expect(err).to.be.instanceOf(SyncobjProtocolError);
    expect((err as SyncobjProtocolError).error).to.equal('unordered_point');
    expect((err as SyncobjProtocolError).code).to.equal(6);
    // The failed surface ends its uses: release 1 is paid, and the timeline still reads 1.
    await c.line('released 1');
    expect(c.release.query()).to.equal(1n);
    expect(await c.finish()).to.deep.equal({ released: [1], starved: [] });
  });

  it('sends conflicting points (acquire ≥ release on one timeline): conflicting_points (6), nothing owed', async () => {
    const c = await start();
    const err = c.commit('A', 2, 2, c.acquire);
    expect(err).to.be.instanceOf(SyncobjProtocolError);
    expect((err as SyncobjProtocolError).error).to.equal('conflicting_points');
    expect((err as SyncobjProtocolError).code).to.equal(6);
    expect(c.acquire.query({ lastSubmitted: true })).to.equal(0n); // nothing was signalled on it
    expect(await c.finish()).to.deep.equal({ released: [], starved: [] });
  });

  it('destroys the surface with commits queued: they are discarded and every release point is paid', async () => {
    const c = await start({ materializeTimeoutMs: 30_000 });
    for (const n of [1, 2, 3]) await c.send(`watch ${n}`);
    await c.send('hang 1'); // submitted, never signalled: the gate waits on it
    const cs = [1, 2, 3].map((n) => ok(c.commit(`buf${n}`, n, n)));
    await new Promise((r) => setTimeout(r, 100));
    expect(c.surface.queued).to.have.length(3);
    c.surface.destroySurface();
    for (const x of cs) expect(await x.ready).to.deep.equal({ status: 'discarded' });
    expect(await c.finish()).to.deep.equal({ released: [1, 2, 3], starved: [] });
  });

  it('dies mid-frame: the compositor tears the surface down; no hang, the owed points signal', async () => {
    const c = await start({ materializeTimeoutMs: 30_000, signalTimeoutMs: 30_000 });
    await c.send('render 1');
    const c1 = ok(c.commit('A', 1, 1));
    expect(await c1.ready).to.deep.equal({ status: 'ready' });
    await c.send('hang 2'); // frame 2 is being rendered when the client dies
    const c2 = ok(c.commit('B', 2, 2));
    c.proc.kill('SIGKILL');
    expect(await c.exited).to.equal(null);
    c.surface.close(); // the client's connection is gone
    expect(['discarded', 'ready']).to.include((await c2.ready).status);
    await c.release.wait(2, { timeoutMs: 5000 });
    expect(c.release.query()).to.equal(2n);
  });
}, () => expectNoDeviceWith('timeline'));

describeWith(['timeline', 'vkms'], 'compositor kit: release ordering (kernel: vgem, vkms, a hold)', function () {
  this.timeout(60000);
  let dev: Device;
  let kms: KmsDevice;
  let vgem: VgemDevice;
  before(() => {
    dev = openTimelineDevice();
    kms = KmsDevice.open({ driver: 'vkms' });
    vgem = VgemDevice.open();
  });
  after(() => {
    vgem.close();
    kms.close();
    dev.close();
  });

  /** A vkms output with a framebuffer on screen, and a commit that flips to `fb` with an out-fence. */
  function output(): { flip: () => ReturnType<ReturnType<KmsDevice['atomic']>['commit']> } & Disposable {
    const out = kms.pickOutput();
    const { width, height } = out.mode;
    const a = kms.createFramebuffer({ width, height });
    const b = kms.createFramebuffer({ width, height });
    kms.atomic().modeset(out).setPlane(out.plane, out.crtc, a).commit({ allowModeset: true });
    let next = b;
    return {
      flip: () => {
        const fb = next;
        next = fb === a ? b : a;
        return kms.atomic().setPlane(out.plane, out.crtc, fb).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
      },
      [Symbol.dispose]() {
        a.close();
        b.close();
      },
    };
  }

  /** A pending vgem fence (the GPU pass reading the buffer) on a buffer. */
  function gpuPass(): { signal: () => void; buf: ReturnType<ReturnType<VgemDevice['createBuffer']>['exportDmaBuf']> } & Disposable {
    const bo = vgem.createBuffer({ width: 64, height: 64 });
    const buf = bo.exportDmaBuf();
    const job = bo.attachFence({ write: false });
    return { signal: () => void job.signal(), buf, [Symbol.dispose]: () => (job.signal(), buf.close(), bo.close()) };
  }

  /**
   * A ReleasePoint at `point` of `release` with three pending users: a hold, a vgem job (the GPU
   * pass, as the buffer's implicit fences) and the out-fence of a vkms flip.
   */
  function threeUsers(release: Timeline, point: number) {
    const scr = output();
    const pass = gpuPass();
    const rp = new ReleasePoint(release, point);
    const hold = rp.hold();
    rp.addDmaBuf(pass.buf);
    const { outFence, flip } = scr.flip();
    const shown = outFence!;
    rp.addFence(shown);
    return { rp, hold, pass, shown, flip, [Symbol.dispose]: () => (shown.close(), pass[Symbol.dispose](), scr[Symbol.dispose]()) };
  }

  it('the hold ends last: the point signals within one loop turn after it, not before', async () => {
    using release = dev.createTimeline();
    using u = threeUsers(release, 1);
    const { rp, hold, pass, shown, flip } = u;
    pass.signal();
    await flip;
    await shown.wait({ timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 20));
    expect(release.isSignaled(1)).to.equal(false); // the hold is still on
    hold.release();
    await new Promise((r) => setImmediate(r));
    expect(release.isSignaled(1)).to.equal(true);
    expect((await rp.paid).via).to.equal('cpu');
  });

  it('the KMS out-fence ends last: the point is paid with the fences and signals right after it', async () => {
    using release = dev.createTimeline();
    using u = threeUsers(release, 5);
    const { rp, hold, pass, shown, flip } = u;
    hold.release();
    const paid = await rp.paid;
    expect(paid.via).to.equal('fences');
    expect(release.isSignaled(5)).to.equal(false); // the GPU pass is still pending
    pass.signal();
    await flip;
    await shown.wait({ timeoutMs: 2000 });
    await release.wait(5, { timeoutMs: 50 }); // in the kernel, as soon as the out-fence signals
  });

  it('releaseOnDisplacement: a shown buffer is released by the out-fence of the commit that replaces it', async () => {
    using release = dev.createTimeline();
    using scr = output();
    using scanout = new ScanoutReleases();
    const rp1 = new ReleasePoint(release, 1);
    const rp2 = new ReleasePoint(release, 2);
    scanout.releaseOnDisplacement(rp1);
    const f1 = scr.flip();
    scanout.committed(f1.outFence!);
    f1.outFence!.close();
    await f1.flip;
    await new Promise((r) => setTimeout(r, 30));
    expect(rp1.state).to.equal('pending'); // on screen until displaced
    scanout.releaseOnDisplacement(rp2);
    const f2 = scr.flip();
    scanout.committed(f2.outFence!);
    expect((await rp1.paid).via).to.be.oneOf(['fences', 'cpu']);
    await f2.flip;
    f2.outFence!.close();
    await release.wait(1, { timeoutMs: 2000 });
    expect(release.isSignaled(2)).to.equal(false);
    scanout.close();
    await rp2.paid;
    expect(release.isSignaled(2)).to.equal(true);
  });
}, () => (has('timeline') ? expectNoVkms() : expectNoDeviceWith('timeline')));
