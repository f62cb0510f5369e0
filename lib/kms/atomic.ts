/**
 * The atomic request (DRM_IOCTL_MODE_ATOMIC): its builder, commit options and results, and the
 * ownership of the MODE_ID blobs it creates (with their GC backstop).
 * @module
 */
import { ClosedError } from '../errors';
import { CreationSite, creationSite, reportLeak } from '../leaks';
import { kAdopt } from '../resource';
import { SyncFile } from '../sync-file';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, OutOfRangeError, toInt, toOptions } from '../validate';
import { parseWait } from '../watcher';
import { kmsCommitChannel, kmsFlipChannel, ref, traceKmsCommit, traceKmsFlip } from '../trace/channels';
import type { KmsDevice } from './device';
import { KmsFramebuffer } from './framebuffer';
import type { KmsFlipEvent } from './flips';
import { kAwaitFlip, kCrtcIds, kCurrentCrtc, kDestroyBlobs, kFd, kNextFlip } from './internal';
import { K, native } from './native';
import { KmsConnector, KmsCrtc, KmsMode, KmsObject, KmsPlane } from './objects';

/** Options of {@link KmsAtomicRequest.commit}. */
export interface KmsCommitOptions {
  /** DRM_MODE_ATOMIC_TEST_ONLY: only check that the state would work; nothing changes. */
  testOnly?: boolean;
  /** DRM_MODE_ATOMIC_NONBLOCK: return at once; the commit completes on a later vblank. */
  nonblock?: boolean;
  /** DRM_MODE_ATOMIC_ALLOW_MODESET: the commit may change modes or routing (a full modeset). */
  allowModeset?: boolean;
  /** DRM_MODE_PAGE_FLIP_EVENT: `result.flip` resolves with one event per CRTC in the commit. */
  pageFlipEvent?: boolean;
  /**
   * With `pageFlipEvent`: cancels the wait for the flip (`result.flip` rejects with AbortError;
   * the commit itself has happened, and its late event is dropped). Needs `pageFlipEvent`.
   */
  signal?: AbortSignal;
  /** With `pageFlipEvent`: `result.flip` rejects with TimeoutError (code 'ETIME') after this many ms. */
  timeoutMs?: number;
  /** With `pageFlipEvent`: the same at an absolute CLOCK_MONOTONIC instant (bigint ns); exclusive with `timeoutMs`. */
  deadline?: bigint;
}

const COMMIT_KEYS: OptionKeys<KmsCommitOptions> = {
  testOnly: true, nonblock: true, allowModeset: true, pageFlipEvent: true, signal: true, timeoutMs: true, deadline: true,
};
/** The options of a commit that bound the wait for its flip. */
const FLIP_WAIT_KEYS: OptionKeys<Pick<KmsCommitOptions, 'signal' | 'timeoutMs' | 'deadline'>> = {
  signal: true, timeoutMs: true, deadline: true,
};
const DEST_KEYS: OptionKeys<{ x?: number; y?: number; width?: number; height?: number }> = { x: true, y: true, width: true, height: true };

/** What a commit gives back. */
export interface KmsCommitResult {
  /** Out-fences requested with {@link KmsAtomicRequest.outFence}, by CRTC (or writeback connector) id. Yours to close. */
  outFences: Map<number, SyncFile>;
  /** The first out-fence, for the common single-output case. */
  outFence: SyncFile | undefined;
  /** With `pageFlipEvent`: resolves once every CRTC of the commit flipped; rejects with ClosedError if the device closes first. */
  flip: Promise<KmsFlipEvent[]> | undefined;
}

type PropValue = bigint | number | boolean | KmsFramebuffer | KmsObject | SyncFile | null;

interface Entry { obj: number; prop: number; value: bigint; outFence?: number }

/** What the GC backstop of a request needs: its device and the blob ids it still owns (the request's own array). */
interface HeldBlobs { device: KmsDevice; blobs: number[]; site: CreationSite | undefined }

/**
 * GC backstop of requests that still own blobs: destroys them (while their device is open; a
 * closed device's blobs went with its DRM file) and warns, like FdResource's backstop.
 */
