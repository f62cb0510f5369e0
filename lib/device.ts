/**
 * DRM device nodes: discovery (DRM_IOCTL_VERSION, DRM_IOCTL_GET_CAP) and the Device object that
 * owns an open node's fd.
 * @module
 */
import { constants as fsConstants, readdirSync } from 'node:fs';
import { ExplicitSyncError, NoDeviceError } from './errors';
import { native } from './native';
import { FdResource } from './resource';
import { InvalidArgTypeError, toEnum, toOptions, toPath } from './validate';

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

/** Options for picking a node by requirement. */
export interface DeviceOpenOptions {
  /** Driver name, or a list of acceptable names. */
  driver?: string | readonly string[];
  /** Capabilities the node must have. */
  require?: readonly Requirement[];
  /** true: render nodes only; false: primary (card) nodes only; default: either, render first. */
  render?: boolean;
}

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
   * Every /dev/dri/card* and renderD* node, with driver and capabilities, card nodes first.
   * Empty on a machine without /dev/dri. Nodes that cannot be opened (permissions) are skipped.
   */
  static list(): DeviceInfo[] {
    let names: string[];
    try {
      names = readdirSync(DRI_DIR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const nodes = names
      .filter((n) => nodeKind(n) !== undefined)
      .sort((a, b) => (nodeKind(a) === nodeKind(b) ? nodeNumber(a) - nodeNumber(b) : nodeKind(a) === 'primary' ? -1 : 1));
    const out: DeviceInfo[] = [];
    for (const name of nodes) {
      const path = `${DRI_DIR}/${name}`;
      let fd: number;
      try {
        fd = openNode(path);
      } catch {
        continue;
      }
      try {
        out.push({ path, kind: nodeKind(name)!, driver: driverInfo(fd), caps: deviceCaps(fd) });
      } finally {
        native.close(fd);
      }
    }
    return out;
  }

  /**
   * Opens a node by path, or the first node that fits the options (render nodes first unless
   * `render: false`). Throws NoDeviceError listing what was found when nothing fits, or saying
   * that the machine has no DRM devices at all.
   */
  static open(pathOrOptions: string | DeviceOpenOptions = {}): Device {
    if (typeof pathOrOptions === 'string') {
      const path = toPath(pathOrOptions);
      return new Device(openNode(path), path);
    }
    const opts = toOptions(pathOrOptions, 'pathOrOptions');
    const drivers = opts.driver === undefined ? undefined : typeof opts.driver === 'string' ? [opts.driver] : opts.driver;
    if (drivers !== undefined && (!Array.isArray(drivers) || drivers.some((d) => typeof d !== 'string')))
      throw new InvalidArgTypeError('options.driver', 'a string or an array of strings', opts.driver);
    const require = opts.require === undefined ? [] : opts.require;
    if (!Array.isArray(require)) throw new InvalidArgTypeError('options.require', 'an array', require);
    for (const r of require) toEnum(r, 'options.require[]', REQUIREMENTS);
    if (opts.render !== undefined && typeof opts.render !== 'boolean')
      throw new InvalidArgTypeError('options.render', 'of type boolean', opts.render);

    const found = Device.list();
    if (found.length === 0) throw new NoDeviceError(`ENODEV: no DRM device found in ${DRI_DIR}. ${NO_DRI_HINT}`, []);
    const candidates = found
      .filter((d) => opts.render === undefined || (d.kind === 'render') === opts.render)
      .filter((d) => drivers === undefined || drivers.includes(d.driver.name))
      .filter((d) => require.every((r) => hasRequirement(d.caps, r)))
      .sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'render' ? -1 : 1));
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

  /** @internal */
  toString(): string {
    return `Device(${this.path}, ${this.driver.name})`;
  }
}

function describeCaps(caps: DeviceCaps): string {
  const names = [caps.syncobj && 'syncobj', caps.timeline && 'timeline', caps.prime.export && 'prime', caps.dumbBuffer && 'dumb'];
  const have = names.filter((n): n is string => typeof n === 'string');
  return have.length ? `: ${have.join(', ')}` : ': no sync caps';
}
