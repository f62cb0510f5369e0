/**
 * explicit-sync: Linux explicit GPU synchronisation from Node.js.
 * @packageDocumentation
 */
export {
  AbortError,
  ClosedError,
  FdLostError,
  ExplicitSyncError,
  FenceError,
  NoDeviceError,
  TimeoutError,
  UnsupportedError,
  errnoCode,
} from './errors';
export type { ExplicitSyncErrorOptions } from './errors';
export { U64_MAX, InvalidArgTypeError, InvalidArgValueError, OutOfRangeError } from './validate';
export type { WaitOptions } from './watcher';
export { Device, DRI_DIR } from './device';
export type { DeviceCaps, DeviceInfo, DeviceListOptions, DeviceOpenOptions, DriverInfo, NodeKind, Requirement } from './device';
export { SyncFile } from './sync-file';
export type { FenceInfo, FenceStatus, MergeOptions, SyncFileInfo, SyncFileWaitOptions, SyncFileWaitSyncOptions } from './sync-file';
export { DmaBuf } from './dma-buf';
export type { DmaBufAccess } from './dma-buf';
export { VgemDevice, VgemBuffer, VgemFence } from './vgem';
export type { VgemBufferOptions, VgemFenceOptions } from './vgem';
export { DmaHeap, Udmabuf, DMA_HEAP_DIR, UDMABUF_PATH } from './dma-heap';
export { SwSyncTimeline, SW_SYNC_PATH } from './sw-sync';
export type { SwSyncFenceOptions } from './sw-sync';
export * from './syncobj';
export * from './timeline';
export { MAX_DEADLINE_AHEAD_NS, monotonicNow } from './clock';
export { KmsDevice, KmsAtomicRequest, KmsConnector, KmsCrtc, KmsFramebuffer, KmsObject, KmsPlane, fourcc, FORMAT_XRGB8888, FORMAT_ARGB8888 } from './kms';
export type { KmsCommitOptions, KmsCommitResult, KmsDumbOptions, KmsFlipEvent, KmsImportOptions, KmsMode, KmsOpenOptions, KmsOutput, KmsProperty } from './kms';
export {
  InvalidStateError,
  ReleaseHold,
  ReleasePoint,
  SYNCOBJ_PROTOCOL_ERRORS,
  ScanoutReleases,
  SurfaceCommit,
  SurfaceSync,
  SyncobjProtocolError,
} from './compositor';
export type { AddTimelinePointOptions, AttachOptions, CommitOutcome, ReleaseOutcome, SurfaceSyncOptions, SyncPoint, SyncobjProtocolErrorName } from './compositor';
export { UnixSocket, TruncatedMessageError, DEFAULT_MAX_FDS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_QUEUED_SENDS } from './unix-socket';
export type { PeerCredentials, SendableFd, UnixSocketOptions } from './unix-socket';
export { UnixServer } from './unix-server';
export type { ListenOptions } from './unix-server';
export { FdMessage, ReceivedFd } from './received-fd';
export { CHANNELS } from './trace/channels';
export type {
  KmsCommitContext,
  KmsFlipContext,
  MergeEvent,
  ObjectEvent,
  ObjectRef,
  ReleaseEvent,
  SignalEvent,
  SyncFileEvent,
  TransferEvent,
  WaitContext,
} from './trace/channels';
export { startTrace, stopTrace, isTracing } from './trace/recorder';
export type { StartTraceOptions, StopTraceOptions } from './trace/recorder';
export type { ChromeTrace, ChromeTraceEvent } from './trace/perfetto';
export { disableInspect, enableInspect, formatInspect, inspect, inspectReportPath, installInspectSignal } from './trace/inspect';
export type { InspectObject, InspectRelease, InspectReport, InspectWait, WaitVerdict } from './trace/inspect';
export { MAX_LABEL_LENGTH } from './trace/labels';

// util.inspect views of every public object (lib/trace/views.ts).
import { installViews } from './trace/views';
import { FdResource as _FdResource } from './resource';
import { SyncobjResource as _SyncobjResource } from './syncobj-core';
import { VgemBuffer as _VgemBuffer, VgemFence as _VgemFence } from './vgem';
import { KmsAtomicRequest as _KmsAtomicRequest, KmsFramebuffer as _KmsFramebuffer, KmsObject as _KmsObject } from './kms';
import {
  ReleaseHold as _ReleaseHold,
  ReleasePoint as _ReleasePoint,
  ScanoutReleases as _ScanoutReleases,
  SurfaceCommit as _SurfaceCommit,
  SurfaceSync as _SurfaceSync,
} from './compositor';
installViews([
  _FdResource, _SyncobjResource, _VgemBuffer, _VgemFence, _KmsAtomicRequest, _KmsFramebuffer, _KmsObject,
  _ReleaseHold, _ReleasePoint, _ScanoutReleases, _SurfaceCommit, _SurfaceSync,
]);
