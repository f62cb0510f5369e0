/**
 * DRM device nodes: discovery (DRM_IOCTL_VERSION, DRM_IOCTL_GET_CAP) and the Device object that
 * owns an open node's fd.
 *
 * Discovery never opens a primary (card) node unless the caller asks for one: the first open of a
 * card node while no process is DRM master makes the opener master until it closes the fd (the
 * kernel's drm_master_open()), and a display server starting, or coming back from a VT switch, in
 * that moment fails to become master. Render nodes never carry master, so a card node is
 * described through the render node of the same device (found in sysfs, as libdrm pairs them):
 * DRM_IOCTL_VERSION and DRM_IOCTL_GET_CAP answer per device, not per node.
 * @module
 */
import { constants as fsConstants, readdirSync } from 'node:fs';
import { ExplicitSyncError, NoDeviceError, errorFromFs, rethrowIfOutOfFds } from './errors';
import { native } from './native';
import { FdResource } from './resource';
import { InvalidArgTypeError, OptionKeys, toEnum, toOptions, toPath } from './validate';

/** @internal Key of Device's fd accessor; not exported from the package. */
export const kDeviceFd: unique symbol = Symbol('explicit-sync.deviceFd');
/**
 * @internal Key of Device's close hooks: callbacks run just before its fd closes, so that objects
 * living on the fd (syncobj handles with pending waits) reject those waits instead of hanging.
 */
export const kDeviceCloseHooks: unique symbol = Symbol('explicit-sync.deviceCloseHooks');

/** Where DRM nodes live. */
export const DRI_DIR = '/dev/dri';
const DRM_MAJOR = 226;
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** 'primary' for /dev/dri/cardN, 'render' for /dev/dri/renderDN. */
export type NodeKind = 'primary' | 'render';

/** What DRM_IOCTL_VERSION says. */
export interface DriverInfo {
  /** Driver name: 'vgem', 'virtio_gpu', 'amdgpu', 'i915', … */
  name: string;
  /** 'major.minor.patchlevel'. */
  version: string;
  date: string;
  description: string;
}

/** What DRM_IOCTL_GET_CAP says. */
export interface DeviceCaps {
  /** DRM_CAP_DUMB_BUFFER */
  dumbBuffer: boolean;
  /** DRM_CAP_PRIME: dma-buf import / export of buffers. */
  prime: { import: boolean; export: boolean };
  /** DRM_CAP_SYNCOBJ: binary syncobjs. */
  syncobj: boolean;
  /** DRM_CAP_SYNCOBJ_TIMELINE: timeline syncobjs. */
  timeline: boolean;
}

/** One node found by {@link Device.list}. */
export interface DeviceInfo {
  path: string;
  kind: NodeKind;
  driver: DriverInfo;
  caps: DeviceCaps;
}

/** A capability {@link Device.open} can require. */
export type Requirement = 'syncobj' | 'timeline' | 'prime' | 'dumb';
const REQUIREMENTS: readonly Requirement[] = ['syncobj', 'timeline', 'prime', 'dumb'];

/** Options of {@link Device.list}. */
export interface DeviceListOptions {
  /**
   * Also open and describe card nodes of devices that have no render node (KMS-only drivers:
   * vkms, simpledrm, …), the only way to ask their driver. Default false: they are left out. Where
   * no process is DRM master, opening a card node makes this process master until it closes it.
   */
  openPrimary?: boolean;
}

/** Options for picking a node by requirement. */
export interface DeviceOpenOptions {
  /** Driver name, or a list of acceptable names. */
  driver?: string | readonly string[];
  /** Capabilities the node must have. 'dumb' means a card node: render nodes refuse DUMB_CREATE. */
  require?: readonly Requirement[];
  /** true: render nodes only; false: primary (card) nodes only; default: either, render first. */
  render?: boolean;
}

const LIST_KEYS: OptionKeys<DeviceListOptions> = { openPrimary: true };
const OPEN_KEYS: OptionKeys<DeviceOpenOptions> = { driver: true, require: true, render: true };

