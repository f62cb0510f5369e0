/**
 * KMS (kernel modesetting), the compositor's half of explicit sync: put a buffer on screen with an
 * atomic commit whose planes wait on `IN_FENCE_FD` sync files, and get back a CRTC `OUT_FENCE_PTR`
 * sync file that signals when the frame is on screen (the release point for the client's buffer).
 *
 * A small, honest surface, not a libdrm replacement: enumerate connectors, CRTCs and planes with
 * their properties by name; framebuffers from dumb buffers or imported dma-bufs (linear, one
 * plane); an atomic request builder; page-flip events delivered on the event loop through the
 * shared fd watcher (the DRM fd is pollable).
 *
 * Lifetimes: every id (framebuffer, GEM handle, blob) belongs to the device's DRM file, so each
 * object holds its KmsDevice, and closing the device ends them all (their methods then throw
 * ClosedError). Sync files are independent fds: out-fences outlive the device.
 * @module
 */
import { constants as fsConstants } from 'node:fs';
import { ClosedError, ExplicitSyncError, NoDeviceError, TimeoutError, UnsupportedError, rethrowIfOutOfFds } from './errors';
import { DRI_DIR, driNodeNames } from './device';
import { DmaBuf } from './dma-buf';
import { NativeCore, nativeFamily } from './native';
import { FdResource, kAdopt } from './resource';
import { CreationSite, creationSite, reportLeak } from './leaks';
import { SyncFile } from './sync-file';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, OutOfRangeError, toInt, toOptions, toPath } from './validate';
import { FdWaitQueue, abortError, parseWait, setLongTimeout } from './watcher';

interface NativeMode {
  clock: number; hdisplay: number; hsyncStart: number; hsyncEnd: number; htotal: number; hskew: number;
  vdisplay: number; vsyncStart: number; vsyncEnd: number; vtotal: number; vscan: number;
  vrefresh: number; flags: number; type: number; name: string; raw: Buffer;
}
interface NativeEvent { type: number; userData?: bigint; tvSec?: number; tvUsec?: number; sequence?: number; crtcId?: number }

/** native/kms.cc (and the GEM helpers of native/vgem.cc). */
interface NativeKms {
  kmsGetResources(fd: number): { fbs: number[]; crtcs: number[]; connectors: number[]; encoders: number[]; minWidth: number; maxWidth: number; minHeight: number; maxHeight: number };
  kmsGetConnector(fd: number, id: number): { id: number; type: number; typeId: number; connection: number; mmWidth: number; mmHeight: number; encoderId: number; encoders: number[]; modes: NativeMode[] };
  kmsGetEncoder(fd: number, id: number): { id: number; type: number; crtcId: number; possibleCrtcs: number };
  kmsGetCrtc(fd: number, id: number): { id: number; fbId: number; x: number; y: number; gammaSize: number; mode: NativeMode | null };
  kmsGetPlaneResources(fd: number): number[];
  kmsGetPlane(fd: number, id: number): { id: number; crtcId: number; fbId: number; possibleCrtcs: number; formats: number[] };
  kmsObjGetProperties(fd: number, id: number, type: number): { ids: number[]; values: bigint[] };
  kmsGetProperty(fd: number, id: number): { id: number; name: string; flags: number; values: bigint[]; enums: { value: bigint; name: string }[] };
  kmsAddFb2(fd: number, width: number, height: number, fourcc: number, handles: number[], pitches: number[], offsets: number[]): number;
  kmsRmFb(fd: number, id: number): void;
  kmsCreatePropBlob(fd: number, data: Buffer): number;
  kmsDestroyPropBlob(fd: number, id: number): void;
  kmsGetPropBlob(fd: number, id: number): Buffer;
  kmsPrimeFdToHandle(fd: number, dmaBufFd: number): number;
  kmsAtomic(fd: number, flags: number, objs: Uint32Array, counts: Uint32Array, props: Uint32Array, values: BigUint64Array, outFenceSlots: Uint32Array, userData: bigint): Int32Array;
  kmsReadEvents(fd: number): NativeEvent[];
  dumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  gemClose(fd: number, handle: number): void;
  primeHandleToFd(fd: number, handle: number): number;
  KMS: {
    CLIENT_CAP_UNIVERSAL_PLANES: number; CLIENT_CAP_ATOMIC: number; CLIENT_CAP_WRITEBACK_CONNECTORS: number;
    OBJECT_CRTC: number; OBJECT_CONNECTOR: number; OBJECT_PLANE: number;
    PROP_RANGE: number; PROP_IMMUTABLE: number; PROP_ENUM: number; PROP_BLOB: number; PROP_BITMASK: number;
    PROP_EXTENDED_TYPE: number; PROP_OBJECT: number; PROP_SIGNED_RANGE: number;
    PAGE_FLIP_EVENT: number; ATOMIC_TEST_ONLY: number; ATOMIC_NONBLOCK: number; ATOMIC_ALLOW_MODESET: number;
    EVENT_VBLANK: number; EVENT_FLIP_COMPLETE: number;
  };
}

const native = nativeFamily<NativeCore & NativeKms>();
const K = native.KMS;

