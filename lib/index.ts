/**
 * explicit-sync: Linux explicit GPU synchronisation from Node.js.
 * @packageDocumentation
 */
export * from './errors';
export { U64_MAX, InvalidArgTypeError, InvalidArgValueError, OutOfRangeError } from './validate';
export type { WaitOptions } from './watcher';
export { Device, DRI_DIR } from './device';
export type { DeviceCaps, DeviceInfo, DeviceOpenOptions, DriverInfo, NodeKind, Requirement } from './device';
export * from './sync-file';
export * from './dma-buf';
export * from './syncobj';
export * from './timeline';