function nodeKind(name: string): NodeKind | undefined {
  if (/^card\d+$/.test(name)) return 'primary';
  if (/^renderD\d+$/.test(name)) return 'render';
  return undefined;
}

function nodeNumber(name: string): number {
  return Number(/\d+$/.exec(name)?.[0] ?? 0);
}

function driverInfo(fd: number): DriverInfo {
  const v = native.drmVersion(fd);
  return { name: v.name, version: `${v.major}.${v.minor}.${v.patchlevel}`, date: v.date, description: v.desc };
}

function cap(fd: number, capability: number): bigint {
  try {
    return native.drmGetCap(fd, capability);
  } catch (err) {
    // EINVAL: a capability this kernel does not know. EOPNOTSUPP: a capability only modeset (KMS)
    // drivers report, asked of a driver without KMS (vgem and DRM_CAP_DUMB_BUFFER). Either way the
    // kernel does not report it.
    if (err instanceof ExplicitSyncError && (err.code === 'EINVAL' || err.code === 'EOPNOTSUPP')) return 0n;
    throw err;
  }
}

function deviceCaps(fd: number): DeviceCaps {
  const c = native.DRM_CAP;
  const prime = cap(fd, c.PRIME);
  return {
    dumbBuffer: cap(fd, c.DUMB_BUFFER) !== 0n,
    prime: { import: (prime & 1n) !== 0n, export: (prime & 2n) !== 0n },
    syncobj: cap(fd, c.SYNCOBJ) !== 0n,
    timeline: cap(fd, c.SYNCOBJ_TIMELINE) !== 0n,
  };
}

function hasRequirement(caps: DeviceCaps, req: Requirement): boolean {
  switch (req) {
    case 'syncobj':
      return caps.syncobj;
    case 'timeline':
      return caps.timeline;
    case 'prime':
      return caps.prime.export;
    case 'dumb':
      return caps.dumbBuffer;
  }
}

/** Where the kernel shows DRM minors and their devices. */
const SYSFS_DRM = '/sys/class/drm';

/**
 * The render node of a card node's device ('renderD128' for 'card0'), from sysfs: every minor of
 * a device is listed in its device's drm/ folder. Undefined when it has none (a KMS-only driver)
 * or sysfs is not there.
 */
function renderNodeOf(card: string): string | undefined {
  try {
    return readdirSync(`${SYSFS_DRM}/${card}/device/drm`)
      .filter((n) => nodeKind(n) === 'render')
      .sort((a, b) => nodeNumber(a) - nodeNumber(b))[0];
  } catch (err) {
    rethrowIfOutOfFds(err);
    return undefined;
  }
}

/**
 * @internal The names in /dev/dri; none where it does not exist (ENOENT). Any other failure (EMFILE,
 * EACCES, …) is an ExplicitSyncError with its real code, errno and syscall ('scandir').
 */