/** Builds a DRM fourcc code from its four characters ('XR24' → DRM_FORMAT_XRGB8888). */
export function fourcc(code: string): number {
  if (typeof code !== 'string' || code.length !== 4) throw new InvalidArgValueError('code', 'must be 4 characters', code);
  return (code.charCodeAt(0) | (code.charCodeAt(1) << 8) | (code.charCodeAt(2) << 16) | (code.charCodeAt(3) << 24)) >>> 0;
}

/** DRM_FORMAT_XRGB8888: 32 bpp, little-endian B, G, R, X bytes. Every KMS driver scans it out. */
export const FORMAT_XRGB8888 = fourcc('XR24');
/** DRM_FORMAT_ARGB8888. */
export const FORMAT_ARGB8888 = fourcc('AR24');

/** A display mode (struct drm_mode_modeinfo). */
export interface KmsMode {
  name: string;
  width: number;
  height: number;
  /** Refresh rate in Hz. */
  refresh: number;
  /** DRM_MODE_TYPE_PREFERRED: the display's native mode. */
  preferred: boolean;
  /** Pixel clock in kHz. */
  clock: number;
  /** The kernel's struct, as a MODE_ID blob takes it. */
  readonly raw: Buffer;
}

/** One property of a mode object, with its current value. */
export interface KmsProperty {
  id: number;
  name: string;
  /** Current value; signed-range properties (IN_FENCE_FD) are decoded as signed. */
  value: bigint;
  immutable: boolean;
  kind: 'range' | 'signed-range' | 'enum' | 'bitmask' | 'blob' | 'object' | 'unknown';
  /** Enum/bitmask names → values. */
  enums: ReadonlyMap<string, bigint>;
}

/** Connector types (DRM_MODE_CONNECTOR_*), the ones worth a name here. */
const CONNECTOR_TYPES: Record<number, string> = {
  0: 'Unknown', 1: 'VGA', 2: 'DVI-I', 3: 'DVI-D', 10: 'DisplayPort', 11: 'HDMI-A', 14: 'eDP',
  15: 'Virtual', 16: 'DSI', 18: 'Writeback', 19: 'SPI', 20: 'USB',
};
const CONNECTOR_WRITEBACK = 18;
const MODE_TYPE_PREFERRED = 1 << 3;

function toMode(m: NativeMode): KmsMode {
  return {
    name: m.name, width: m.hdisplay, height: m.vdisplay, refresh: m.vrefresh,
    preferred: (m.type & MODE_TYPE_PREFERRED) !== 0, clock: m.clock, raw: m.raw,
  };
}

/** Base of connectors, CRTCs and planes: an id and its properties by name, read when enumerated. */
export abstract class KmsObject {
  readonly device: KmsDevice;
  readonly id: number;
  /** Properties by name, as read when the object was enumerated (see {@link KmsDevice.properties}). */
  readonly properties: ReadonlyMap<string, KmsProperty>;
  /** @internal */
  abstract readonly objectType: number;

  /** @internal */
  constructor(device: KmsDevice, id: number, properties: ReadonlyMap<string, KmsProperty>) {
    this.device = device;
    this.id = id;
    this.properties = properties;
  }

  /** The property named `name`; throws InvalidArgValueError (ERR_INVALID_ARG_VALUE) when there is none. */
  property(name: string): KmsProperty {
    const p = this.properties.get(name);
    if (p === undefined) {
      throw new InvalidArgValueError('name', `is not a property of ${this} (it has ${[...this.properties.keys()].join(', ')})`, name);
    }
    return p;
  }
}

/** A connector (an output: HDMI, Virtual, Writeback, …). */
export class KmsConnector extends KmsObject {
  /** @internal */
  readonly objectType = K.OBJECT_CONNECTOR;
  /** 'Virtual', 'HDMI-A', 'Writeback', … */
  readonly type: string;
  /** e.g. 'Virtual-1'. */
  readonly name: string;
  readonly connected: boolean;
  /** A writeback connector: the composed frame can be written into a framebuffer. */
  readonly writeback: boolean;
  /** Modes the display supports, preferred first when there is one. */
  readonly modes: readonly KmsMode[];
  /** Physical size in millimetres. */
  readonly mmWidth: number;
  readonly mmHeight: number;
  /** Ids of the CRTCs that can drive it. */
  readonly possibleCrtcs: readonly number[];

  /** @internal */
  constructor(device: KmsDevice, raw: ReturnType<NativeKms['kmsGetConnector']>, properties: ReadonlyMap<string, KmsProperty>, possibleCrtcs: number[]) {
    super(device, raw.id, properties);
    this.type = CONNECTOR_TYPES[raw.type] ?? `type-${raw.type}`;
    this.name = `${this.type}-${raw.typeId}`;
    this.connected = raw.connection === 1;
    this.writeback = raw.type === CONNECTOR_WRITEBACK;
    this.modes = raw.modes.map(toMode).sort((a, b) => Number(b.preferred) - Number(a.preferred));
    this.mmWidth = raw.mmWidth;
    this.mmHeight = raw.mmHeight;
    this.possibleCrtcs = possibleCrtcs;
  }

  /** @internal */
  toString(): string {
    return `KmsConnector(${this.id}, ${this.name})`;
  }
}

