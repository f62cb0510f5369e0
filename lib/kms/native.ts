/**
 * The KMS family of the native binding (native/kms.cc and the GEM helpers of native/vgem.cc), as
 * the other files of lib/kms/ call it, and the fourcc helpers.
 * @module
 */
import { NativeCore, nativeFamily } from '../native';
import { InvalidArgValueError } from '../validate';

export interface NativeMode {
  clock: number; hdisplay: number; hsyncStart: number; hsyncEnd: number; htotal: number; hskew: number;
  vdisplay: number; vsyncStart: number; vsyncEnd: number; vtotal: number; vscan: number;
  vrefresh: number; flags: number; type: number; name: string; raw: Buffer;
}
export interface NativeEvent { type: number; userData?: bigint; tvSec?: number; tvUsec?: number; sequence?: number; crtcId?: number }

/** native/kms.cc (and the GEM helpers of native/vgem.cc). */
export interface NativeKms {
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

export const native = nativeFamily<NativeCore & NativeKms>();
export const K = native.KMS;

/** Builds a DRM fourcc code from its four characters ('XR24' → DRM_FORMAT_XRGB8888). */
export function fourcc(code: string): number {
  if (typeof code !== 'string' || code.length !== 4) throw new InvalidArgValueError('code', 'must be 4 characters', code);
  return (code.charCodeAt(0) | (code.charCodeAt(1) << 8) | (code.charCodeAt(2) << 16) | (code.charCodeAt(3) << 24)) >>> 0;
}

/** DRM_FORMAT_XRGB8888: 32 bpp, little-endian B, G, R, X bytes. Every KMS driver scans it out. */
export const FORMAT_XRGB8888 = fourcc('XR24');
/** DRM_FORMAT_ARGB8888. */
export const FORMAT_ARGB8888 = fourcc('AR24');