const blobLeaks = new FinalizationRegistry<HeldBlobs>((held) => {
  const n = held.blobs.length;
  try {
    held.device[kDestroyBlobs](held.blobs.splice(0));
  } catch {
    // Nothing to report to: the owner is gone. The warning still says what leaked.
  }
  reportLeak(
    'KmsAtomicRequest',
    `KmsAtomicRequest on ${held.device.path} was garbage-collected without close() or a successful commit; ` +
      `its ${n} property blob(s) were destroyed`,
    held.site,
  );
});

/**
 * An atomic request (DRM_IOCTL_MODE_ATOMIC), built with set() and the helpers, sent with commit().
 * Values are checked when set; sync files and framebuffers are read (their fd/id) at commit().
 *
 * Lifetime: a request owns the property blobs it creates (modeset()'s MODE_ID), so a commit that
 * failed, or a test-only one, can be committed again with the same blobs. It is done after its
 * first successful real (not test-only) commit, or close(): then it destroys its blob ids (the
 * committed state keeps its own reference to what is on screen) and every method throws
 * ClosedError. Close a request that never committed successfully (or `using` it); one dropped
 * with blobs is cleaned up by the GC with an EXPLICIT_SYNC_LEAK warning. A request without blobs
 * holds nothing in the kernel.
 */
export class KmsAtomicRequest implements Disposable {
  readonly device: KmsDevice;
  readonly #entries: Array<{ obj: KmsObject | number; prop: number; value: () => bigint; outFenceFor?: number }> = [];
  /** Blob ids this request created and owns; the same array is the GC backstop's record. */
  readonly #blobs: number[] = [];
  /** CRTCs the request names (as objects, as CRTC_ID values, or a CRTC_ID given as a raw id). */
  readonly #crtcs = new Set<number>();
  /** The SyncFiles set as property values (IN_FENCE_FD), for the kms-commit channel. */
  readonly #inFences: SyncFile[] = [];
  #done = false;

  /** @internal Use KmsDevice#atomic(). */
  constructor(device: KmsDevice) {
    this.device = device;
  }

  /** Ids of the property blobs this request owns (modeset()'s MODE_ID); empty once it is done. */
  get blobs(): readonly number[] {
    return [...this.#blobs];
  }

  /** Done: closed, committed successfully, or its device closed. */
  get closed(): boolean {
    return this.#done || this.device.closed;
  }

  #open(call: string): void {
    if (this.#done) throw new ClosedError('KmsAtomicRequest', call);
  }

  /**
   * Ends the request: destroys the blob ids it owns (DRM_IOCTL_MODE_DESTROYPROPBLOB; what a
   * committed state uses stays alive in the kernel until replaced). Idempotent.
   * @throws ExplicitSyncError from DESTROYPROPBLOB (after trying every blob).
   */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
  }

