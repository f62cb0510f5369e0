// Child of lifetimes.test.mts: EMFILE while probing DRM nodes. /dev/dri is listed (readdirSync
// answers from a copy made first, so listing needs no fd) and the fd table is then full, so that
// the first node open fails: the discovery entries must report EMFILE (with the library's fd
// counts), not "no device". Prints `RESULT <json>`: one entry per call.
import fs from 'node:fs';
import { Device, ExplicitSyncError, KmsDevice, VgemDevice } from 'explicit-sync';

const held = Device.list()[0]; // one Device of the library's own, for the counts
const device = Device.open(held!.path);
const names = fs.readdirSync('/dev/dri');
const realReaddir = fs.readdirSync;
// device.js calls fs.readdirSync through the module object: this stands in for /dev/dri only.
(fs as { readdirSync: unknown }).readdirSync = (path: fs.PathLike, ...rest: unknown[]): unknown =>
  path === '/dev/dri' ? [...names] : (realReaddir as (...a: unknown[]) => unknown)(path, ...rest);

const filler: number[] = [];
try {
  while (filler.length < 200_000) filler.push(fs.openSync('/dev/null', 'r'));
} catch (err) {
  if ((err as NodeJS.ErrnoException).code !== 'EMFILE') throw err;
}
const calls: Array<[string, () => unknown]> = [
  ['Device.list', () => Device.list()],
  ['Device.open({ require })', () => Device.open({ require: ['timeline'] })],
  ['VgemDevice.open', () => VgemDevice.open()],
  ['KmsDevice.open({ driver })', () => KmsDevice.open({ driver: 'vkms' })],
];
const out: Record<string, unknown> = {};
for (const [name, call] of calls) {
  try {
    call();
    out[name] = 'returned';
  } catch (err) {
    const e = err as ExplicitSyncError;
    out[name] = { class: e.constructor.name, isExplicit: err instanceof ExplicitSyncError, code: e.code, syscall: e.syscall, message: e.message };
  }
}
for (const fd of filler) fs.closeSync(fd);
(fs as { readdirSync: unknown }).readdirSync = realReaddir;
device.close();
console.log(`RESULT ${JSON.stringify(out)}`);
