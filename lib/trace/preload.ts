/**
 * Loaded with `--require` into every Node process of `explicit-sync trace -- <command>` (through
 * NODE_OPTIONS): records the flight recorder's events from the start and, when the thread exits,
 * writes its trace into the folder the CLI gave (EXPLICIT_SYNC_TRACE_DIR), one file per process
 * and thread, which the CLI merges.
 * @module
 */
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { startTrace, stopTrace } from './recorder';

const dir = process.env['EXPLICIT_SYNC_TRACE_DIR'];
if (dir !== undefined && dir !== '') {
  startTrace();
  process.on('exit', () => {
    const name = `${process.argv[1] ?? process.argv0} (${process.pid}${threadId === 0 ? '' : `, thread ${threadId}`})`;
    stopTrace({ path: join(dir, `${process.pid}-${threadId}.json`), processName: name });
  });
}
