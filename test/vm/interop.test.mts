// The library against a driver nobody here wrote: Mesa 25's lavapipe (Vulkan on the CPU) as a
// producer and a consumer of sync_files and dma-bufs, through test/interop/vk-interop.c. Figures
// (the fence → lavapipe completion latency) are printed with an `interop:` prefix.
import { expect } from 'chai';
import {
  type Device,
  DmaBuf,
  ExplicitSyncError,
  SyncFile,
  type Timeline,
  VgemDevice,
} from 'explicit-sync';
import { shouldThrow, sleep } from '../helpers.mjs';
import { interopConfig, VkPeer, type InteropConfig } from './interop-peer.mjs';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { DoctorReport } from '../../dist/doctor.js';
import type { DoctorKms } from '../../dist/doctor-kms.js';
import { describeWith, expectNoUdmabuf, expectNoVkms, has } from './kernel-features.mjs';
import { openTimelineDevice, vgemFence } from './syncobj-helpers.mjs';

/** Bytes of the dma-bufs lavapipe makes and reads. */
const SIZE = 65536;

/** What lavapipe lacks on a kernel without udmabuf (6.1 in the VM). */
const NO_UDMABUF_MISSING = 'VK_KHR_external_semaphore_fd VK_KHR_external_fence_fd';

/**
 * What the tests that need lavapipe's SYNC_FD check on a kernel without udmabuf: no /dev/udmabuf
 * (the library's documented ENOENT), and the peer refuses to export or import a sync_file.
 */
async function expectNoSyncFd(peer: VkPeer): Promise<void> {
  expectNoUdmabuf();
  expect(await peer.command('produce-semaphore')).to.match(/^ERR the driver lacks VK_KHR_external_semaphore_fd/);
  expect(await peer.command('produce-fence')).to.match(/^ERR the driver lacks .*VK_KHR_external_fence_fd/);
  expect(await peer.command('consume 0')).to.match(/^ERR the driver lacks VK_KHR_external_semaphore_fd/);
}

function report(line: string): void {
  console.log(`      interop: ${line}`);
}