  /** Same as close(); never throws. */
  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // dispose never throws
    }
  }

  #release(): void {
    if (this.#blobs.length === 0) return;
    blobLeaks.unregister(this);
    this.device[kDestroyBlobs](this.#blobs.splice(0));
  }

  #own(obj: KmsObject, what: string): void {
    if (!(obj instanceof KmsObject)) throw new InvalidArgTypeError(what, 'a KmsConnector, KmsCrtc or KmsPlane', obj);
    if (obj.device !== this.device) throw new InvalidArgValueError(what, 'belongs to another KmsDevice', obj);
  }

  /**
   * Sets property `prop` (a name, or a raw property id) of `obj` (a KmsObject, or a raw object id)
   * to `value`: a number/bigint (negative for signed ranges), a boolean, a KmsFramebuffer (its
   * id), a KmsObject (its id, e.g. a plane's CRTC_ID), a SyncFile (its fd, for IN_FENCE_FD) or
   * null (0). Raw ids go to the kernel unchecked: wrong ones fail the commit with EINVAL/ENOENT.
   */
  set(obj: KmsObject | number, prop: string | number, value: PropValue): this {
    this.#open('DRM_IOCTL_MODE_ATOMIC');
    let propId: number;
    if (typeof obj === 'number') {
      toInt(obj, 'obj', 1, 0xffffffff);
      if (typeof prop !== 'number') throw new InvalidArgTypeError('prop', 'a property id (number) when obj is a raw id', prop);
    } else {
      this.#own(obj, 'obj');
      if (obj instanceof KmsCrtc) this.#crtcs.add(obj.id);
    }
    if (value instanceof KmsCrtc) this.#crtcs.add(value.id);
    if (value instanceof SyncFile) this.#inFences.push(value);
    if (typeof prop === 'number') propId = toInt(prop, 'prop', 1, 0xffffffff);
    else if (typeof prop === 'string') propId = (obj as KmsObject).property(prop).id;
    else throw new InvalidArgTypeError('prop', 'a property name or id', prop);
    if ((typeof value === 'number' || typeof value === 'bigint') && value !== 0 && value !== 0n &&
        typeof obj !== 'number' && propId === obj.properties.get('CRTC_ID')?.id) {
      this.#crtcs.add(Number(value)); // a CRTC given by raw id; a wrong one fails the commit anyway
    }
    this.#entries.push({ obj, prop: propId, value: this.#encode(value, typeof prop === 'string' ? prop : `property ${prop}`) });
    return this;
  }

  #encode(value: PropValue, what: string): () => bigint {
    if (value === null) return () => 0n;
    if (typeof value === 'boolean') return () => (value ? 1n : 0n);
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new OutOfRangeError(what, 'a safe integer', value);
      return () => BigInt.asUintN(64, BigInt(value));
    }
    if (typeof value === 'bigint') {
      if (value < -(1n << 63n) || value >= 1n << 64n) throw new OutOfRangeError(what, 'a 64-bit value', value);
      return () => BigInt.asUintN(64, value);
    }
    if (value instanceof KmsFramebuffer) {
      if (value.device !== this.device) throw new InvalidArgValueError(what, 'is a framebuffer of another KmsDevice', value);
      return () => BigInt(value.openId('DRM_IOCTL_MODE_ATOMIC'));
    }
    if (value instanceof SyncFile) {
      return () => {
        if (value.closed) throw new ClosedError('SyncFile', 'DRM_IOCTL_MODE_ATOMIC');
        return BigInt(value.fd);
      };
    }
    if (value instanceof KmsObject) {
      this.#own(value, what);
      return () => BigInt(value.id);
    }
    throw new InvalidArgTypeError(what, 'a number, bigint, boolean, null, KmsFramebuffer, KmsObject or SyncFile', value);
  }

  /**
   * Shows `fb` on `plane` through `crtc`: FB_ID, CRTC_ID and the source (16.16 fixed point) and
   * destination rectangles, by default the whole framebuffer at the CRTC's top left.
   */
  setPlane(plane: KmsPlane, crtc: KmsCrtc, fb: KmsFramebuffer, dest?: { x?: number; y?: number; width?: number; height?: number }): this {
    const d = toOptions(dest, DEST_KEYS, 'dest');
    this.set(plane, 'FB_ID', fb).set(plane, 'CRTC_ID', crtc);
    this.set(plane, 'SRC_X', 0).set(plane, 'SRC_Y', 0).set(plane, 'SRC_W', fb.width * 65536).set(plane, 'SRC_H', fb.height * 65536);
    this.set(plane, 'CRTC_X', d.x ?? 0).set(plane, 'CRTC_Y', d.y ?? 0);
    return this.set(plane, 'CRTC_W', d.width ?? fb.width).set(plane, 'CRTC_H', d.height ?? fb.height);
  }

  /** The plane's IN_FENCE_FD: the kernel waits for `fence` before scanning the new framebuffer out. The SyncFile stays yours. */
  inFence(plane: KmsPlane, fence: SyncFile): this {
    if (!(fence instanceof SyncFile)) throw new InvalidArgTypeError('fence', 'an instance of SyncFile', fence);
    return this.set(plane, 'IN_FENCE_FD', fence);
  }

  /**
   * Asks for an out-fence: a CRTC's OUT_FENCE_PTR (signals when the commit's frame is on screen),
   * or a writeback connector's WRITEBACK_OUT_FENCE_PTR (signals when the frame was written).
   * It comes back in the commit result's `outFences` under `obj.id`.
   */
  outFence(obj: KmsCrtc | KmsConnector): this {
    this.#open('DRM_IOCTL_MODE_ATOMIC');
    this.#own(obj, 'obj');
    const prop = obj instanceof KmsConnector ? 'WRITEBACK_OUT_FENCE_PTR' : 'OUT_FENCE_PTR';
    this.#entries.push({ obj, prop: obj.property(prop).id, value: () => 0n, outFenceFor: obj.id });
    if (obj instanceof KmsCrtc) this.#crtcs.add(obj.id);
    return this;
  }

  /** Routes `connector` to `crtc` in `mode` and activates the CRTC (needs `allowModeset` to commit). */
  modeset(output: { connector: KmsConnector; crtc: KmsCrtc; mode: KmsMode }): this {
    const { connector, crtc, mode } = output;
    if (mode === null || typeof mode !== 'object' || !Buffer.isBuffer(mode.raw)) throw new InvalidArgTypeError('mode', 'a KmsMode', mode);
    this.#open('DRM_IOCTL_MODE_CREATEPROPBLOB');
    const blob = native.kmsCreatePropBlob(this.device[kFd]('DRM_IOCTL_MODE_CREATEPROPBLOB'), mode.raw);
    // Owned until the request is done (see the class comment); the committed state holds its own reference.
    if (this.#blobs.length === 0) blobLeaks.register(this, { device: this.device, blobs: this.#blobs, site: creationSite() }, this);
    this.#blobs.push(blob);
    this.set(crtc, 'MODE_ID', blob).set(crtc, 'ACTIVE', true);
    return this.set(connector, 'CRTC_ID', crtc);
  }

  /** Turns the CRTC off (and its connectors), the reverse of modeset (needs `allowModeset`). */
  disable(output: { connector: KmsConnector; crtc: KmsCrtc; plane?: KmsPlane }): this {
    this.set(output.connector, 'CRTC_ID', null).set(output.crtc, 'ACTIVE', false).set(output.crtc, 'MODE_ID', null);
    if (output.plane) this.set(output.plane, 'FB_ID', null).set(output.plane, 'CRTC_ID', null);
    return this;
  }

  /**
   * Sends the request (DRM_IOCTL_MODE_ATOMIC). A request can be committed again after a
   * test-only commit or a failed one (e.g. a modeset refused without `allowModeset`); its first
   * successful real commit ends it (see the class comment).
   * @throws ExplicitSyncError from the kernel: 'EINVAL' (a state it refuses, a wrong property or
   *   object, a flip event for a commit that touches no CRTC), 'ENOENT' (an unknown object or
   *   property id), 'EBUSY' (a nonblocking commit while the previous one is pending), 'EACCES'
   *   (not the DRM master); ClosedError when the request is done, or the device, a framebuffer or
   *   a sync file in it is closed.
   */
  commit(options?: KmsCommitOptions): KmsCommitResult {
    const o = toOptions(options, COMMIT_KEYS);
    // The flip's bound: parsed (and refused without a flip event) before the ioctl.
    const flipWait = parseWait({ signal: o.signal, timeoutMs: o.timeoutMs, deadline: o.deadline }, { keys: FLIP_WAIT_KEYS });
    if (o.pageFlipEvent !== true)
      for (const key of ['signal', 'timeoutMs', 'deadline'] as const)
        if (o[key] !== undefined)
          throw new InvalidArgValueError(`options.${key}`, 'bounds the wait for the flip, and needs pageFlipEvent: true', o[key]);
    this.#open('DRM_IOCTL_MODE_ATOMIC');
    const flags =
      (o.testOnly ? K.ATOMIC_TEST_ONLY : 0) |
      (o.nonblock ? K.ATOMIC_NONBLOCK : 0) |
      (o.allowModeset ? K.ATOMIC_ALLOW_MODESET : 0) |
      (o.pageFlipEvent ? K.PAGE_FLIP_EVENT : 0);
    const fd = this.device[kFd]('DRM_IOCTL_MODE_ATOMIC');
    // Group by object, in first-seen order (the ioctl takes one run of properties per object).
    const byObj = new Map<number, Entry[]>();
    const outFenceFor: number[] = [];
    for (const e of this.#entries) {
      const obj = typeof e.obj === 'number' ? e.obj : e.obj.id;
      const list = byObj.get(obj) ?? [];
      byObj.set(obj, list);
      const entry: Entry = { obj, prop: e.prop, value: e.value() };
      if (e.outFenceFor !== undefined) {
        entry.outFence = outFenceFor.length;
        outFenceFor.push(e.outFenceFor);
      }
      list.push(entry);
    }
    const all = [...byObj.values()].flat();
    const slots = new Uint32Array(outFenceFor.length);
    all.forEach((e, i) => {
      if (e.outFence !== undefined) slots[e.outFence] = i;
    });
    const pageFlip = o.pageFlipEvent === true && !o.testOnly;
    // Read before the ioctl: the CRTCs the commit's state will hold are the ones it replaces.
    const flipCrtcs = pageFlip ? this.#eventCrtcs() : undefined;
    const userData = pageFlip ? this.device[kNextFlip]() : 0n;
    // A failure leaves the request as it was (its blobs included): it can be fixed and retried.
    const send = (): Map<number, SyncFile> => {
      const fds = native.kmsAtomic(
        fd, flags,
        Uint32Array.from(byObj.keys()), Uint32Array.from([...byObj.values()].map((l) => l.length)),
        Uint32Array.from(all.map((e) => e.prop)), BigUint64Array.from(all.map((e) => e.value)),
        slots, userData,
      );
      const out = new Map<number, SyncFile>();
      fds.forEach((f, i) => {
        if (f >= 0) out.set(outFenceFor[i] as number, SyncFile[kAdopt](f));
      });
      return out;
    };
    const outFences = kmsCommitChannel.hasSubscribers
      ? traceKmsCommit(
          { device: ref(this.device), commit: userData, testOnly: o.testOnly === true, nonblock: o.nonblock === true, inFences: this.#inFences.map(ref) },
          (ctx) => {
            const out = send();
            ctx.outFences = [...out].map(([objectId, sf]) => ({ objectId, syncFile: ref(sf) }));
            return out;
          },
        )
      : send();
    const awaitFlip = (): Promise<KmsFlipEvent[]> => this.device[kAwaitFlip](userData, flipCrtcs!, flipWait);
    const flip =
      flipCrtcs === undefined ? undefined
      : kmsFlipChannel.hasSubscribers ? traceKmsFlip({ device: ref(this.device), commit: userData, crtcs: [...flipCrtcs] }, awaitFlip)
      : awaitFlip();
    if (!o.testOnly) {
      // Done: the committed state holds its own references to the blobs it uses.
      this.#done = true;
      try {
        this.#release();
      } catch {
        // Our own live blob ids on an open device: DESTROYPROPBLOB cannot refuse them, and a
        // throw here would lose the out-fences of a commit that happened. The kernel frees any
        // blob left with the DRM file.
      }
    }
    return { outFences, outFence: outFences.values().next().value, flip };
  }

  /**
   * The CRTCs whose flip events the commit waits for. The kernel sends one event per CRTC in the
   * commit's state: the CRTCs the request names, and the current CRTC of every plane and
   * connector it touches (a plane moving off a CRTC, or being turned off, adds that CRTC). A
   * driver may add more; their events are taken along when they come first, dropped otherwise.
   */
  #eventCrtcs(): Set<number> {
    const out = new Set(this.#crtcs);
    const crtcIds = this.device[kCrtcIds]();
    const seen = new Set<KmsObject>();
    for (const e of this.#entries) {
      if (typeof e.obj === 'number') {
        if (crtcIds.includes(e.obj)) out.add(e.obj);
      } else if ((e.obj instanceof KmsPlane || e.obj instanceof KmsConnector) && !seen.has(e.obj)) {
        seen.add(e.obj);
        const current = this.device[kCurrentCrtc](e.obj);
        if (current !== 0) out.add(current);
      }
    }
    return out;
  }
}
