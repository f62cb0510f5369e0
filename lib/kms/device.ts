/**
 * KmsDevice: an open KMS card node (opening, enumeration, pickOutput, framebuffer creation,
 * atomic()), and the hooks the other files of lib/kms/ reach it through. Its page-flip events are
 * read by its FlipPump (flips.ts).
 * @module
 */
import { constants as fsConstants } from 'node:fs';
import { ClosedError, ExplicitSyncError, NoDeviceError, UnsupportedError, rethrowIfOutOfFds } from '../errors';
import { DRI_DIR, driNodeNames } from '../device';
import { DmaBuf } from '../dma-buf';
import { FdResource } from '../resource';
import { InvalidArgTypeError, InvalidArgValueError, OptionKeys, toInt, toOptions, toPath } from '../validate';
import { KmsAtomicRequest } from './atomic';
import { FlipBound, FlipPump, KmsFlipEvent, kPumpFault } from './flips';
import { FORMAT_XRGB8888, K, native } from './native';
import { KmsConnector, KmsCrtc, KmsObject, KmsOutput, KmsPlane, KmsProperty, toMode } from './objects';
import { DUMB_KEYS, IMPORT_FB_KEYS, KmsDumbOptions, KmsFramebuffer, KmsImportOptions } from './framebuffer';
import { kPendingWaits } from '../trace/inspect';
import { kAwaitFlip, kCrtcIds, kCurrentCrtc, kDestroyBlobs, kFd, kForget, kNextFlip } from './internal';

/** How long `await using` waits for pending page flips before closing the device anyway. */
export const ASYNC_DISPOSE_FLIP_MS = 1000;

/** Options of {@link KmsDevice.open}. */
export interface KmsOpenOptions {
  /** Driver name, or a list (default: any card node whose driver does atomic modesetting). */
  driver?: string | readonly string[];
}

const KMS_OPEN_KEYS: OptionKeys<KmsOpenOptions> = { driver: true };
const PICK_KEYS: OptionKeys<{ mode?: string | { width: number; height: number } }> = { mode: true };

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
  /** Page-flip events: the pending flips and the pump that reads them. */
  readonly #flipPump = new FlipPump(this);
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
    this.#flipPump.fault(where, errno);
  }

  /** A new, empty atomic request on this device. */
  atomic(): KmsAtomicRequest {
    this.openFd('DRM_IOCTL_MODE_ATOMIC');
    return new KmsAtomicRequest(this);
  }

  /** @internal */
  [kNextFlip](): bigint {
    return this.#flipPump.nextFlip();
  }

  /** @internal A promise for the flip events of the commit tagged `userData`: one from each of `crtcs`. */
  [kAwaitFlip](userData: bigint, crtcs: ReadonlySet<number>, bound: FlipBound): Promise<KmsFlipEvent[]> {
    return this.#flipPump.awaitFlip(userData, crtcs, bound);
  }

  /** Commits whose page flip is still pending (for util.inspect and inspect()). */
  get [kPendingWaits](): number {
    return this.#flipPump.pending;
  }

  /**
   * `await using kms = KmsDevice.open()`: waits for the pending page flips to complete (a flip
   * comes within a frame; at most {@link ASYNC_DISPOSE_FLIP_MS} ms), then closes the device:
   * a flip still pending then rejects with ClosedError. Either way, once this resolves no flip of
   * this device is pending and every flip promise has settled.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.closed) await this.#flipPump.drain(ASYNC_DISPOSE_FLIP_MS);
    this[Symbol.dispose]();
    await new Promise<void>((resolve) => setImmediate(resolve)); // the rejections' handlers have run
  }

  /** Pending flips reject with ClosedError, framebuffers are forgotten (the kernel frees them with the file). */
  protected override beforeClose(): void {
    this.#flipPump.close();
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