/** A CRTC: a scanout engine that composes planes into one mode. */
export class KmsCrtc extends KmsObject {
  /** @internal */
  readonly objectType = K.OBJECT_CRTC;
  /** Its index in the device's CRTC list (possible_crtcs bitmasks use it). */
  readonly index: number;
  /** The mode it runs, or null when off. */
  readonly mode: KmsMode | null;

  /** @internal */
  constructor(device: KmsDevice, id: number, index: number, mode: KmsMode | null, properties: ReadonlyMap<string, KmsProperty>) {
    super(device, id, properties);
    this.index = index;
    this.mode = mode;
  }

  /** @internal */
  toString(): string {
    return `KmsCrtc(${this.id})`;
  }
}

/** A plane: a framebuffer source scanned out by a CRTC. */
export class KmsPlane extends KmsObject {
  /** @internal */
  readonly objectType = K.OBJECT_PLANE;
  /** From the plane's 'type' property. */
  readonly type: 'primary' | 'overlay' | 'cursor';
  /** fourcc codes it scans out. */
  readonly formats: readonly number[];
  /** Ids of the CRTCs it can be attached to. */
  readonly possibleCrtcs: readonly number[];

  /** @internal */
  constructor(device: KmsDevice, raw: ReturnType<NativeKms['kmsGetPlane']>, properties: ReadonlyMap<string, KmsProperty>, possibleCrtcs: number[]) {
    super(device, raw.id, properties);
    const t = properties.get('type');
    const name = t === undefined ? 'Overlay' : [...t.enums].find(([, v]) => v === t.value)?.[0] ?? 'Overlay';
    this.type = name === 'Primary' ? 'primary' : name === 'Cursor' ? 'cursor' : 'overlay';
    this.formats = raw.formats;
    this.possibleCrtcs = possibleCrtcs;
  }

  /** @internal */
  toString(): string {
    return `KmsPlane(${this.id}, ${this.type})`;
  }
}

/** A connector, a CRTC that can drive it, its primary plane and a mode: what one output needs. */
export interface KmsOutput {
  connector: KmsConnector;
  crtc: KmsCrtc;
  plane: KmsPlane;
  mode: KmsMode;
}

/** Options of {@link KmsDevice.createFramebuffer}. */
export interface KmsDumbOptions {
  width: number;
  height: number;
  /** fourcc (default XRGB8888); the dumb buffer has 32 bits per pixel. */
  format?: number;
}

/** Options of {@link KmsDevice.importFramebuffer}: the layout of a linear single-plane dma-buf. */
export interface KmsImportOptions {
  width: number;
  height: number;
  /** Bytes per row. */
  pitch: number;
  /** Byte offset of the first pixel (default 0). */
  offset?: number;
  /** fourcc (default XRGB8888). */
  format?: number;
}

const DUMB_KEYS: OptionKeys<KmsDumbOptions> = { width: true, height: true, format: true };
const IMPORT_FB_KEYS: OptionKeys<KmsImportOptions> = { width: true, height: true, pitch: true, offset: true, format: true };

/**
 * A framebuffer (DRM_IOCTL_MODE_ADDFB2) over a GEM buffer of the device: a dumb buffer it
 * created, or a dma-buf it imported. close() removes it (RMFB) and frees the GEM handle; a plane
 * that still shows it is turned off by the kernel.
 */
export class KmsFramebuffer implements Disposable {
  readonly device: KmsDevice;
  readonly width: number;
  readonly height: number;
  readonly format: number;
  /** Bytes per row. */
  readonly pitch: number;
  /** Size of the underlying buffer in bytes. */
  readonly size: number;
  #id: number;
  #handle: number;
  #dmaBuf: DmaBuf | null = null;

  /** @internal */
  constructor(device: KmsDevice, id: number, handle: number, width: number, height: number, format: number, pitch: number, size: number) {
    this.device = device;
    this.#id = id;
    this.#handle = handle;
    this.width = width;
    this.height = height;
    this.format = format;
    this.pitch = pitch;
    this.size = size;
  }

  /** The framebuffer id (FB_ID), or -1 once closed. */
  get id(): number {
    return this.#id;
  }

  get closed(): boolean {
    return this.#id < 0 || this.device.closed;
  }

  /** @internal The id for a request; ClosedError when this or the device is closed. */
  openId(call: string): number {
    if (this.#id < 0) throw new ClosedError('KmsFramebuffer', call);
    this.device[kFd](call);
    return this.#id;
  }

  /**
   * The buffer as a dma-buf (DRM_IOCTL_PRIME_HANDLE_TO_FD), owned by this framebuffer (closed with
   * it): map() it to draw with the CPU, exportSyncFile() to get its fences.
   */
  dmaBuf(): DmaBuf {
    const call = 'DRM_IOCTL_PRIME_HANDLE_TO_FD';
    this.openId(call);
    this.#dmaBuf ??= DmaBuf[kAdopt](native.primeHandleToFd(this.device[kFd](call), this.#handle));
    return this.#dmaBuf;
  }

  /** RMFB, then GEM_CLOSE. Idempotent; after the device closed it only forgets the ids. */
  close(): void {
    if (this.#id < 0) return;
    const id = this.#id;
    const handle = this.#handle;
    this.#id = -1;
    this.#handle = 0;
    this.#dmaBuf?.close();
    this.#dmaBuf = null;
    this.device[kForget](this);
    if (this.device.closed) return;
    const fd = this.device[kFd]('DRM_IOCTL_MODE_RMFB');
    try {
      native.kmsRmFb(fd, id);
    } finally {
      if (handle !== 0) native.gemClose(fd, handle);
    }
  }

  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // dispose never throws
    }
  }