describe('interop with Mesa (lavapipe)', function () {
  this.timeout(180_000);
  let config: InteropConfig;
  let peer: VkPeer;
  let vgem: VgemDevice;
  /** A node with timeline syncobjs (virtio_gpu), where the kernel has them. */
  let device: Device;

  before(async function () {
    config = interopConfig();
    peer = await new VkPeer(config).start();
    vgem = VgemDevice.open();
    if (has('timeline')) device = openTimelineDevice();
    const [name, driver, missing] = peer.ready.split('|');
    report(`${name} / ${driver} (package ${config.mesa.version})`);
    // Every extension the tests use is there (the READY line names the missing ones), except where
    // the kernel has no udmabuf: lavapipe makes its sync_files and dma-bufs with /dev/udmabuf
    // (DMA_BUF_IOCTL_EXPORT_SYNC_FILE on a udmabuf), and without it does not offer SYNC_FD.
    expect(missing, 'extensions lavapipe lacks').to.equal(has('udmabuf') ? '' : NO_UDMABUF_MISSING);
  });

  after(async function () {
    vgem?.close();
    device?.close();
    if (peer !== undefined) expect(await peer.quit(), 'vk-interop exit status').to.equal(0);
  });

  describeWith(['udmabuf'], 'lavapipe sync_files adopted with SyncFile.fromFd', function () {
    for (const kind of ['semaphore', 'fence'] as const) {
      it(`a SYNC_FD ${kind} export is a real, signalled sync_file: info(), isSignaled(), wait()`, async function () {
        using sf = SyncFile.fromFd(await peer.takeFd(`produce-${kind}`));
        const info = sf.info();
        expect(info.status).to.equal('signaled');
        expect(sf.isSignaled()).to.equal(true);
        await sf.wait({ timeoutMs: 10_000 });
        report(`${kind} sync_file: name ${JSON.stringify(info.name)}, ${info.fences.length} fence(s)${info.fences.map((f) => ` [${f.driver}/${f.timeline}]`).join('')}`);
      });
    }

    it('merges with a pending vgem fence: pending until vgem signals', async function () {
      using lvp = SyncFile.fromFd(await peer.takeFd('produce-semaphore'));
      const { fence, syncFile } = vgemFence(vgem);
      using vg = syncFile;
      using merged = lvp.merge(vg);
      expect(merged.isSignaled()).to.equal(false);
      expect(merged.info().status).to.equal('active');
      const done = merged.wait({ timeoutMs: 30_000 });
      fence.signal();
      await done;
      expect(merged.info().status).to.equal('signaled');
    });
  }, () => expectNoSyncFd(peer));

  describeWith(
    ['timeline', 'udmabuf'],
    'lavapipe sync_files on a timeline (timeline.importSyncFile)',
    function () {
      it('a lavapipe sync_file imported at a point signals it; with a vgem fence merged in, only once vgem signals', async function () {
        using tl: Timeline = device.createTimeline();
        using lvp = SyncFile.fromFd(await peer.takeFd('produce-fence'));
        tl.importSyncFile(1n, lvp);
        expect(tl.query()).to.equal(1n);
        await tl.wait(1n, { timeoutMs: 10_000 });

        const { fence, syncFile } = vgemFence(vgem);
        using vg = syncFile;
        using merged = lvp.merge(vg);
        tl.importSyncFile(2n, merged);
        expect(tl.isSignaled(2n)).to.equal(false);
        const done = tl.wait(2n, { timeoutMs: 30_000 });
        fence.signal();
        await done;
        expect(tl.query()).to.equal(2n);
      });
    },
    async () => {
      if (!has('udmabuf')) await expectNoSyncFd(peer);
      else expect(has('timeline')).to.equal(false);
    },
  );

  describe('lavapipe fds refused by device.importTimeline (not DRM syncobjs)', function () {
    it('lavapipe cannot export a semaphore as OPAQUE_FD at all (binary or timeline): it says so', async function () {
      // Without udmabuf it has no VK_KHR_external_semaphore_fd at all.
      const refusal = has('udmabuf') ? /^ERR UNSUPPORTED / : /^ERR the driver lacks VK_KHR_external_semaphore_fd/;
      expect(await peer.command('produce-timeline')).to.match(refusal);
      expect(await peer.command('produce-opaque')).to.match(refusal);
    });

    describeWith(
      ['timeline', 'udmabuf'],
      'what a confused client could send instead',
      function () {
        it('its SYNC_FD sync_file: EINVAL naming a sync_file', async function () {
          using sf = SyncFile.fromFd(await peer.takeFd('produce-semaphore'));
          const err = shouldThrow(() => device.importTimeline(sf.fd), ExplicitSyncError);
          report(`importTimeline(lavapipe sync_file): ${err.message}`);
          expect(err.code).to.equal('EINVAL');
          expect(err.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE');
          expect(err.message).to.include('not a syncobj fd').and.include('a sync_file');
        });

        it('its dma-buf memory: EINVAL naming a dma-buf', async function () {
          using buf = DmaBuf.fromFd(await peer.takeFd(`produce-dmabuf ${SIZE}`));
          const err = shouldThrow(() => device.importTimeline(buf.fd), ExplicitSyncError);
          expect(err.code).to.equal('EINVAL');
          expect(err.message).to.include('not a syncobj fd').and.include('a dma-buf');
        });
      },
      async () => {
        if (!has('udmabuf')) await expectNoSyncFd(peer);
        else expect(has('timeline')).to.equal(false);
      },
    );
  });

  describeWith(['udmabuf'], 'a pending library fence consumed by lavapipe (SYNC_FD wait semaphore)', function () {
    it('its submit waits for the fence and completes soon after the signal', async function () {
      const { fence, syncFile } = vgemFence(vgem);
      using sf = syncFile;
      const consumer = await new VkPeer(config, [sf.fd]).start();
      try {
        const first = await consumer.command('consume 3');
        expect(first).to.match(/^PENDING \d+$/);
        // Still pending a while later: lavapipe honours the fence.
        await sleep(1000);
        expect(consumer.hasLine, 'lavapipe finished before the fence signalled').to.equal(false);
        const signalledAt = process.hrtime.bigint();
        fence.signal();
        const done = await consumer.next(60_000);
        const m = /^DONE (\d+)$/.exec(done);
        expect(m, done).to.not.equal(null);
        const latencyMs = Number(BigInt((m as RegExpExecArray)[1] as string) - signalledAt) / 1e6;
        report(`vgem signal → lavapipe submit complete: ${latencyMs.toFixed(2)} ms (CLOCK_MONOTONIC, same guest)`);
        expect(latencyMs).to.be.greaterThan(0);
        // A generous bound: the guest is software-emulated and shared.
        expect(latencyMs).to.be.lessThan(10_000);
      } finally {
        expect(await consumer.quit()).to.equal(0);
      }
    });

    it('an already signalled sync_file: the submit completes without a signal', async function () {
      const { fence, syncFile } = vgemFence(vgem);
      using sf = syncFile;
      fence.signal();
      const consumer = await new VkPeer(config, [sf.fd]).start();
      try {
        // lavapipe's queue runs on a thread of its own: right after vkQueueSubmit the fence may
        // read pending even with nothing to wait for (seen: PENDING, then DONE); it completes alone.
        let line = await consumer.command('consume 3');
        if (line.startsWith('PENDING ')) line = await consumer.next(30_000);
        expect(line).to.match(/^DONE \d+$/);
      } finally {
        expect(await consumer.quit()).to.equal(0);
      }
    });
  }, () => expectNoSyncFd(peer));

  describeWith(
    ['udmabuf'],
    'lavapipe dma-buf memory adopted with DmaBuf.fromFd',
    function () {
      it('exportSyncFile is signalled when idle; a pending vgem fence imported makes it busy until signalled', async function () {
        using buf = DmaBuf.fromFd(await peer.takeFd(`produce-dmabuf ${SIZE}`));
        expect(buf.size).to.be.at.least(SIZE);
        {
          using idle = buf.exportSyncFile('readwrite');
          expect(idle.isSignaled()).to.equal(true);
        }
        const { fence, syncFile } = vgemFence(vgem);
        using vg = syncFile;
        buf.importSyncFile(vg, 'write');
        using busy = buf.exportSyncFile('read');
        expect(busy.isSignaled()).to.equal(false);
        const done = busy.wait({ timeoutMs: 30_000 });
        fence.signal();
        await done;
        using after = buf.exportSyncFile('readwrite');
        expect(after.isSignaled()).to.equal(true);
      });

      it('map() and CPU access round-trip with what Vulkan sees (GPU copies, not a CPU mapping of Vulkan)', async function () {
        using buf = DmaBuf.fromFd(await peer.takeFd(`produce-dmabuf ${SIZE}`));
        const map = buf.map();
        // Vulkan writes, the library reads.
        expect(await peer.command(`fill ${0x12345678}`)).to.equal('OK');
        await buf.beginCpuAccessAsync('read');
        expect(map.readUInt32LE(0)).to.equal(0x12345678);
        expect(map.readUInt32LE(SIZE - 4)).to.equal(0x12345678);
        buf.endCpuAccess('read');
        // The library writes, Vulkan reads.
        const pattern = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + 3) & 0xff));
        await buf.beginCpuAccessAsync('write');
        pattern.copy(map, 0);
        buf.endCpuAccess('write');
        expect((await peer.data('read 64')).equals(pattern)).to.equal(true);
      });

      it('vgem.importDmaBuf(lavapipe dma-buf): a vgem fence on it shows on the dma-buf until signalled', async function () {
        using buf = DmaBuf.fromFd(await peer.takeFd(`produce-dmabuf ${SIZE}`));
        using imported = vgem.importDmaBuf(buf);
        expect(imported.size).to.equal(buf.size);
        expect(imported.handle).to.be.greaterThan(0);
        const fence = imported.attachFence({ write: true });
        using busy = buf.exportSyncFile('read');
        expect(busy.isSignaled()).to.equal(false);
        expect(busy.info().fences.map((f) => f.driver)).to.include('vgem');
        // lavapipe ignores implicit fences: its GPU copy reads the buffer while the vgem write
        // fence is still pending (Vulkan leaves implicit sync to the window system).
        expect(await peer.command(`fill ${0xabcdef01}`)).to.equal('OK');
        expect(busy.isSignaled(), 'the vgem fence is still pending after lavapipe wrote').to.equal(false);
        const done = busy.wait({ timeoutMs: 30_000 });
        fence.signal();
        await done;
      });
    },
    async () => {
      // lavapipe exports dma-bufs through /dev/udmabuf: without it the export fails.
      expectNoUdmabuf();
      expect(await peer.command(`produce-dmabuf ${SIZE}`)).to.match(/^ERR /);
    },
  );

  it('lavapipe imports a vgem dma-buf and reads what the library wrote through its CPU mapping', async function () {
    using vbuf = vgem.createBuffer({ width: 64, height: 16 });
    using dmabuf = vbuf.exportDmaBuf();
    const pattern = Buffer.from(Array.from({ length: 256 }, (_, i) => (255 - i) & 0xff));
    const map = dmabuf.map();
    await dmabuf.beginCpuAccessAsync('write');
    pattern.copy(map, 0);
    dmabuf.endCpuAccess('write');
    const consumer = await new VkPeer(config, [dmabuf.fd]).start();
    try {
      // Import needs no udmabuf (lavapipe maps the dma-buf): this works on every kernel.
      expect(await consumer.command(`import-dmabuf 3 ${dmabuf.size}`)).to.equal('OK');
      expect((await consumer.data('read 256')).equals(pattern)).to.equal(true);
    } finally {
      expect(await consumer.quit()).to.equal(0);
    }
  });

  /** The vkms node as `explicit-sync doctor --json` reports it, run as a user would. */
  async function doctorVkms(): Promise<DoctorKms> {
    const cli = fileURLToPath(new URL('../../bin/explicit-sync.js', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [cli, 'doctor', '--json'], { maxBuffer: 16 << 20 });
    const doctor = JSON.parse(stdout) as DoctorReport;
    const vkms = doctor.kms.find((k) => k.driver === 'vkms');
    expect(vkms, JSON.stringify(doctor.kms)).to.not.equal(undefined);
    const node = vkms as DoctorKms;
    expect(node.atomic).to.equal(true);
    expect(node.inFenceFdPlanes).to.be.at.least(1);
    expect(node.outFencePtrCrtcs).to.be.at.least(1);
    return node;
  }

  /** Runs `kmscube -A -D <path> -c <frames>`; its stdin stays open (at EOF it stops after one frame). */
  async function kmscube(path: string, frames: number): Promise<{ code: number | null; output: string; seconds: number }> {
    const child = spawn(config.kmscube, ['-A', '-D', path, '-c', String(frames)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...config.env },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    const t0 = performance.now();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(timer);
    child.stdin.destroy();
    return { code, output, seconds: (performance.now() - t0) / 1000 };
  }

  describeWith(
    ['vkms', 'udmabuf'],
    'a third-party atomic client: kmscube -A on vkms (Mesa 25 EGL/GBM, llvmpipe)',
    function () {
      it('runs frames with IN_FENCE_FD / OUT_FENCE_PTR, the fence properties doctor reports for that node', async function () {
        const node = await doctorVkms();
        const frames = 10;
        const { code, output, seconds } = await kmscube(node.path, frames);
        expect(code, output).to.equal(0);
        // -A needs eglDupNativeFenceFDANDROID (kmscube refuses atomic mode without it): each frame
        // commits with the render fence as IN_FENCE_FD and waits for its OUT_FENCE_PTR fence.
        expect(output).to.match(/display extensions: "[^"]*EGL_ANDROID_native_fence_sync/);
        const rendered = [...output.matchAll(/Rendered (\d+) frames/g)].map((m) => Number(m[1]));
        expect(Math.max(0, ...rendered), output).to.be.at.least(frames - 1);
        report(`kmscube -A -c ${frames} on ${node.path}: exit 0 in ${seconds.toFixed(1)} s (${output.match(/renderer: "([^"]*)"/)?.[1] ?? '?'})`);
      });
    },
    async () => {
      if (!has('vkms')) {
        expectNoVkms();
        return;
      }
      // vkms takes fences (doctor says so), but llvmpipe makes its native fences through
      // /dev/udmabuf too: without it EGL has no EGL_ANDROID_native_fence_sync and kmscube -A refuses.
      const node = await doctorVkms();
      const { code, output } = await kmscube(node.path, 10);
      expect(code, output).to.not.equal(0);
      expect(output).to.include('no eglDupNativeFenceFDANDROID');
      expect(output).to.not.match(/display extensions: "[^"]*EGL_ANDROID_native_fence_sync/);
    },
  );
});
