/**
 * The compositor kit: the compositor's half of wp_linux_drm_syncobj_v1 on top of the primitives.
 * @module
 */
export { InvalidStateError, ReleaseHold, ReleasePoint } from './release-point';
export type { AddTimelinePointOptions, ReleaseOutcome } from './release-point';
export { SYNCOBJ_PROTOCOL_ERRORS, SyncobjProtocolError } from './protocol';
export type { SyncobjProtocolErrorName } from './protocol';
export { SurfaceCommit, SurfaceSync } from './surface-sync';
export type { AttachOptions, CommitOutcome, SurfaceSyncOptions, SyncPoint } from './surface-sync';
export { ScanoutReleases } from './scanout';
