// Child node processes for the kernel tests that must not share the mocha process: forced GC
// (whose EXPLICIT_SYNC_LEAK warnings the root hooks would count as failures), process exit,
// worker teardown. A child prints one line `RESULT <json>` with what it measured.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What a child did. */
export interface ChildRun<T = unknown> {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The JSON of its `RESULT` line, if it printed one. */
  result: T | undefined;
  /** Wall time, milliseconds. */
  ms: number;
}

/** Path of a compiled child script in dist-test/vm/children/. */
export function childScript(name: string): string {
  return fileURLToPath(new URL(`./children/${name}.mjs`, import.meta.url));
}

/**
 * Runs `node [nodeArgs] <script> [args]` and collects its output. Killed with SIGKILL after
 * `timeoutMs` (then `signal` is 'SIGKILL'), so that a hang fails the test instead of the run.
 */
export function runChild<T = unknown>(
  script: string,
  args: readonly string[] = [],
  { nodeArgs = [], timeoutMs = 60000, env = {} }: { nodeArgs?: string[]; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ChildRun<T>> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({
        code,
        signal,
        stdout,
        stderr,
        result: line === undefined ? undefined : (JSON.parse(line.slice('RESULT '.length)) as T),
        ms: performance.now() - t0,
      });
    });
  });
}

/** Describes a child's outcome for assertion messages. */
export function describeRun(r: ChildRun): string {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''} after ${Math.round(r.ms)} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
