// A compositor-style frame loop with explicit sync, as in Wayland's linux-drm-syncobj-v1:
// each client commits a buffer together with an *acquire* point (the compositor may read the
// buffer once it signals) and a *release* point (the compositor signals it when it is done with
// the buffer, so the client may render into it again).
//
// The compositor must never hang on a client: a client can commit an acquire point and never
// submit the GPU work behind it. So it first waits, with a bound, for the point to *materialise*
// (get a fence: `until: 'available'`), and only then for it to signal. A client whose point does
// not materialise in time is dropped, and the loop goes on with the others.
//
// vgem stands in for the clients' GPU, a timeline-capable DRM node (virtio_gpu in the VM; any
// GPU with DRM_CAP_SYNCOBJ_TIMELINE) carries the timelines:
//   npx explicit-sync vm -- node examples/compositor.mjs
import { Device, TimelineTimeoutError, VgemDevice } from 'explicit-sync';

const FRAMES = 3;
const MATERIALIZE_MS = 300; // how long a client gets to submit the work behind its acquire point
const RENDER_MS = 10_000; // how long submitted work may take (a hung GPU job is another matter)

const gpu = Device.open({ require: ['timeline'] });
const vgem = VgemDevice.open();

class Client {
  constructor(name, { rogue = false } = {}) {
    this.name = name;
    this.rogue = rogue; // commits frames but never submits the work behind them
    this.dropped = false;
    this.acquire = gpu.createTimeline(); // in real life: imported from the client's fd
    this.release = gpu.createTimeline();
    this.buffer = vgem.createBuffer({ width: 64, height: 64 });
    this.dmabuf = this.buffer.exportDmaBuf();
  }

  /** Renders frame n into the buffer and commits it with acquire point n and release point n. */
  async frame(n) {
    // Reuse the buffer only once the compositor has released the previous frame.
    if (n > 1) await this.release.wait(n - 1, { timeoutMs: RENDER_MS });
    if (this.rogue) return; // commit without submitting: acquire point n never gets a fence
    // "Submit a GPU job" that writes the buffer: a vgem fence on it, as a sync_file, becomes
    // acquire point n. The point now has a fence (it materialised) but has not signalled yet.
    const job = this.buffer.attachFence({ write: true });
    const jobFence = this.dmabuf.exportSyncFile('write');
    try {
      this.acquire.importSyncFile(n, jobFence);
    } finally {
      jobFence.close();
    }
    // The "GPU" writes the frame number into the first pixel, then its fence signals. (Through
    // the bare mapping: beginCpuAccess() is DMA_BUF_IOCTL_SYNC, which waits in the kernel for the
    // buffer's implicit fences, this job's own included, and would block until vgem's 10 s timer.)
    setTimeout(() => {
      this.dmabuf.map().writeUInt32LE(n, 0);
      job.signal();
    }, 10);
  }

  close() {
    for (const o of [this.acquire, this.release, this.dmabuf, this.buffer]) o.close();
  }
}

/** The compositor's side of one client for frame n: wait (bounded), read, release. */
async function compose(client, n) {
  try {
    await client.acquire.wait(n, { until: 'available', timeoutMs: MATERIALIZE_MS });
    await client.acquire.wait(n, { timeoutMs: RENDER_MS });
  } catch (err) {
    if (!(err instanceof TimelineTimeoutError)) throw err;
    // err.reason: 'unsubmitted' (never materialised) or 'unsignaled' (submitted, not done)
    console.log(`frame ${n}: dropping ${client.name} (${err.reason}): ${err.message}`);
    client.dropped = true;
    return;
  }
  const pixels = client.dmabuf.map();
  client.dmabuf.beginCpuAccess('read');
  const shown = pixels.readUInt32LE(0);
  client.dmabuf.endCpuAccess('read');
  console.log(`frame ${n}: ${client.name} shows its frame ${shown}`);
  if (shown !== n) throw new Error(`${client.name}: read frame ${shown} while compositing frame ${n}`);
  client.release.signal(n); // the client may reuse the buffer
}

const clients = [new Client('good-client'), new Client('rogue-client', { rogue: true })];
try {
  const t0 = performance.now();
  for (let n = 1; n <= FRAMES; n++) {
    const active = clients.filter((c) => !c.dropped);
    await Promise.all(active.map((c) => c.frame(n))); // clients commit
    await Promise.all(active.map((c) => compose(c, n))); // the compositor composes them
  }
  const dropped = clients.filter((c) => c.dropped).map((c) => c.name);
  console.log(`compositor: ${FRAMES} frames in ${(performance.now() - t0).toFixed(0)} ms; dropped: ${dropped.join(', ') || 'none'}`);
} finally {
  for (const c of clients) c.close();
  vgem.close();
  gpu.close();
}
