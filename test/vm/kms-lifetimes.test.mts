// KMS request and flip lifetimes on the VM's vkms (issue 11): a request keeps its MODE_ID blob until
// it is done (so a failed commit can be retried), flip promises settle on the events the kernel
// sends, and errors of the event pump reject pending flips instead of escaping as unhandled
// rejections. Blob ids are checked with the kernel itself (GETPROPBLOB answers ENOENT once a blob
// is gone).
import { expect } from 'chai';
import { constants } from 'node:os';
import { ClosedError, Device, ExplicitSyncError, KmsDevice, type KmsAtomicRequest, type KmsOutput, type KmsPlane } from 'explicit-sync';
import { kPumpFault } from '../../dist/kms.js';
import { settlesWithin, shouldReject, shouldThrow } from '../helpers.mjs';
import { childScript, runChild } from './child-helpers.mjs';
import { describeWith, expectNoVkms } from './kernel-features.mjs';

const EIO = constants.errno.EIO;

function openVkms(): KmsDevice {
  if (!Device.list({ openPrimary: true }).some((d) => d.driver.name === 'vkms')) throw new Error('no vkms device in this VM (see the runner\'s warning on the host)');
  return KmsDevice.open({ driver: 'vkms' });
}

/** Modesets `mode` with a framebuffer of its size (blocking); returns the output. */
function modeset(dev: KmsDevice, mode: string): KmsOutput {
  const out = dev.pickOutput({ mode });
  const fb = dev.createFramebuffer({ width: out.mode.width, height: out.mode.height });
  using req = dev.atomic().modeset(out).setPlane(out.plane, out.crtc, fb);
  req.commit({ allowModeset: true });
  return out;
}

/** The blob `id` is gone: GETPROPBLOB says ENOENT. */
function gone(dev: KmsDevice, id: number): boolean {
  try {
    dev.blob(id);
    return false;
  } catch (err) {
    if (err instanceof ExplicitSyncError && err.code === 'ENOENT') return true;
    throw err;
  }
}

function cursorPlane(dev: KmsDevice): KmsPlane {
  const cursor = dev.planes().find((p) => p.type === 'cursor');
  if (cursor === undefined) throw new Error(`vkms has no cursor plane here (planes: ${dev.planes().map(String).join(', ')})`);
  return cursor;
}

