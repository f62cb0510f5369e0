/**
 * @internal Keys of KmsDevice internals that the other files of lib/kms/ call: module-private to
 * lib/kms/, exported neither from lib/kms.ts nor from the package index.
 * @module
 */

/** Module-private keys of KmsDevice internals used by the other classes here. */
export const kFd: unique symbol = Symbol('explicit-sync.kmsFd');
export const kForget: unique symbol = Symbol('explicit-sync.kmsForget');
export const kDestroyBlobs: unique symbol = Symbol('explicit-sync.kmsDestroyBlobs');
export const kCrtcIds: unique symbol = Symbol('explicit-sync.kmsCrtcIds');
export const kCurrentCrtc: unique symbol = Symbol('explicit-sync.kmsCurrentCrtc');
export const kNextFlip: unique symbol = Symbol('explicit-sync.kmsNextFlip');
export const kAwaitFlip: unique symbol = Symbol('explicit-sync.kmsAwaitFlip');
