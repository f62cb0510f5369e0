// A compositor-style frame loop with explicit sync, as in Wayland's linux-drm-syncobj-v1, on the
// library's compositor kit: each client's surface is a SurfaceSync, fed the client's requests
// (attach, set_acquire_point, set_release_point, commit). Each commit carries an *acquire* point
// (the compositor may read the buffer once it signals) and a *release* point (a ReleasePoint the
// compositor owes: it is paid once nothing uses the buffer any more, so the client may render into
// it again).
//
// The compositor must never hang on a client: a client can commit an acquire point and never
// submit the GPU work behind it. SurfaceSync bounds the wait for the point to *materialise* (get
// a fence), then waits for its signal, and reports a commit whose point never came as
// 'unsubmitted': that client is dropped, and the loop goes on with the others.
//
// When there is a vkms display, the first client's buffers are scanned out on it directly, and
// their release points are tied to the commit that takes them off screen (ScanoutReleases: the
// next frame's out-fence pays them, in the kernel).
//
// vgem stands in for the clients' GPU, a timeline-capable DRM node (virtio_gpu in the VM; any
// GPU with DRM_CAP_SYNCOBJ_TIMELINE) carries the timelines:
//   npx explicit-sync vm -- node examples/compositor.mjs
import { Device, KmsDevice, NoDeviceError, ScanoutReleases, SurfaceSync, SyncobjProtocolError, VgemDevice } from 'explicit-sync';

const FRAMES = 3;
const MATERIALIZE_MS = 300; // how long a client gets to submit the work behind its acquire point
const RENDER_MS = 10_000; // how long submitted work may take (a hung GPU job is another matter)

const gpu = Device.open({ require: ['timeline'] });
const vgem = VgemDevice.open();
const display = openDisplay();

/** vkms, a mode and a release ledger for its CRTC; null where there is no vkms. */
function openDisplay() {
  let kms;
  try {
    kms = KmsDevice.open({ driver: 'vkms' });
  } catch (err) {
    if (!(err instanceof NoDeviceError)) throw err;
    console.log('compositor: no vkms here: composing without a display');
    return null;
  }
  return { kms, out: kms.pickOutput(), scanout: new ScanoutReleases(), modeset: false };
}
// Client buffers as big as the display's mode, so that they can be scanned out as they are.
const SIZE = display ? { width: display.out.mode.width, height: display.out.mode.height } : { width: 64, height: 64 };

class Client {
  constructor(name, { rogue = false } = {}) {
    this.name = name;
    this.rogue = rogue; // commits frames but never submits the work behind them
    this.acquire = gpu.createTimeline(); // in real life: imported from the client's fd
    this.release = gpu.createTimeline();
    // Two buffers: frame n renders into buffer n % 2, once the compositor released frame n - 2.
    this.buffers = [0, 1].map(() => vgem.createBuffer(SIZE));
    this.dmabufs = this.buffers.map((b) => b.exportDmaBuf());
    this.fbs = display ? this.buffers.map((b, i) => display.kms.importFramebuffer(this.dmabufs[i], { ...SIZE, pitch: b.pitch })) : [];
    // The compositor's side of this client's wp_linux_drm_syncobj_surface_v1.
    this.surface = new SurfaceSync({ materializeTimeoutMs: MATERIALIZE_MS, signalTimeoutMs: RENDER_MS });
  }