describeWith(['vkms'], 'KMS request and flip lifetimes on vkms (kernel)', function () {
  this.timeout(120_000);

  describe('KmsAtomicRequest blobs (MODE_ID)', () => {
    it('a failed commit can be retried: the retry shows the request\'s own mode', () => {
      using dev = openVkms();
      modeset(dev, '1024x768');
      const out = dev.pickOutput({ mode: '800x600' });
      using fb = dev.createFramebuffer({ width: 800, height: 600 });
      using req = dev.atomic().modeset(out).setPlane(out.plane, out.crtc, fb);
      const refused = shouldThrow(() => req.commit(), ExplicitSyncError); // a modeset without allowModeset
      expect(refused.code).to.equal('EINVAL');
      // Another request's blob, made while the first waits for its retry: it must not take the
      // first one's id (the kernel hands out the lowest free id).
      using other = dev.atomic().modeset(dev.pickOutput({ mode: '640x480' }));
      req.commit({ allowModeset: true });
      const crtc = dev.crtcs().find((c) => c.id === out.crtc.id)!;
      expect(crtc.mode?.name).to.equal('800x600');
      expect(dev.blob(crtc.property('MODE_ID').value)).to.deep.equal(out.mode.raw);
      expect(other.blobs).to.have.length(1);
    });

    it('owns its blob ids until close(); a successful commit ends the request; nothing is left behind', () => {
      using dev = openVkms();
      modeset(dev, '1024x768');
      const out = dev.pickOutput({ mode: '800x600' });
      const a = dev.atomic().modeset(out);
      const [idA] = a.blobs;
      expect(idA).to.be.a('number');
      shouldThrow(() => a.commit(), ExplicitSyncError);
      a.commit({ testOnly: true, allowModeset: true });
      const b = dev.atomic().modeset(out);
      expect(b.blobs[0]).to.not.equal(idA); // not reused while `a` lives
      expect(dev.blob(idA!)).to.deep.equal(out.mode.raw);
      a.close();
      a.close();
      expect(a.closed).to.equal(true);
      expect(gone(dev, idA!)).to.equal(true);
      shouldThrow(() => a.commit({ testOnly: true }), ClosedError);
      shouldThrow(() => a.set(out.crtc, 'ACTIVE', true), ClosedError);
      let idC = 0;
      {
        using c = dev.atomic().modeset(out);
        idC = c.blobs[0]!;
      }
      expect(gone(dev, idC)).to.equal(true); // `using` closed it

      // A successful commit ends the request: the committed state holds the blob, the request
      // forgets its id and cannot be committed again (its id could name another blob later).
      b.commit({ allowModeset: true });
      expect(b.closed).to.equal(true);
      shouldThrow(() => b.commit({ allowModeset: true }), ClosedError);
      const idB = b.blobs.length === 0 ? Number(dev.crtcs()[0]!.property('MODE_ID').value) : -1;
      expect(dev.blob(idB)).to.deep.equal(out.mode.raw); // on screen, held by the CRTC's state
      modeset(dev, '1024x768');
      expect(gone(dev, idB)).to.equal(true); // replaced: the kernel freed it

      // Many requests, committed or refused or tested, then closed: every blob is gone.
      const ids: number[] = [];
      const reqs: KmsAtomicRequest[] = [];
      for (let i = 0; i < 100; i++) {
        const r = dev.atomic().modeset(i % 2 ? out : dev.pickOutput({ mode: '640x480' }));
        ids.push(...r.blobs);
        if (i % 3 === 0) r.commit({ testOnly: true, allowModeset: true });
        else if (i % 3 === 1) shouldThrow(() => r.commit(), ExplicitSyncError);
        reqs.push(r);
      }
      expect(new Set(ids).size).to.equal(100); // 100 live blobs, 100 ids
      for (const r of reqs) r.close();
      expect(ids.filter((id) => !gone(dev, id))).to.deep.equal([]);
    });

    it('a request dropped without close() has its blobs destroyed by the GC backstop, with a warning (child, --expose-gc)', async () => {
      const run = await runChild<{ n: number; gone: number; warnings: number; afterCloseGone: number }>(
        childScript('kms-gc'), ['40'], { nodeArgs: ['--expose-gc', '--no-warnings'], timeoutMs: 110_000 },
      );
      expect(run.code, run.stderr + run.stdout).to.equal(0);
      expect(run.result, run.stdout).to.deep.equal({ n: 40, gone: 40, warnings: 40, afterCloseGone: 40 });
    });
  });

  describe('flip events', () => {
    it('a flip event for a commit whose state has no CRTC (a disabled cursor plane) is refused by the kernel', () => {
      using dev = openVkms();
      modeset(dev, '1024x768');
      const cursor = cursorPlane(dev);
      expect(cursor.property('CRTC_ID').value).to.equal(0n);
      using req = dev.atomic().set(cursor, 'FB_ID', null).set(cursor, 'CRTC_ID', null);
      const e = shouldThrow(() => req.commit({ nonblock: true, pageFlipEvent: true }), ExplicitSyncError);
      expect([e.code, e.ioctl]).to.deep.equal(['EINVAL', 'DRM_IOCTL_MODE_ATOMIC']);
      req.commit({ nonblock: true }); // the same request, without the event: nothing to wait for
    });

    it('disabling a plane waits for the event of the CRTC it leaves (a CRTC the request does not name)', async () => {
      using dev = openVkms();
      const out = modeset(dev, '1024x768');
      const cursor = cursorPlane(dev);
      using fb = dev.createFramebuffer({ width: 64, height: 64, format: cursor.formats[0] });
      {
        using show = dev.atomic().setPlane(cursor, out.crtc, fb);
        await show.commit({ pageFlipEvent: true }).flip;
      }
      using hide = dev.atomic().set(cursor, 'FB_ID', null).set(cursor, 'CRTC_ID', null);
      const r = hide.commit({ nonblock: true, pageFlipEvent: true });
      const events = await r.flip!;
      expect(events.map((e) => e.crtcId)).to.deep.equal([out.crtc.id]);
    });
  });

  describe('event pump errors', () => {
    let unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    beforeEach(() => {
      unhandled = [];
      process.prependListener('unhandledRejection', onUnhandled);
    });
    afterEach(() => {
      process.removeListener('unhandledRejection', onUnhandled);
    });

    it('a read(2) error rejects every pending flip with ExplicitSyncError (errno, syscall), never an unhandled rejection', async () => {
      using dev = openVkms();
      const out = modeset(dev, '1024x768');
      using fb = dev.createFramebuffer({ width: 1024, height: 768 });
      using fb2 = dev.createFramebuffer({ width: 1024, height: 768 });
      dev[kPumpFault]('read', EIO);
      using first = dev.atomic().setPlane(out.plane, out.crtc, fb);
      const r1 = first.commit({ pageFlipEvent: true }); // blocking: its event is queued on return
      using second = dev.atomic().setPlane(out.plane, out.crtc, fb2);
      const r2 = second.commit({ nonblock: true, pageFlipEvent: true });
      for (const flip of [r1.flip!, r2.flip!]) {
        const e = await shouldReject(flip, ExplicitSyncError);
        expect([e.code, e.errno, e.syscall]).to.deep.equal(['EIO', -EIO, 'read']);
      }
      await new Promise((res) => setTimeout(res, 50));
      expect(unhandled).to.deep.equal([]);
      // The pump starts again with the next flip (and drops the events of the rejected ones).
      await new Promise((res) => setTimeout(res, 100));
      using again = dev.atomic().setPlane(out.plane, out.crtc, fb);
      const events = await again.commit({ nonblock: true, pageFlipEvent: true }).flip!;
      expect(events.map((e) => e.crtcId)).to.deep.equal([out.crtc.id]);
    });

    it('a poll error rejects every pending flip with ExplicitSyncError', async () => {
      using dev = openVkms();
      const out = modeset(dev, '1024x768');
      using fb = dev.createFramebuffer({ width: 1024, height: 768 });
      using req = dev.atomic().setPlane(out.plane, out.crtc, fb);
      const r = req.commit({ nonblock: true, pageFlipEvent: true });
      dev[kPumpFault]('poll', EIO);
      expect(await settlesWithin(r.flip!, 3000), 'the flip settles').to.equal(true);
      const e = await shouldReject(r.flip!, ExplicitSyncError);
      expect([e.code, e.errno, e.syscall]).to.deep.equal(['EIO', -EIO, 'poll']);
      expect(unhandled).to.deep.equal([]);
    });
  });
}, expectNoVkms);
