/**
 * Mode objects: connectors, CRTCs and planes with their properties by name, their modes, and the
 * output (connector, CRTC, primary plane, mode) that {@link KmsDevice.pickOutput} picks.
 * @module
 */
import type { KmsDevice } from './device';
import { K, NativeKms, NativeMode } from './native';
import { InvalidArgValueError } from '../validate';

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

export function toMode(m: NativeMode): KmsMode {
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
