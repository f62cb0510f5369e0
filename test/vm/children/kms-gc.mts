// Child of kms-lifetimes.test.mts (run with --expose-gc --no-warnings): atomic requests with a
// MODE_ID blob dropped without close() or a successful commit, then collected by a forced GC.
// Prints `RESULT <json>`: how many of their blobs the kernel says are gone (GETPROPBLOB → ENOENT),
// how many objects EXPLICIT_SYNC_LEAK warnings reported, and (after the device closed) that none came back.
import { ExplicitSyncError, KmsDevice } from 'explicit-sync';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

// Leak warnings are rate-limited summaries: `count` says how many objects each one reports.
let leaked = 0;
process.on('warning', (w: Error & { code?: string; count?: number }) => {
  if (w.code === 'EXPLICIT_SYNC_LEAK') leaked += w.count ?? 1;
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const N = Number(process.argv[2] ?? 40);
const dev = KmsDevice.open({ driver: 'vkms' });
const out = dev.pickOutput({ mode: '800x600' });
const ids: number[] = [];
(() => {
  for (let i = 0; i < N; i++) ids.push(...dev.atomic().modeset(out).blobs);
})();
const isGone = (id: number): boolean => {
  try {
    dev.blob(id);
    return false;
  } catch (err) {
    if (err instanceof ExplicitSyncError && err.code === 'ENOENT') return true;
    throw err;
  }
};
for (let i = 0; i < 200 && leaked < N; i++) {
  gc();
  await sleep(25);
}
const gone = ids.filter(isGone).length;
dev.close();
const probe = KmsDevice.open({ driver: 'vkms' });
const afterCloseGone = ids.filter((id) => {
  try {
    probe.blob(id);
    return false;
  } catch {
    return true;
  }
}).length;
probe.close();
console.log(`RESULT ${JSON.stringify({ n: N, gone, warnings: leaked, afterCloseGone })}`);
