/**
 * `explicit-sync inspect <pid> [--json]`: the census of a running process that has the hook
 * (started with EXPLICIT_SYNC_INSPECT=1, or that called installInspectSignal()): the CLI sends it
 * SIGUSR2, it writes its report (inspect()) to a file in the temp folder, the CLI prints it.
 * A process without the hook is never signalled (SIGUSR2 would kill it): the CLI checks that it
 * catches the signal first (/proc/PID/status, SigCgt).
 * @module
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { InspectReport, formatInspect, inspectReportPath } from '../trace/inspect';
import { CliCommand, registerCommand } from './registry';

export const INSPECT_USAGE = `Usage: explicit-sync inspect <pid> [--json] [--timeout-ms N]

Prints what explicit-sync holds in a running process: every open object (kind, label, age,
creation site), every pending wait (point, how long, and a verdict: "never submitted",
"submitted, not signalled", "release owed"), the release points it owes, its fds.

The process must have the hook: start it with EXPLICIT_SYNC_INSPECT=1 in its environment (or
have it call installInspectSignal()). The CLI sends it SIGUSR2; it answers with a JSON report in
the temp folder (explicit-sync-inspect-<pid>.json).

Options:
  --json           print the report as JSON
  --timeout-ms N   how long to wait for the answer (default 5000)`;

/** SIGUSR2 is signal 12: bit 11 of /proc/PID/status's SigCgt mask. */
const SIGUSR2_BIT = 1n << 11n;

/** Whether `pid` catches SIGUSR2 (undefined when /proc does not say). */
export function catchesSigusr2(pid: number): boolean | undefined {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : (BigInt(`0x${m[1]!}`) & SIGUSR2_BIT) !== 0n;
  } catch {
    return undefined;
  }
}

async function runInspect(argv: readonly string[]): Promise<number> {
  let json = false;
  let timeoutMs = 5000;
  let pid: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${INSPECT_USAGE}\n`);
      return 0;
    } else if (a === '--json') json = true;
    else if (a === '--timeout-ms' && /^\d+$/.test(argv[i + 1] ?? '')) timeoutMs = Number(argv[++i]);
    else if (/^\d+$/.test(a) && pid === undefined) pid = Number(a);
    else {
      process.stderr.write(`explicit-sync inspect: unexpected argument ${JSON.stringify(a)}\n\n${INSPECT_USAGE}\n`);
      return 2;
    }
  }
  if (pid === undefined) {
    process.stderr.write(`explicit-sync inspect: no pid given\n\n${INSPECT_USAGE}\n`);
    return 2;
  }
  const caught = catchesSigusr2(pid);
  if (caught !== true) {
    process.stderr.write(
      caught === undefined
        ? `explicit-sync inspect: no process ${pid} (or /proc/${pid}/status is not readable)\n`
        : `explicit-sync inspect: process ${pid} has no inspect hook (it does not catch SIGUSR2): start it with EXPLICIT_SYNC_INSPECT=1\n`,
    );
    return 1;
  }
  const path = inspectReportPath(pid);
  rmSync(path, { force: true });
  process.kill(pid, 'SIGUSR2');
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > end) {
      process.stderr.write(`explicit-sync inspect: process ${pid} did not answer within ${timeoutMs} ms (is its event loop blocked?)\n`);
      return 1;
    }
    await sleep(20);
  }
  const text = readFileSync(path, 'utf8');
  rmSync(path, { force: true });
  process.stdout.write(json ? `${text}\n` : formatInspect(JSON.parse(text) as InspectReport));
  return 0;
}

/** The `inspect` subcommand. */
export const inspectCommand: CliCommand = registerCommand({
  name: 'inspect',
  summary: 'print the open objects and pending waits of a running process (EXPLICIT_SYNC_INSPECT=1)',
  run: runInspect,
});
