// KMS present fences on the VM's vkms (built and loaded by the runner): enumerate, modeset, atomic
// commits with an unsignalled vgem in-fence and a CRTC out-fence, flip events, writeback readback.
// vkms missing is a failure, never a skip: the runner warns on the host when it could not build it.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  ClosedError,
  Device,
  ExplicitSyncError,
  FORMAT_XRGB8888,
  KmsFramebuffer,
  InvalidArgTypeError,
  InvalidArgValueError,
  KmsDevice,
  SyncFile,
  TimeoutError,
  UnsupportedError,
  VgemDevice,
  VgemFence,
  type KmsOutput,
  monotonicNow,
} from 'explicit-sync';
import { openFds, settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { describeWith, expectNoVkms } from './kernel-features.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

function openVkms(): KmsDevice {
  if (!Device.list({ openPrimary: true }).some((d) => d.driver.name === 'vkms')) {
    throw new Error(
      `no vkms device in this VM (EXPLICIT_SYNC_VM_VKMS=${process.env['EXPLICIT_SYNC_VM_VKMS'] ?? 'unset'}): ` +
        'the runner could not build it (see its warning on the host) or ran with --no-vkms',
    );
  }
  return KmsDevice.open({ driver: 'vkms' });
}

/** A full-screen modeset with one framebuffer, committed (blocking); returns the output. */
function modeset(dev: KmsDevice, fb = undefined as ReturnType<KmsDevice['createFramebuffer']> | undefined): KmsOutput {
  const out = dev.pickOutput({ mode: { width: 1024, height: 768 } });
  const first = fb ?? dev.createFramebuffer({ width: out.mode.width, height: out.mode.height });
  dev.atomic().modeset(out).setPlane(out.plane, out.crtc, first).commit({ allowModeset: true });
  return out;
}

const ms = (ns: bigint): number => Number(ns) / 1e6;

/**
 * A vgem buffer imported as a framebuffer on `dev`, with an unsignalled write fence on it (the
 * client is still rendering) and `acquire`, the sync file a reader (the display) must wait for.
 * Disposing it signals the fence and closes everything.
 */
function renderingScanout(dev: KmsDevice): { fb: KmsFramebuffer; render: VgemFence; acquire: SyncFile } & Disposable {
  const vgem = VgemDevice.open();
  const buf = vgem.createBuffer({ width: 1024, height: 768 });
  const dmaBuf = buf.exportDmaBuf();
  const fb = dev.importFramebuffer(dmaBuf, { width: 1024, height: 768, pitch: buf.pitch });
  const render = buf.attachFence({ write: true });
  const acquire = dmaBuf.exportSyncFile('read');
  return {
    fb, render, acquire,
    [Symbol.dispose]() {
      render.signal();
      for (const x of [acquire, fb, dmaBuf, buf, vgem]) x.close();
    },
  };
}

describeWith(['vkms'], 'KMS on vkms (kernel)', function () {
  this.timeout(120_000);

  describe('KmsDevice.open()', () => {
    it('finds the vkms card node with atomic modesetting on', () => {
      using dev = openVkms();
      expect(dev.path).to.match(/^\/dev\/dri\/card\d+$/);
      expect(dev.driver).to.equal('vkms');
      using first = KmsDevice.open(); // the first atomic KMS card node: virtio_gpu's or vkms'
      expect(['virtio_gpu', 'vkms']).to.include(first.driver);
    });

    it('refuses a driver without KMS (vgem) with UnsupportedError', () => {
      using vgem = VgemDevice.open();
      const e = shouldThrow(() => KmsDevice.open(vgem.path), UnsupportedError);
      expect(e.ioctl).to.equal('DRM_IOCTL_SET_CLIENT_CAP');
    });
  });

  describe('enumeration', () => {
    it('lists connectors, CRTCs and planes with their properties by name', () => {
      using dev = openVkms();
      const connectors = dev.connectors();
      const virt = connectors.find((c) => c.type === 'Virtual');
      expect(virt, connectors.map(String).join()).to.not.equal(undefined);
      expect(virt!.connected).to.equal(true);
      expect(virt!.modes.map((m) => `${m.width}x${m.height}`)).to.include('1024x768');
      expect(virt!.property('CRTC_ID').kind).to.equal('object');
      const crtcs = dev.crtcs();
      expect(crtcs.length).to.be.at.least(1);
      for (const name of ['ACTIVE', 'MODE_ID', 'OUT_FENCE_PTR']) expect(crtcs[0]!.properties.has(name), name).to.equal(true);
      const planes = dev.planes();
      const primary = planes.find((p) => p.type === 'primary');
      expect(primary).to.not.equal(undefined);
      expect(primary!.formats).to.include(FORMAT_XRGB8888);
      expect(primary!.property('IN_FENCE_FD').kind).to.equal('signed-range');
      expect(primary!.property('IN_FENCE_FD').value).to.equal(-1n);
      expect(primary!.possibleCrtcs).to.include(crtcs[0]!.id);
      const wb = dev.writebackConnector();
      expect(wb, 'vkms has a writeback connector').to.not.equal(undefined);
      expect(wb!.properties.has('WRITEBACK_FB_ID')).to.equal(true);
    });

    it('pickOutput() gives a connected connector, its CRTC, primary plane and preferred mode', () => {
      using dev = openVkms();
      const out = dev.pickOutput();
      expect(out.connector.writeback).to.equal(false);
      expect(out.connector.possibleCrtcs).to.include(out.crtc.id);
      expect(out.plane.type).to.equal('primary');
      expect(out.mode.preferred).to.equal(true);
      expect(dev.pickOutput({ mode: '800x600' }).mode.width).to.equal(800);
    });
  });

  describe('KmsAtomicRequest#commit()', () => {
    it('modesets: test-only first, refused without allowModeset, then for real', () => {
      using dev = openVkms();
      modeset(dev); // 1024x768, so that 800x600 is a mode change
      const out = dev.pickOutput({ mode: '800x600' });
      using fb = dev.createFramebuffer({ width: 800, height: 600 });
      const req = dev.atomic().modeset(out).setPlane(out.plane, out.crtc, fb);
      req.commit({ testOnly: true, allowModeset: true });
      const e = shouldThrow(() => req.commit({ testOnly: true }), ExplicitSyncError);
      expect(e.code).to.equal('EINVAL');
      req.commit({ allowModeset: true });
      const crtc = dev.crtcs().find((c) => c.id === out.crtc.id)!;
      expect(crtc.mode?.name).to.equal('800x600');
      expect(crtc.property('ACTIVE').value).to.equal(1n);
      expect(dev.properties(out.plane).get('FB_ID')!.value).to.equal(BigInt(fb.id));
    });

    it('returns an OUT_FENCE_PTR sync file that signals after the flip, and the flip event', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      using fb = dev.createFramebuffer({ width: 1024, height: 768 });
      const t0 = monotonicNow();
      const r = dev.atomic().setPlane(out.plane, out.crtc, fb).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
      using fence = r.outFence!;
      expect(fence).to.be.instanceOf(SyncFile);
      expect(r.outFences.get(out.crtc.id)).to.equal(fence);
      await fence.wait({ timeoutMs: 10_000 });
      const events = await r.flip!;
      expect(events).to.have.length(1);
      expect(events[0]!.crtcId).to.equal(out.crtc.id);
      const signalled = fence.info().fences[0]!.timestampNs!;
      expect(fence.isSignaled()).to.equal(true);
      console.log(`      commit -> out-fence signalled: ${ms(signalled - t0).toFixed(2)} ms (vkms, TCG)`);
    });

    it('waits for an unsignalled vgem in-fence: nothing flips until vgem signals, then the out-fence signals', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      using scanout = renderingScanout(dev);
      const { fb, render, acquire } = scanout;
      expect(acquire.isSignaled()).to.equal(false);

      const r = dev.atomic().setPlane(out.plane, out.crtc, fb).inFence(out.plane, acquire).outFence(out.crtc)
        .commit({ nonblock: true, pageFlipEvent: true });
      using release = r.outFence!;
      expect(await settlesWithin(release.wait({ timeoutMs: 60_000 }), 700)).to.equal(false);
      expect(await settlesWithin(r.flip!, 10)).to.equal(false);
      expect(release.isSignaled()).to.equal(false);

      const signalledAt = monotonicNow();
      expect(render.signal()).to.equal(true);
      await release.wait({ timeoutMs: 10_000 });
      const wokeAt = monotonicNow();
      const [flip] = await r.flip!;
      // vkms stamps the flip and the out-fence with its (nominal) vblank time, which under TCG can
      // lag the in-fence's real signal time: the order is proven above, by the unsignalled wait.
      const outAt = release.info().fences[0]!.timestampNs!;
      const gap = outAt - flip!.timeNs; // the same vblank stamp, the event's in microseconds
      expect(gap >= 0n && gap < 1_000_000n, `${gap} ns`).to.equal(true);
      console.log(
        `      vgem signal -> out-fence seen in JS: ${ms(wokeAt - signalledAt).toFixed(2)} ms; ` +
          `flip event time -> out-fence: ${ms(outAt - flip!.timeNs).toFixed(3)} ms (vkms, TCG)`,
      );
    });

    it('a flip waiting on an unsignalled in-fence: its signal aborts it; the next flip still completes', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      using scanout = renderingScanout(dev);
      using fb2 = dev.createFramebuffer({ width: 1024, height: 768 });
      const ac = new AbortController();
      const r = dev.atomic().setPlane(out.plane, out.crtc, scanout.fb).inFence(out.plane, scanout.acquire)
        .commit({ nonblock: true, pageFlipEvent: true, signal: ac.signal });
      expect(await settlesWithin(r.flip!, 300)).to.equal(false);
      ac.abort('user gave up');
      const e = await shouldReject(r.flip!, AbortError);
      expect(e.cause).to.equal('user gave up');
      const t0 = performance.now();
      scanout.render.signal();
      // The aborted commit still completes in the kernel; its late event is dropped.
      const next = dev.atomic().setPlane(out.plane, out.crtc, fb2).commit({ pageFlipEvent: true, deadline: monotonicNow() + 10_000_000_000n });
      const [flip] = await next.flip!;
      expect(flip!.crtcId).to.equal(out.crtc.id);
      expect(performance.now() - t0).to.be.below(10_000);
    });

    it('a flip bounded by timeoutMs rejects with TimeoutError (syscall poll, operation page flip) when its in-fence holds it', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      using scanout = renderingScanout(dev);
      const t0 = performance.now();
      const r = dev.atomic().setPlane(out.plane, out.crtc, scanout.fb).inFence(out.plane, scanout.acquire).outFence(out.crtc)
        .commit({ nonblock: true, pageFlipEvent: true, timeoutMs: 300 });
      using release = r.outFence!;
      const e = await shouldReject(r.flip!, TimeoutError);
      expect(performance.now() - t0).to.be.at.least(295);
      expect([e.code, e.syscall, e.operation]).to.deep.equal(['ETIME', 'poll', 'page flip']);
      scanout.render.signal();
      await release.wait({ timeoutMs: 10_000 });
    });

    it('measures flip-to-out-fence latency over 20 nonblocking flips', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      const fbs = [dev.createFramebuffer({ width: 1024, height: 768 }), dev.createFramebuffer({ width: 1024, height: 768 })];
      const commitToFence: number[] = [];
      const flipToFence: number[] = [];
      const fenceToJs: number[] = [];
      try {
        for (let i = 0; i < 20; i++) {
          const t0 = monotonicNow();
          const r = dev.atomic().setPlane(out.plane, out.crtc, fbs[i % 2]!).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
          using fence = r.outFence!;
          await fence.wait({ timeoutMs: 10_000 });
          const seen = monotonicNow();
          const [flip] = await r.flip!;
          const at = fence.info().fences[0]!.timestampNs!;
          commitToFence.push(ms(at - t0));
          flipToFence.push(ms(at - flip!.timeNs));
          fenceToJs.push(ms(seen - at));
        }
      } finally {
        for (const fb of fbs) fb.close();
      }
      const med = (xs: number[]): string => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(3);
      console.log(
        `      20 flips: median commit -> out-fence ${med(commitToFence)} ms, flip event -> out-fence ${med(flipToFence)} ms, ` +
          `out-fence -> JS wake ${med(fenceToJs)} ms (vkms, TCG)`,
      );
      for (const d of flipToFence) expect(d).to.be.at.least(0);
    });
  });

  describe('errors', () => {
    it('unknown property names, bad ids, closed fences and wrong objects give typed errors', () => {
      using dev = openVkms();
      const out = modeset(dev);
      using fb = dev.createFramebuffer({ width: 1024, height: 768 });
      shouldThrow(() => dev.atomic().set(out.plane, 'NO_SUCH_PROPERTY', 1), InvalidArgValueError);
      shouldThrow(() => dev.atomic().set(out.plane, 'FB_ID', 'x' as unknown as number), InvalidArgTypeError);
      // A property id the kernel does not know, and a CRTC property sent to a plane.
      const bad = shouldThrow(() => dev.atomic().set(out.plane.id, 0xfffff0, 1).commit({ testOnly: true }), ExplicitSyncError);
      expect(['EINVAL', 'ENOENT']).to.include(bad.code);
      expect(bad.ioctl).to.equal('DRM_IOCTL_MODE_ATOMIC');
      const wrong = shouldThrow(
        () => dev.atomic().set(out.plane.id, out.crtc.property('ACTIVE').id, 1).commit({ testOnly: true }),
        ExplicitSyncError,
      );
      expect(['EINVAL', 'ENOENT']).to.include(wrong.code);
      // An object of the wrong kind: a plane's CRTC_ID naming a connector.
      const kind = shouldThrow(
        () => dev.atomic().setPlane(out.plane, out.crtc, fb).set(out.plane, 'CRTC_ID', out.connector.id).commit({ testOnly: true }),
        ExplicitSyncError,
      );
      expect(['EINVAL', 'ENOENT']).to.include(kind.code);
      // A closed fence.
      using vgem = VgemDevice.open();
      using vbuf = vgem.createBuffer({ width: 4, height: 4 });
      using vdma = vbuf.exportDmaBuf();
      const closed = vdma.exportSyncFile('read');
      closed.close();
      shouldThrow(() => dev.atomic().setPlane(out.plane, out.crtc, fb).inFence(out.plane, closed).commit({ testOnly: true }), ClosedError);
      // Objects of another device.
      using other = openVkms();
      shouldThrow(() => other.atomic().set(out.plane, 'FB_ID', 0), InvalidArgValueError);
      shouldThrow(() => other.atomic().set(other.pickOutput().plane, 'FB_ID', fb), InvalidArgValueError);
    });

    it('a closed framebuffer or device throws ClosedError; close rejects a pending flip', async () => {
      const dev = openVkms();
      const out = modeset(dev);
      const fb = dev.createFramebuffer({ width: 1024, height: 768 });
      const req = dev.atomic().setPlane(out.plane, out.crtc, fb);
      fb.close();
      fb.close();
      expect(fb.id).to.equal(-1);
      shouldThrow(() => req.commit({ testOnly: true }), ClosedError);
      using fb2 = dev.createFramebuffer({ width: 1024, height: 768 });
      const r = dev.atomic().setPlane(out.plane, out.crtc, fb2).commit({ nonblock: true, pageFlipEvent: true });
      dev.close();
      const closed = await shouldReject(r.flip!, ClosedError);
      expect([closed.syscall, closed.operation]).to.deep.equal(['read', 'page flip']);
      shouldThrow(() => dev.atomic(), ClosedError);
      shouldThrow(() => dev.connectors(), ClosedError);
      expect(fb2.closed).to.equal(true);
    });
  });

  describe('writeback', () => {
    it('reads back the composed frame: the pixels the CPU wrote, after the in-fence', async () => {
      using dev = openVkms();
      const out = modeset(dev);
      const wb = dev.writebackConnector()!;
      using src = dev.createFramebuffer({ width: 1024, height: 768 });
      using dst = dev.createFramebuffer({ width: 1024, height: 768 });
      // The CPU "renders": a left half and a right half of different colours, XRGB8888 little-endian.
      const dmaBuf = src.dmaBuf();
      const px = dmaBuf.map();
      dmaBuf.beginCpuAccess('write');
      for (let y = 0; y < 768; y++) {
        for (let x = 0; x < 1024; x++) px.writeUInt32LE(x < 512 ? 0x00ff4020 : 0x002080ff, y * src.pitch + x * 4);
      }
      dmaBuf.endCpuAccess('write');
      // Its acquire fence: a vgem fence on another buffer, signalled once the "rendering" is done.
      using vgem = VgemDevice.open();
      using vbuf = vgem.createBuffer({ width: 4, height: 4 });
      using vdma = vbuf.exportDmaBuf();
      const render = vbuf.attachFence({ write: true });
      using acquire = vdma.exportSyncFile('read');

      const r = dev.atomic()
        .setPlane(out.plane, out.crtc, src).inFence(out.plane, acquire)
        // vkms (6.12) cannot clone one CRTC to both its connectors: writeback alone for this frame.
        .set(out.connector, 'CRTC_ID', null)
        .set(wb, 'CRTC_ID', out.crtc).set(wb, 'WRITEBACK_FB_ID', dst).outFence(wb)
        .commit({ nonblock: true, allowModeset: true });
      using written = r.outFences.get(wb.id)!;
      expect(await settlesWithin(written.wait({ timeoutMs: 60_000 }), 500)).to.equal(false);
      render.signal();
      await written.wait({ timeoutMs: 10_000 });

      const back = dst.dmaBuf();
      const got = back.map();
      back.beginCpuAccess('read');
      const at = (x: number, y: number): number => got.readUInt32LE(y * dst.pitch + x * 4) & 0xffffff;
      const samples = [at(0, 0), at(511, 383), at(512, 384), at(1023, 767)];
      back.endCpuAccess('read');
      expect(samples.map((v) => v.toString(16))).to.deep.equal(['ff4020', 'ff4020', '2080ff', '2080ff']);
      // Back to the virtual display.
      dev.atomic().set(wb, 'CRTC_ID', null).set(out.connector, 'CRTC_ID', out.crtc).commit({ allowModeset: true });
    });
  });

  describe('examples/kms-frame-loop.mjs', () => {
    it('runs a fenced frame loop on vkms', async () => {
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ['examples/kms-frame-loop.mjs'], { cwd: root, timeout: 150_000 }, (err, stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
        });
      });
      expect(r.code, r.stderr + r.stdout).to.equal(0);
      expect(r.stdout).to.match(/frame 1: acquire fence signalled, committed, on screen after [\d.]+ ms/);
      expect(r.stdout).to.match(/kms-frame-loop: \d+ frames/);
    });
  });

  describe('the device-generic conformance tests on vkms', () => {
    it('pass on the vkms card node (dumb buffers, PRIME export, dma-buf sync files); only syncobj tests skip', async () => {
      const vkms = Device.list({ openPrimary: true }).find((d) => d.driver.name === 'vkms' && d.kind === 'primary');
      expect(vkms, 'a vkms card node').to.not.equal(undefined);
      // A child run, so that its expected skips (vkms has no syncobjs) stay out of this run's output.
      const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        execFile(
          process.execPath,
          ['node_modules/mocha/bin/mocha.js', 'dist-test/conformance/**/*.test.mjs'],
          { cwd: root, timeout: 300_000, env: { ...process.env, EXPLICIT_SYNC_DEVICE: vkms!.path } },
          (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout: stdout + stderr }),
        );
      });
      expect(r.code, r.stdout).to.equal(0);
      expect(r.stdout).to.contain(`dumb buffers on ${vkms!.path} (vkms)`);
      const passing = Number(/(\d+) passing/.exec(r.stdout)?.[1] ?? 0);
      expect(passing, r.stdout).to.be.at.least(4);
      const skips = [...r.stdout.matchAll(/skipped: (.*)/g)].map((m) => m[1]!);
      for (const why of skips) expect(why, r.stdout).to.match(/SYNCOBJ|timeline/i);
    });
  });

  it('leaves no fd open after a full present cycle', async () => {
    const before = openFds();
    {
      using dev = openVkms();
      const out = modeset(dev);
      using fb = dev.createFramebuffer({ width: 1024, height: 768 });
      fb.dmaBuf().map();
      const r = dev.atomic().setPlane(out.plane, out.crtc, fb).outFence(out.crtc).commit({ nonblock: true, pageFlipEvent: true });
      await r.outFence!.wait({ timeoutMs: 10_000 });
      await r.flip;
      r.outFence!.close();
    }
    await new Promise((res) => setImmediate(res));
    expect(openFds().filter((fd) => !before.includes(fd))).to.deep.equal([]);
  });
}, expectNoVkms);