  /** @internal */
  toString(): string {
    return `KmsFramebuffer(${this.#id}, ${this.width}x${this.height})`;
  }
}

/** A page-flip completion (DRM_EVENT_FLIP_COMPLETE) for one CRTC of a commit. */
export interface KmsFlipEvent {
  crtcId: number;
  /** The vblank counter at the flip. */
  sequence: number;
  /** CLOCK_MONOTONIC time of the flip, in nanoseconds. */
  timeNs: bigint;
}

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
const PICK_KEYS: OptionKeys<{ mode?: string | { width: number; height: number } }> = { mode: true };

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

/** Module-private keys of KmsDevice internals used by the other classes here. */
const kFd: unique symbol = Symbol('explicit-sync.kmsFd');
const kForget: unique symbol = Symbol('explicit-sync.kmsForget');
const kDestroyBlobs: unique symbol = Symbol('explicit-sync.kmsDestroyBlobs');
const kCrtcIds: unique symbol = Symbol('explicit-sync.kmsCrtcIds');
const kCurrentCrtc: unique symbol = Symbol('explicit-sync.kmsCurrentCrtc');

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
    const fds = native.kmsAtomic(
      fd, flags,
      Uint32Array.from(byObj.keys()), Uint32Array.from([...byObj.values()].map((l) => l.length)),
      Uint32Array.from(all.map((e) => e.prop)), BigUint64Array.from(all.map((e) => e.value)),
      slots, userData,
    );
    const outFences = new Map<number, SyncFile>();
    fds.forEach((f, i) => {
      if (f >= 0) outFences.set(outFenceFor[i] as number, SyncFile[kAdopt](f));
    });
    const flip = flipCrtcs !== undefined ? this.device[kAwaitFlip](userData, flipCrtcs, flipWait) : undefined;
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

/**
 * @internal Test hook, exported from this module only (not from the package index): makes the
 * event pump's next read(2) fail with `errno` as a kernel error would, or fails its poll wait
 * the way the shared fd watcher does on a negative libuv status. The kernel gives no way to make
 * a DRM fd's read or poll fail for real without closing it behind the library's back.
 */
export const kPumpFault: unique symbol = Symbol('explicit-sync.kmsPumpFault');

const kNextFlip: unique symbol = Symbol('explicit-sync.kmsNextFlip');
const kAwaitFlip: unique symbol = Symbol('explicit-sync.kmsAwaitFlip');

/** A commit's flip: the CRTCs whose events it still waits for (none: the first event settles it). */
interface PendingFlip {
  waiting: Set<number>;
  events: KmsFlipEvent[];
  resolve(e: KmsFlipEvent[]): void;
  reject(err: Error): void;
  /** Stops its timer and abort listener. */
  cleanup(): void;
}

/** What bounds the wait for a flip (from the commit's options). */
export interface FlipBound {
  /** Relative ms; undefined: no limit. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * @internal The pending flips of one device, by commit (user_data), matched with the kernel's
 * events: pure bookkeeping, no fd (KmsDevice's pump feeds it). Exported from this module only,
 * for the host tests; not from the package index.
 */
export class FlipTable {
  readonly #flips = new Map<bigint, PendingFlip>();
  readonly #onIdle: (() => void) | undefined;

  /** `onIdle` runs when a timeout or abort leaves no flip pending (the pump can stop). */
  constructor(onIdle?: () => void) {
    this.#onIdle = onIdle;
  }

  /** Number of commits still waiting. */
  get size(): number {
    return this.#flips.size;
  }

