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
 *
 * The code lives in lib/kms/, one file a seam: native.ts (the binding's KMS family, fourcc),
 * objects.ts (connectors, CRTCs, planes, properties, modes), framebuffer.ts, atomic.ts (requests
 * and their blobs), flips.ts (flip bookkeeping and the event pump) and device.ts (KmsDevice);
 * lib/kms/internal.ts holds the keys they share. This module is what the rest of the library and
 * the tests import.
 * @module
 */
export { fourcc, FORMAT_XRGB8888, FORMAT_ARGB8888 } from './kms/native';
export { KmsObject, KmsConnector, KmsCrtc, KmsPlane } from './kms/objects';
export type { KmsMode, KmsProperty, KmsOutput } from './kms/objects';
export { KmsFramebuffer } from './kms/framebuffer';
export type { KmsDumbOptions, KmsImportOptions } from './kms/framebuffer';
export { KmsAtomicRequest } from './kms/atomic';
export type { KmsCommitOptions, KmsCommitResult } from './kms/atomic';
export { kPumpFault, FlipTable, EVENT_FLIP_COMPLETE } from './kms/flips';
export type { KmsFlipEvent, FlipBound } from './kms/flips';
export { KmsDevice } from './kms/device';
export type { KmsOpenOptions } from './kms/device';
