/**
 * The one warning about blocking waits on the main thread: SyncFile#waitSync, Syncobj#waitSync,
 * Timeline#waitSync / waitAllSync / waitAnySync and DmaBuf#beginCpuAccess block the calling
 * thread, and on the main thread that is Node's event loop: no timer, I/O callback or promise runs
 * until they return. Once per process, such a wait whose bound is over
 * {@link BLOCKING_WAIT_THRESHOLD_MS} (or unbounded) emits a process warning with code
 * 'EXPLICIT_SYNC_BLOCKING_WAIT'. Worker threads never warn: blocking there is the point.
 * @module
 * @internal
 */
import { isMainThread } from 'node:worker_threads';

/** A frame at 20 fps: a blocking wait that may last longer on the main thread gets the warning. */
export const BLOCKING_WAIT_THRESHOLD_MS = 50;

let warned = false;

/**
 * Warns (once per process) when `call` is about to block the main thread for up to `boundMs`
 * milliseconds (undefined or Infinity: no bound) and that is over the threshold. Costs one boolean
 * test after the first warning.
 */
export function warnIfBlockingMainThread(call: string, boundMs: number | undefined): void {
  if (warned || !isMainThread) return;
  const unbounded = boundMs === undefined || !Number.isFinite(boundMs);
  if (!unbounded && boundMs <= BLOCKING_WAIT_THRESHOLD_MS) return;
  warned = true;
  process.emitWarning(
    `${call} blocks the main thread, and with it the event loop, ${unbounded ? 'with no bound' : `for up to ${boundMs} ms`}: ` +
      `no timer, I/O or promise callback runs until it returns. On the main thread use the async form ` +
      `(wait(), beginCpuAccessAsync()), or bound the wait to ${BLOCKING_WAIT_THRESHOLD_MS} ms or less; ` +
      `block in a worker thread. (Shown once per process.)`,
    { code: 'EXPLICIT_SYNC_BLOCKING_WAIT' },
  );
}
