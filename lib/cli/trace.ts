/**
 * `explicit-sync trace [-o FILE] -- <command> [args…]`: runs the command with the flight recorder
 * on in every Node process it starts (NODE_OPTIONS `--require` of lib/trace/preload.ts), then
 * merges their traces into one Chrome JSON trace file for Perfetto (ui.perfetto.dev).
 * @module
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChromeTrace, mergeChromeTraces } from '../trace/perfetto';
import { CliCommand, registerCommand } from './registry';

export const TRACE_USAGE = `Usage: explicit-sync trace [-o FILE] -- <command> [args...]

Runs <command> with explicit-sync's flight recorder on in every Node process it starts, and
writes one Chrome JSON trace (open it in https://ui.perfetto.dev or chrome://tracing): a track
per timeline, syncobj, dma-buf and sync_file source, slices for waits, instants for signals,
flow arrows acquire -> commit -> flip -> release.

Options:
  -o, --output FILE  where to write the trace (default: explicit-sync.trace.json)
  -h, --help         this help

Exit status: the command's.`;

/** A Node `--require` option for NODE_OPTIONS (paths with spaces quoted). */
function requireOption(path: string): string {
  return `--require ${/\s/.test(path) ? JSON.stringify(path) : path}`;
}

async function runTrace(argv: readonly string[]): Promise<number> {
  let output = 'explicit-sync.trace.json';
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${TRACE_USAGE}\n`);
      return 0;
    }
    if ((a === '-o' || a === '--output') && argv[i + 1] !== undefined) output = argv[++i]!;
    else {
      process.stderr.write(`explicit-sync trace: unknown option ${JSON.stringify(a)}\n\n${TRACE_USAGE}\n`);
      return 2;
    }
  }
  const command = argv.slice(i);
  if (command.length === 0) {
    process.stderr.write(`explicit-sync trace: no command given\n\n${TRACE_USAGE}\n`);
    return 2;
  }
  const parts = mkdtempSync(join(tmpdir(), 'explicit-sync-trace-'));
  try {
    const preload = join(__dirname, '..', 'trace', 'preload.js');
    const env = {
      ...process.env,
      EXPLICIT_SYNC_TRACE_DIR: parts,
      NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} ${requireOption(preload)}`.trim(),
    };
    const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit', env });
    const code = await new Promise<number>((done) => {
      child.on('error', (err) => {
        process.stderr.write(`explicit-sync trace: ${err.message}\n`);
        done(127);
      });
      child.on('exit', (status, signal) => done(status ?? (signal !== null ? 128 + 15 : 1)));
    });
    const traces = readdirSync(parts)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(parts, f), 'utf8')) as ChromeTrace);
    const merged = mergeChromeTraces(traces);
    writeFileSync(output, JSON.stringify(merged));
    const n = merged.traceEvents.length;
    process.stderr.write(`[explicit-sync trace] ${n} events from ${traces.length} process(es) in ${resolve(output)}\n`);
    return code;
  } finally {
    rmSync(parts, { recursive: true, force: true });
  }
}

/** The `trace` subcommand. */
export const traceCommand: CliCommand = registerCommand({
  name: 'trace',
  summary: 'run a command with the flight recorder on; write a Perfetto-loadable trace (-o FILE)',
  run: runTrace,
});