  /** Renders frame n and commits it with acquire point n and release point n. */
  async frame(n) {
    const i = n % 2;
    if (n > 2) await this.release.wait(n - 2, { timeoutMs: RENDER_MS }); // buffer i is free again
    if (!this.rogue) {
      // "Submit a GPU job" that writes the buffer: its vgem fence becomes acquire point n. The
      // GPU writes the frame number into the first pixel, then the fence signals.
      const job = this.buffers[i].attachFence({ write: true });
      const jobFence = this.dmabufs[i].exportSyncFile('write');
      try {
        this.acquire.importSyncFile(n, jobFence);
      } finally {
        jobFence.close();
      }
      setTimeout(() => {
        this.dmabufs[i].map().writeUInt32LE(n, 0);
        job.signal();
      }, 10);
    }
    // The requests, as the compositor receives them.
    this.surface.attach(this.dmabufs[i]);
    this.surface.setAcquirePoint(this.acquire, n);
    this.surface.setReleasePoint(this.release, n);
    return this.surface.commit(); // a SurfaceCommit, or a SyncobjProtocolError to post
  }

  async close() {
    this.surface.close(); // pays every release point still owed, at the end of this turn
    await new Promise((r) => setImmediate(r));
    for (const o of [this.acquire, this.release, ...this.fbs, ...this.dmabufs, ...this.buffers]) o.close();
  }
}

/** The compositor's side of one commit: wait for it to be ready (bounded), read the buffer. */
async function compose(client, n, commit) {
  if (commit instanceof SyncobjProtocolError) throw commit; // a real compositor disconnects the client
  const outcome = await commit.ready;
  if (outcome.status !== 'ready') {
    // 'unsubmitted' (never materialised) or 'unsignaled' (submitted, not done)
    console.log(`frame ${n}: dropping ${client.name} (${outcome.status}): ${outcome.error?.message}`);
    client.dropped = true;
    client.surface.close();
    return;
  }
  // Reading the buffer is a use of it: hold its release point meanwhile (the surface holds it
  // too, until the next frame's buffer displaces this one).
  const reading = commit.release.hold();
  let shown;
  try {
    const pixels = commit.buffer.map();
    await commit.buffer.beginCpuAccessAsync('read', { timeoutMs: RENDER_MS });
    shown = pixels.readUInt32LE(0);
    commit.buffer.endCpuAccess('read');
  } finally {
    reading.release();
  }
  console.log(`frame ${n}: ${client.name} shows its frame ${shown}`);
  if (shown !== n) throw new Error(`${client.name}: read frame ${shown} while compositing frame ${n}`);
  if (display && client === clients[0]) await scanOut(client.fbs[n % 2], commit.release);
}

/**
 * Puts a client's buffer on screen as it is (direct scanout). Its release point stays owed while it
 * is shown: the commit that replaces it pays it with its out-fence.
 */
async function scanOut(fb, release) {
  const { kms, out, scanout } = display;
  scanout.releaseOnDisplacement(release);
  const req = kms.atomic().setPlane(out.plane, out.crtc, fb).outFence(out.crtc);
  if (!display.modeset) req.modeset(out);
  let result;
  try {
    result = req.commit({ allowModeset: !display.modeset, nonblock: display.modeset, pageFlipEvent: true });
  } catch (err) {
    scanout.abort(); // never shown: nothing to wait for
    throw err;
  }
  display.modeset = true;
  scanout.committed(result.outFence); // the buffer shown until now is released by this frame's out-fence
  result.outFence.close();
  await result.flip;
}

const clients = [new Client('good-client'), new Client('rogue-client', { rogue: true })];
try {
  const t0 = performance.now();
  for (let n = 1; n <= FRAMES; n++) {
    const active = clients.filter((c) => !c.dropped);
    const commits = await Promise.all(active.map((c) => c.frame(n))); // clients commit
    await Promise.all(active.map((c, i) => compose(c, n, commits[i]))); // the compositor composes them
  }
  const dropped = clients.filter((c) => c.dropped).map((c) => c.name);
  console.log(`compositor: ${FRAMES} frames in ${(performance.now() - t0).toFixed(0)} ms; dropped: ${dropped.join(', ') || 'none'}`);
} finally {
  display?.scanout.close(); // nothing is scanned out from here on: the last shown buffer is released
  for (const c of clients) await c.close();
  display?.kms.close();
  vgem.close();
  gpu.close();
}