  /**
   * A promise for the flip events of the commit tagged `userData`: one from each of `crtcs` (or
   * the first one, if empty). It rejects with TimeoutError (code 'ETIME') after `bound.timeoutMs`,
   * with AbortError when `bound.signal` aborts (at once if it already has); the commit is then
   * forgotten and its late event dropped.
   */
  expect(userData: bigint, crtcs: Iterable<number>, bound: FlipBound = {}): Promise<KmsFlipEvent[]> {
    const p = new Promise<KmsFlipEvent[]>((resolve, reject) => {
      const { signal, timeoutMs } = bound;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const entry: PendingFlip = { waiting: new Set(crtcs), events: [], resolve, reject, cleanup: () => undefined };
      this.#flips.set(userData, entry);
      const cancel = (err: Error): void => {
        if (this.#flips.get(userData) !== entry) return;
        this.#flips.delete(userData);
        entry.cleanup();
        reject(err);
        if (this.#flips.size === 0) this.#onIdle?.();
      };
      const clearTimer =
        timeoutMs === undefined
          ? undefined
          : setLongTimeout(timeoutMs, () =>
              cancel(new TimeoutError('poll', { operation: 'page flip', message: `ETIME: the page flip did not complete within ${timeoutMs} ms` })),
            );
      const onAbort = signal === undefined ? undefined : (): void => cancel(abortError(signal));
      if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true });
      entry.cleanup = () => {
        clearTimer?.();
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      };
    });
    // Not awaiting a flip is fine: a close that rejects it must not become an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }

  /**
   * One event (as kmsReadEvents gives it). A flip settles once every CRTC it waits for sent its
   * event, with all of its events that came by then; an event of a settled (or unknown) commit
   * is dropped, never counted for another commit (each commit has its own user_data).
   */
  dispatch(e: { type: number; userData?: bigint; tvSec?: number; tvUsec?: number; sequence?: number; crtcId?: number }): void {
    if (e.type !== K.EVENT_FLIP_COMPLETE || e.userData === undefined) return;
    const pending = this.#flips.get(e.userData);
    if (pending === undefined) return;
    const crtcId = e.crtcId ?? 0;
    pending.events.push({
      crtcId, sequence: e.sequence ?? 0,
      timeNs: BigInt(e.tvSec ?? 0) * 1_000_000_000n + BigInt(e.tvUsec ?? 0) * 1000n,
    });
    pending.waiting.delete(crtcId);
    if (pending.waiting.size === 0) {
      this.#flips.delete(e.userData);
      pending.cleanup();
      pending.resolve(pending.events);
    }
  }

  /** Rejects every pending flip with `err` and forgets them. */
  rejectAll(err: Error): void {
    const flips = [...this.#flips.values()];
    this.#flips.clear();
    for (const f of flips) {
      f.cleanup();
      f.reject(err);
    }
  }
}

/** @internal DRM_EVENT_FLIP_COMPLETE, for FlipTable's tests. */
export const EVENT_FLIP_COMPLETE: number = K.EVENT_FLIP_COMPLETE;

/** Options of {@link KmsDevice.open}. */
export interface KmsOpenOptions {
  /** Driver name, or a list (default: any card node whose driver does atomic modesetting). */
  driver?: string | readonly string[];
}

const KMS_OPEN_KEYS: OptionKeys<KmsOpenOptions> = { driver: true };

const DRM_MAJOR = 226;
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** Opens a card node and turns on atomic (which implies universal planes) and writeback connectors. */
function openKms(path: string): number {
  const fd = native.open(path, fsConstants.O_RDWR);
  try {
    const st = native.fstat(fd);
    if ((st.mode & S_IFMT) !== S_IFCHR || st.rdevMajor !== DRM_MAJOR) {
      throw new ExplicitSyncError(-19, 'open', { detail: path, message: `ENODEV: not a DRM device node, open '${path}'` });
    }
    try {
      native.drmSetClientCap(fd, K.CLIENT_CAP_ATOMIC, 1);
    } catch (err) {
      if (err instanceof ExplicitSyncError && ['EOPNOTSUPP', 'EINVAL', 'ENOTTY'].includes(err.code)) {
        throw new UnsupportedError(-Math.abs(err.errno), 'DRM_IOCTL_SET_CLIENT_CAP', `atomic modesetting on ${path}`, undefined, { cause: err });
      }
      throw err;
    }
    try {
      native.drmSetClientCap(fd, K.CLIENT_CAP_WRITEBACK_CONNECTORS, 1);
    } catch {
      // No writeback on this driver: its connectors just do not show up.
    }
    return fd;
  } catch (err) {
    native.close(fd);
    throw err;
  }
}

/**
 * An open KMS card node (/dev/dri/cardN) with atomic modesetting on. Owns its fd: close() it, or
 * `using` it. Commits need DRM master, which the first opener of a card node gets while no
 * display server holds it (true in the VM; on a desktop, run from a free VT).
 */
export class KmsDevice extends FdResource {
  readonly path: string;
  /** DRM_IOCTL_VERSION's driver name ('vkms', 'i915', …). */
  readonly driver: string;
  readonly #framebuffers = new Set<KmsFramebuffer>();
  readonly #flips = new FlipTable(() => this.#stopPump());
  #nextFlip = 0n;
  #events: FdWaitQueue | null = null;
  #pumping = false;
  /** Aborts the pump's pending wait when no flip is left to wait for (timed out or aborted). */
  #pumpStop: AbortController | null = null;
  /** See {@link kPumpFault}: errno for the pump's next read, 0 for none. */
  #readFault = 0;
  /** CRTC ids, read once: a device's CRTCs are fixed when its driver registers it. */
  #crtcIdList: number[] | null = null;

  private constructor(fd: number, path: string) {
    super(fd, `KmsDevice ${path}`);
    this.path = path;
    try {
      this.driver = native.drmVersion(fd).name;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * Opens the card node at `path`, or the first card node whose driver accepts atomic
   * modesetting (filtered by `driver`).
   * @throws UnsupportedError when the node's driver has no atomic modesetting; NoDeviceError when
   *   no node fits; ExplicitSyncError from open(2).
   */
  static open(pathOrOptions: string | KmsOpenOptions = {}): KmsDevice {
    if (typeof pathOrOptions === 'string') {
      const path = toPath(pathOrOptions);
      return new KmsDevice(openKms(path), path);
    }
    const opts = toOptions(pathOrOptions, KMS_OPEN_KEYS, 'pathOrOptions');
    const drivers = opts.driver === undefined ? undefined : typeof opts.driver === 'string' ? [opts.driver] : opts.driver;
    const names = driNodeNames().filter((n) => /^card\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    const seen: string[] = [];
    for (const name of names) {
      const path = `${DRI_DIR}/${name}`;
      let fd: number;
      try {
        fd = openKms(path);
      } catch (err) {
        rethrowIfOutOfFds(err);
        seen.push(`${path} (${err instanceof UnsupportedError ? 'no atomic KMS' : (err as Error).message})`);
        continue;
      }
      const driver = native.drmVersion(fd).name;
      if (drivers !== undefined && !drivers.includes(driver)) {
        native.close(fd);
        seen.push(`${path} (${driver})`);
        continue;
      }
      return new KmsDevice(fd, path);
    }
    const want = drivers ? `driver ${drivers.join('|')}` : 'atomic KMS';
    throw new NoDeviceError(`ENODEV: no DRM card node with ${want}; found: ${seen.join('; ') || 'none'}`, seen);
  }

  /** @internal */
  [kFd](call: string): number {
    return this.openFd(call);
  }

  /** @internal */
  [kForget](fb: KmsFramebuffer): void {
    this.#framebuffers.delete(fb);
  }

  /**
   * @internal Destroys property blobs of this device's DRM file (DESTROYPROPBLOB), every one even
   * if one fails (the first error is thrown after). Nothing to do once the device is closed: the
   * kernel destroyed them with the file, and the fd number may belong to something else now.
   */
  [kDestroyBlobs](ids: readonly number[]): void {
    if (this.closed || ids.length === 0) return;
    const fd = this.openFd('DRM_IOCTL_MODE_DESTROYPROPBLOB');
    let first: unknown;
    for (const id of ids) {
      try {
        native.kmsDestroyPropBlob(fd, id);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** @internal */
  [kCrtcIds](): readonly number[] {
    this.#crtcIdList ??= native.kmsGetResources(this.openFd('DRM_IOCTL_MODE_GETRESOURCES')).crtcs;
    return this.#crtcIdList;
  }

  /** @internal The CRTC a plane or connector is on now (its CRTC_ID in the current state), 0 for none. */
  [kCurrentCrtc](obj: KmsPlane | KmsConnector): number {
    const prop = obj.properties.get('CRTC_ID');
    if (prop === undefined) return 0;
    const { ids, values } = native.kmsObjGetProperties(this.openFd('DRM_IOCTL_MODE_OBJ_GETPROPERTIES'), obj.id, obj.objectType);
    const i = ids.indexOf(prop.id);
    return i < 0 ? 0 : Number(values[i]);
  }

  /** Property table of one object (DRM_IOCTL_MODE_OBJ_GETPROPERTIES + GETPROPERTY per property). */
  #properties(id: number, type: number): Map<string, KmsProperty> {
    const fd = this.openFd('DRM_IOCTL_MODE_OBJ_GETPROPERTIES');
    const { ids, values } = native.kmsObjGetProperties(fd, id, type);
    const out = new Map<string, KmsProperty>();
    ids.forEach((pid, i) => {
      const p = native.kmsGetProperty(fd, pid);
      const ext = p.flags & K.PROP_EXTENDED_TYPE;
      const kind: KmsProperty['kind'] =
        p.flags & K.PROP_RANGE ? 'range'
        : p.flags & K.PROP_ENUM ? 'enum'
        : p.flags & K.PROP_BITMASK ? 'bitmask'
        : p.flags & K.PROP_BLOB ? 'blob'
        : ext === K.PROP_SIGNED_RANGE ? 'signed-range'
        : ext === K.PROP_OBJECT ? 'object'
        : 'unknown';
      const raw = values[i] as bigint;
      out.set(p.name, {
        id: pid, name: p.name, kind,
        value: kind === 'signed-range' ? BigInt.asIntN(64, raw) : raw,
        immutable: (p.flags & K.PROP_IMMUTABLE) !== 0,
        enums: new Map(p.enums.map((e) => [e.name, e.value])),
      });
    });
    return out;
  }

  /** Every CRTC, in index order. */
  crtcs(): KmsCrtc[] {
    const fd = this.openFd('DRM_IOCTL_MODE_GETRESOURCES');
    return native.kmsGetResources(fd).crtcs.map((id, index) => {
      const c = native.kmsGetCrtc(fd, id);
      return new KmsCrtc(this, id, index, c.mode ? toMode(c.mode) : null, this.#properties(id, K.OBJECT_CRTC));
    });
  }

  #crtcIds(mask: number, all: readonly number[]): number[] {
    return all.filter((_, i) => (mask & (1 << i)) !== 0);
  }

  /** Every connector (writeback ones included: see `writeback`), probed (GETCONNECTOR). */
  connectors(): KmsConnector[] {
    const fd = this.openFd('DRM_IOCTL_MODE_GETRESOURCES');
    const res = native.kmsGetResources(fd);
    return res.connectors.map((id) => {
      const raw = native.kmsGetConnector(fd, id);
      let mask = 0;
      for (const enc of raw.encoders) mask |= native.kmsGetEncoder(fd, enc).possibleCrtcs;
      return new KmsConnector(this, raw, this.#properties(id, K.OBJECT_CONNECTOR), this.#crtcIds(mask, res.crtcs));
    });
  }

  /** Every plane (primary, overlay and cursor). */
  planes(): KmsPlane[] {
    const fd = this.openFd('DRM_IOCTL_MODE_GETPLANERESOURCES');
    const crtcs = native.kmsGetResources(fd).crtcs;
    return native.kmsGetPlaneResources(fd).map((id) => {
      const raw = native.kmsGetPlane(fd, id);
      return new KmsPlane(this, raw, this.#properties(id, K.OBJECT_PLANE), this.#crtcIds(raw.possibleCrtcs, crtcs));
    });
  }

  /** Re-reads an object's properties (their current values). */
  properties(obj: KmsObject): ReadonlyMap<string, KmsProperty> {
    if (!(obj instanceof KmsObject) || obj.device !== this) throw new InvalidArgValueError('obj', 'must be a KmsObject of this device', obj);
    return this.#properties(obj.id, obj.objectType);
  }

  /**
   * The first connected, non-writeback connector with a mode, a CRTC that can drive it, and that
   * CRTC's primary plane; the preferred mode unless `mode` picks one (by name or size).
   * @throws NoDeviceError (code 'ENODEV') when nothing is connected.
   */
  pickOutput(options?: { mode?: string | { width: number; height: number } }): KmsOutput {
    const o = toOptions(options, PICK_KEYS);
    const crtcs = this.crtcs();
    const planes = this.planes();
    for (const connector of this.connectors()) {
      if (!connector.connected || connector.writeback || connector.modes.length === 0) continue;
      const want = o.mode;
      const mode =
        want === undefined ? connector.modes[0]
        : typeof want === 'string' ? connector.modes.find((m) => m.name === want)
        : connector.modes.find((m) => m.width === want.width && m.height === want.height);
      if (mode === undefined) continue;
      for (const crtc of crtcs.filter((c) => connector.possibleCrtcs.includes(c.id))) {
        const plane = planes.find((p) => p.type === 'primary' && p.possibleCrtcs.includes(crtc.id));
        if (plane !== undefined) return { connector, crtc, plane, mode };
      }
    }
    throw new NoDeviceError(`ENODEV: no connected connector with a usable mode, CRTC and primary plane on ${this.path}`, []);
  }

  /** The writeback connector, if the driver has one (vkms does). */
  writebackConnector(): KmsConnector | undefined {
    return this.connectors().find((c) => c.writeback);
  }

  /**
   * A framebuffer over a new dumb buffer (DRM_IOCTL_MODE_CREATE_DUMB + ADDFB2), 32 bits per pixel,
   * zero-filled. Draw into it through `fb.dmaBuf().map()`.
   * @throws ExplicitSyncError from the ioctls; ClosedError after close().
   */
  createFramebuffer(options: KmsDumbOptions): KmsFramebuffer {
    const o = toOptions(options, DUMB_KEYS);
    const width = toInt(o.width, 'options.width', 1, 16384);
    const height = toInt(o.height, 'options.height', 1, 16384);
    const format = o.format === undefined ? FORMAT_XRGB8888 : toInt(o.format, 'options.format', 0, 0xffffffff);
    const fd = this.openFd('DRM_IOCTL_MODE_CREATE_DUMB');
    const dumb = native.dumbCreate(fd, width, height, 32);
    let id: number;
    try {
      id = native.kmsAddFb2(fd, width, height, format, [dumb.handle], [dumb.pitch], [0]);
    } catch (err) {
      native.gemClose(fd, dumb.handle);
      throw err;
    }
    return this.#track(new KmsFramebuffer(this, id, dumb.handle, width, height, format, dumb.pitch, dumb.size));
  }

  /**
   * A framebuffer over a dma-buf from anywhere (another driver, a client): PRIME_FD_TO_HANDLE +
   * ADDFB2, linear, one plane. The DmaBuf stays yours. Note that importing the same dma-buf twice
   * gives the same GEM handle: close one framebuffer of a buffer before importing it again.
   * @throws ExplicitSyncError from the ioctls ('EINVAL' for a layout the buffer cannot hold);
   *   ClosedError when the device or the DmaBuf is closed.
   */
  importFramebuffer(dmaBuf: DmaBuf, options: KmsImportOptions): KmsFramebuffer {
    if (!(dmaBuf instanceof DmaBuf)) throw new InvalidArgTypeError('dmaBuf', 'an instance of DmaBuf', dmaBuf);
    const o = toOptions(options, IMPORT_FB_KEYS);
    const width = toInt(o.width, 'options.width', 1, 16384);
    const height = toInt(o.height, 'options.height', 1, 16384);
    const pitch = toInt(o.pitch, 'options.pitch', 1, 0xffffffff);
    const offset = o.offset === undefined ? 0 : toInt(o.offset, 'options.offset', 0, 0xffffffff);
    const format = o.format === undefined ? FORMAT_XRGB8888 : toInt(o.format, 'options.format', 0, 0xffffffff);
    const fd = this.openFd('DRM_IOCTL_PRIME_FD_TO_HANDLE');
    if (dmaBuf.closed) throw new ClosedError('DmaBuf', 'DRM_IOCTL_PRIME_FD_TO_HANDLE');
    const handle = native.kmsPrimeFdToHandle(fd, dmaBuf.fd);
    let id: number;
    try {
      id = native.kmsAddFb2(fd, width, height, format, [handle], [pitch], [offset]);
    } catch (err) {
      native.gemClose(fd, handle);
      throw err;
    }
    return this.#track(new KmsFramebuffer(this, id, handle, width, height, format, pitch, dmaBuf.size));
  }

  #track(fb: KmsFramebuffer): KmsFramebuffer {
    this.#framebuffers.add(fb);
    return fb;
  }

  /**
   * A property blob's bytes (DRM_IOCTL_MODE_GETPROPBLOB): a CRTC's MODE_ID (a struct
   * drm_mode_modeinfo, as {@link KmsMode.raw}), a plane's IN_FORMATS, …
   * @throws ExplicitSyncError 'ENOENT' when no blob has that id; ClosedError after close().
   */
  blob(id: number | bigint): Buffer {
    const blobId = toInt(typeof id === 'bigint' ? Number(id) : id, 'id', 1, 0xffffffff);
    return native.kmsGetPropBlob(this.openFd('DRM_IOCTL_MODE_GETPROPBLOB'), blobId);
  }

  /** @internal See {@link kPumpFault}. */
  [kPumpFault](where: 'read' | 'poll', errno: number): void {
    if (where === 'read') this.#readFault = errno;
    else this.#events?.rejectAll(new ExplicitSyncError(errno, 'poll'));
  }

  /** A new, empty atomic request on this device. */
  atomic(): KmsAtomicRequest {
    this.openFd('DRM_IOCTL_MODE_ATOMIC');
    return new KmsAtomicRequest(this);
  }

  /** @internal */
  [kNextFlip](): bigint {
    this.#nextFlip = this.#nextFlip >= 0xffffffffn ? 1n : this.#nextFlip + 1n;
    return this.#nextFlip;
  }

  /** @internal A promise for the flip events of the commit tagged `userData`: one from each of `crtcs`. */
  [kAwaitFlip](userData: bigint, crtcs: ReadonlySet<number>, bound: FlipBound): Promise<KmsFlipEvent[]> {
    const p = this.#flips.expect(userData, crtcs, bound);
    if (this.#flips.size === 0) return p; // an already aborted signal: nothing to pump for
    this.#pump();
    return p;
  }

  /**
   * Reads DRM events while flips are pending, waiting for readability on the shared fd watcher.
   * An error of the wait (poll) or of read(2) rejects every pending flip with it and stops the
   * pump; the next flip starts it again. Nothing here can reject unobserved.
   */
  #pump(): void {
    if (this.#pumping) return;
    const fd = this.openFd('read');
    this.#events ??= new FdWaitQueue(fd, () => native.pollIn(fd, 0), this);
    this.#pumping = true;
    const stop = new AbortController();
    this.#pumpStop = stop;
    const loop = (): void => {
      if (stop.signal.aborted) return; // #stopPump() ended this pump; a new one may be running
      if (this.#flips.size === 0 || this.closed) {
        this.#pumping = false;
        return;
      }
      this.#events!.wait({ timeoutMs: undefined, signal: stop.signal, ref: true, onTimeout: () => new Error('unreachable') }).then(
        () => {
          if (stop.signal.aborted) return;
          if (this.closed) {
            this.#pumping = false;
            return;
          }
          let events: NativeEvent[];
          try {
            events = this.#readEvents(fd);
          } catch (err) {
            this.#failFlips(err);
            return;
          }
          for (const e of events) this.#flips.dispatch(e);
          loop();
        },
        (err: unknown) => {
          if (stop.signal.aborted) return;
          if (this.closed) this.#pumping = false; // close() rejected the flips itself
          else this.#failFlips(err); // a poll error (ExplicitSyncError, syscall 'poll')
        },
      ).catch((err: unknown) => this.#failFlips(err));
    };
    loop();
  }

  /**
   * Ends the pump when the last pending flip timed out or was aborted: its poll wait is dropped
   * (the watcher is freed, nothing keeps the process alive); the next flip starts a new pump.
   */
  #stopPump(): void {
    const stop = this.#pumpStop;
    this.#pumpStop = null;
    this.#pumping = false;
    stop?.abort();
  }

  #readEvents(fd: number): NativeEvent[] {
    if (this.#readFault !== 0) {
      const errno = this.#readFault;
      this.#readFault = 0;
      throw new ExplicitSyncError(errno, 'read');
    }
    return native.kmsReadEvents(fd);
  }

  /** Stops the pump and rejects every pending flip with `err` (an ExplicitSyncError from poll or read). */
  #failFlips(err: unknown): void {
    this.#pumping = false;
    this.#flips.rejectAll(err instanceof Error ? err : new Error(String(err)));
  }

  /** Pending flips reject with ClosedError, framebuffers are forgotten (the kernel frees them with the file). */
  protected override beforeClose(): void {
    this.#events?.close('KmsDevice');
    this.#events = null;
    this.#flips.rejectAll(new ClosedError(`KmsDevice ${this.path}`, 'read', 'page flip'));
    for (const fb of [...this.#framebuffers]) {
      try {
        fb.close();
      } catch {
        // The kernel frees what is left with the DRM file anyway.
      }
    }
  }

  /** @internal */
  toString(): string {
    return `KmsDevice(${this.path}, ${this.driver})`;
  }
}
