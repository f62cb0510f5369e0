// A stand-in Device for host tests of Syncobj / Timeline: its fd accessor fails the test, so a
// test proves that validation happens before any ioctl.
import { Device } from 'explicit-sync';
import { kDeviceCloseHooks, kDeviceFd } from '../../dist/device.js';

/** A Device stand-in whose fd accessor fails the test: nothing may reach an ioctl. */
export function fakeDevice(caps = { syncobj: true, timeline: true }): Device {
  const d = Object.create(Device.prototype) as Device;
  Object.defineProperty(d, 'closed', { value: false, writable: true, configurable: true });
  Object.defineProperty(d, 'caps', { value: { ...caps, dumbBuffer: false, prime: { import: false, export: false } } });
  Object.defineProperty(d, 'path', { value: '/dev/dri/fake' });
  Object.defineProperty(d, 'driver', { value: { name: 'fake', version: '0.0.0', date: '', description: '' } });
  Object.defineProperty(d, kDeviceCloseHooks, { value: new Set() });
  Object.defineProperty(d, kDeviceFd, {
    value: (call: string) => {
      throw new Error(`an ioctl was reached (${call}) before validation failed`);
    },
    configurable: true,
  });
  return d;
}

/** Marks the stand-in closed, so that closing objects on it sends no ioctl. */
export function retire(device: Device): void {
  Object.defineProperty(device, 'closed', { value: true });
}
