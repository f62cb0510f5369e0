// A display frame loop with present fences (KMS atomic), the compositor's half of explicit sync:
//
//  - acquire: a client renders into a buffer and hands over a fence that signals when the
//    rendering is done. The loop waits on it asynchronously and with a bound (a client that never
//    finishes must not freeze the display), then commits the buffer with that fence as the plane's
//    IN_FENCE_FD, so the kernel itself also orders the scanout after the rendering.
//  - release: the commit returns the CRTC's OUT_FENCE_PTR sync file, which signals when the new
//    frame is on screen, i.e. when the *previous* buffer is no longer scanned out. That is the
//    release point: the client may render into the previous buffer once it signals.
//
// vgem stands in for the client's GPU (its fences are signalled by us), vkms is the display:
//   npx explicit-sync vm -- node examples/kms-frame-loop.mjs
import { KmsDevice, VgemDevice } from 'explicit-sync';

const FRAMES = 6;
const ACQUIRE_TIMEOUT_MS = 2_000; // bound on a client's rendering
const RENDER_MS = 5; // how long our pretend GPU takes per frame

const display = KmsDevice.open({ driver: 'vkms' });
const gpu = VgemDevice.open();
const out = display.pickOutput({ mode: { width: 1024, height: 768 } });
const { width, height } = out.mode;

// Two client buffers (double buffering), shared with the display as dma-bufs.
const buffers = [0, 1].map(() => {
  const bo = gpu.createBuffer({ width, height });
  const dmaBuf = bo.exportDmaBuf();
  const fb = display.importFramebuffer(dmaBuf, { width, height, pitch: bo.pitch });
  return { bo, dmaBuf, fb, pixels: dmaBuf.map(), release: null };
});

/** The client renders frame n into `buf` and returns its acquire fence (a sync_file). */
function render(buf, n) {
  const job = buf.bo.attachFence({ write: true }); // the "GPU job" writing the buffer
  const acquire = buf.dmaBuf.exportSyncFile('read'); // readers wait for the writer: our acquire fence
  setTimeout(() => {
    buf.pixels.fill(n * 40, 0, buf.bo.pitch * 8); // the "GPU" writes the first rows...
    job.signal(); // ...and its fence signals
  }, RENDER_MS);
  return acquire;
}

// The first commit is a modeset (allowModeset); later ones are plain nonblocking flips.
const started = performance.now();
let previousRelease = null;
for (let n = 1; n <= FRAMES; n++) {
  const buf = buffers[n % 2];
  // Release: the buffer was last shown two frames ago; wait until it left the screen.
  if (buf.release) {
    await buf.release.wait({ timeoutMs: ACQUIRE_TIMEOUT_MS });
    buf.release.close();
    buf.release = null;
  }
  const acquire = render(buf, n);
  const t0 = performance.now();
  try {
    // Acquire: wait asynchronously, with a bound; the event loop stays free meanwhile.
    await acquire.wait({ timeoutMs: ACQUIRE_TIMEOUT_MS });
    const req = display.atomic().setPlane(out.plane, out.crtc, buf.fb).inFence(out.plane, acquire).outFence(out.crtc);
    if (n === 1) req.modeset(out);
    const { outFence, flip } = req.commit({ nonblock: n > 1, allowModeset: n === 1, pageFlipEvent: true });
    await flip; // the page-flip event, delivered on the event loop
    await outFence.wait({ timeoutMs: ACQUIRE_TIMEOUT_MS });
    console.log(`frame ${n}: acquire fence signalled, committed, on screen after ${(performance.now() - t0).toFixed(1)} ms`);
    // This frame's out-fence releases the buffer that was on screen until now.
    const other = buffers[(n + 1) % 2];
    if (previousRelease !== null) previousRelease.close();
    other.release = outFence.dup();
    previousRelease = outFence;
  } finally {
    acquire.close();
  }
}
console.log(`kms-frame-loop: ${FRAMES} frames in ${(performance.now() - started).toFixed(0)} ms`);

previousRelease?.close();
for (const b of buffers) {
  b.release?.close();
  b.fb.close();
  b.dmaBuf.close();
  b.bo.close();
}
gpu.close();
display.close();