export function driNodeNames(): string[] {
  try {
    return readdirSync(DRI_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw errorFromFs(err);
  }
}

/** Opens a DRM node read-write; fails with ENODEV if the path is not a DRM character device. */
function openNode(path: string): number {
  const fd = native.open(path, fsConstants.O_RDWR);
  try {
    const st = native.fstat(fd);
    if ((st.mode & S_IFMT) !== S_IFCHR || st.rdevMajor !== DRM_MAJOR) {
      throw new ExplicitSyncError(-19, 'open', {
        detail: path,
        message: `ENODEV: not a DRM device node, open '${path}'`,
      });
    }
    return fd;
  } catch (err) {
    native.close(fd);
    throw err;
  }
}

const NO_DRI_HINT =
  'This machine has no DRM device nodes. To run against real drivers (vgem, virtio_gpu) inside a throwaway VM: ' +
  'npx explicit-sync vm -- <command>';

/**
 * An open DRM device node (/dev/dri/cardN or renderDN). Owns its fd: close() it, or `using` it.
 */
export class Device extends FdResource {
  /** The node's path. */
  readonly path: string;
  /** Primary (card) or render node. */
  readonly kind: NodeKind;
  /** Driver name and version (DRM_IOCTL_VERSION). */
  readonly driver: DriverInfo;
  /** Capabilities (DRM_IOCTL_GET_CAP). */
  readonly caps: DeviceCaps;

  /** @internal Use Device.open(). Takes ownership of fd. */
  protected constructor(fd: number, path: string) {
    super(fd, `Device ${path}`);
    this.path = path;
    this.kind = nodeKind(path.slice(path.lastIndexOf('/') + 1)) ?? 'primary';
    try {
      this.driver = driverInfo(fd);
      this.caps = deviceCaps(fd);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * The /dev/dri/card* and renderD* nodes, with driver and capabilities, card nodes first. Empty
   * on a machine without /dev/dri. Nodes that cannot be opened (permissions) are skipped.
   *
   * Opens render nodes only, so listing never makes this process DRM master: a card node is
   * described through its device's render node (sysfs pairs them; the driver and caps are the
   * device's), and is skipped when that render node cannot be opened. Card nodes of devices
   * without a render node (KMS-only drivers such as vkms or simpledrm) are listed only with
   * `{ openPrimary: true }`, which opens them (and any card node whose render node it could not).
   */
  static list(options?: DeviceListOptions): DeviceInfo[] {
    const opts = toOptions(options, LIST_KEYS);
    if (opts.openPrimary !== undefined && typeof opts.openPrimary !== 'boolean')
      throw new InvalidArgTypeError('options.openPrimary', 'of type boolean', opts.openPrimary);
    const names = driNodeNames();
    const byNumber = (a: string, b: string): number => nodeNumber(a) - nodeNumber(b);
    const renders = names.filter((n) => nodeKind(n) === 'render').sort(byNumber);
    const cards = names.filter((n) => nodeKind(n) === 'primary').sort(byNumber);
    const described = new Map<string, { driver: DriverInfo; caps: DeviceCaps }>();
    for (const name of renders) {
      const d = describe(`${DRI_DIR}/${name}`);
      if (d !== undefined) described.set(name, d);
    }
    const out: DeviceInfo[] = [];
    for (const name of cards) {
      const path = `${DRI_DIR}/${name}`;
      const render = renderNodeOf(name);
      let d: { driver: DriverInfo; caps: DeviceCaps } | undefined;
      const r = render === undefined ? undefined : described.get(render);
      if (r !== undefined) d = { driver: { ...r.driver }, caps: { ...r.caps, prime: { ...r.caps.prime } } };
      else if (opts.openPrimary === true) d = describe(path);
      if (d !== undefined) out.push({ path, kind: 'primary', ...d });
    }
    for (const name of renders) {
      const d = described.get(name);
      if (d !== undefined) out.push({ path: `${DRI_DIR}/${name}`, kind: 'render', ...d });
    }
    return out;
  }

  /**
   * Opens a node by path, or the first node that fits the options (render nodes first unless
   * `render: false`; `require: ['dumb']` takes card nodes only). Throws NoDeviceError listing
   * what was found when nothing fits, or saying that the machine has no DRM devices at all.
   *
   * Choosing by options opens no card node but the one it returns, except when nothing else fits a
   * request that only a card node can meet (`render: false`, 'dumb', a `driver`, or any node where
   * there are only card nodes): then card nodes of devices without a render node are opened to ask
   * their driver (see {@link list}).
   */
  static open(pathOrOptions: string | DeviceOpenOptions = {}): Device {
    if (typeof pathOrOptions === 'string') {
      const path = toPath(pathOrOptions);
      return new Device(openNode(path), path);
    }
    const opts = toOptions(pathOrOptions, OPEN_KEYS, 'pathOrOptions');
    const drivers = opts.driver === undefined ? undefined : typeof opts.driver === 'string' ? [opts.driver] : opts.driver;
    if (drivers !== undefined && (!Array.isArray(drivers) || drivers.some((d) => typeof d !== 'string')))
      throw new InvalidArgTypeError('options.driver', 'a string or an array of strings', opts.driver);
    const require = opts.require === undefined ? [] : opts.require;
    if (!Array.isArray(require)) throw new InvalidArgTypeError('options.require', 'an array', require);
    for (const r of require) toEnum(r, 'options.require[]', REQUIREMENTS);
    if (opts.render !== undefined && typeof opts.render !== 'boolean')
      throw new InvalidArgTypeError('options.render', 'of type boolean', opts.render);

    const fits = (list: DeviceInfo[]): DeviceInfo[] =>
      list
        .filter((d) => opts.render === undefined || (d.kind === 'render') === opts.render)
        // DUMB_CREATE is not a render-node ioctl, whatever DRM_CAP_DUMB_BUFFER says there.
        .filter((d) => !require.includes('dumb') || d.kind === 'primary')
        .filter((d) => drivers === undefined || drivers.includes(d.driver.name))
        .filter((d) => require.every((r) => hasRequirement(d.caps, r)))
        .sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'render' ? -1 : 1));
    let found = Device.list();
    let candidates = fits(found);
    const cardOnly = opts.render === false || require.includes('dumb') || drivers !== undefined || found.length === 0;
    if (candidates.length === 0 && cardOnly) {
      found = Device.list({ openPrimary: true });
      candidates = fits(found);
    }
    if (found.length === 0) throw new NoDeviceError(`ENODEV: no DRM device found in ${DRI_DIR}. ${NO_DRI_HINT}`, []);
    if (candidates.length === 0) {
      const want = [
        drivers ? `driver ${drivers.join('|')}` : undefined,
        require.length ? `capabilities ${require.join(', ')}` : undefined,
        opts.render === undefined ? undefined : opts.render ? 'a render node' : 'a primary node',
      ].filter((x) => x !== undefined);
      const list = found.map((d) => `${d.path} (${d.driver.name}${describeCaps(d.caps)})`);
      throw new NoDeviceError(
        `ENODEV: no DRM device with ${want.join(' and ') || 'any node'}; found: ${list.join('; ')}`,
        list,
      );
    }
    return Device.open(candidates[0]!.path);
  }

  /**
   * @internal The device fd for this library's other objects (syncobjs, buffers). Throws
   * ClosedError naming `call` once the device is closed.
   */
  [kDeviceFd](call: string): number {
    return this.openFd(call);
  }

  /** @internal See {@link kDeviceCloseHooks}. A hook removes itself when it no longer needs to run. */
  readonly [kDeviceCloseHooks] = new Set<() => void>();

  protected override beforeClose(): void {
    for (const hook of [...this[kDeviceCloseHooks]]) {
      try {
        hook();
      } catch {
        // A hook only rejects waits and frees its own fds; closing the device must go on.
      }
    }
    this[kDeviceCloseHooks].clear();
  }

  /**
   * `await using device = Device.open()`: closes the device like close(), so that pending waits on
   * its timelines and syncobjs reject with ClosedError, and resolves once those rejections have
   * been delivered (their handlers ran): after it nothing of this device is pending.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const pending = this[kDeviceCloseHooks].size > 0;
    this[Symbol.dispose]();
    if (pending) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** @internal */
  toString(): string {
    return `Device(${this.path}, ${this.driver.name})`;
  }
}

/**
 * Driver and caps of the node at `path`, read from its own fd; undefined when it cannot be opened
 * (permissions, not a DRM node). Running out of fds (EMFILE, ENFILE) is thrown, not skipped.
 */
function describe(path: string): { driver: DriverInfo; caps: DeviceCaps } | undefined {
  let fd: number;
  try {
    fd = openNode(path);
  } catch (err) {
    rethrowIfOutOfFds(err);
    return undefined;
  }
  try {
    return { driver: driverInfo(fd), caps: deviceCaps(fd) };
  } finally {
    native.close(fd);
  }
}

function describeCaps(caps: DeviceCaps): string {
  const names = [caps.syncobj && 'syncobj', caps.timeline && 'timeline', caps.prime.export && 'prime', caps.dumbBuffer && 'dumb'];
  const have = names.filter((n): n is string => typeof n === 'string');
  return have.length ? `: ${have.join(', ')}` : ': no sync caps';
}
