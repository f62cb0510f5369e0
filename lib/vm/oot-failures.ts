/**
 * Failed out-of-tree module builds, remembered so that a build that failed is not tried again on
 * every run (each try downloads the kernel source, and may make a build root) while nothing it
 * depends on has changed.
 *
 * A failure is keyed by the kernel release, the module and a hash of the build's inputs: the
 * kernel packages' version (which source), the runner's build code (its recipes and patches), and
 * how it builds (the host's gcc, or a build root of which release). It is kept as a log,
 * <cache>/build-failures/<kver>/<module>-<hash>.log, which the run's warning names. A change of any
 * input gives another hash, so the next run tries again; EXPLICIT_SYNC_VM_RETRY_BUILD=1 forces a
 * try with the same inputs. A build that succeeds removes the module's logs for that kernel.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Set to 1 to build again what failed before with the same inputs. */
export const RETRY_BUILD_ENV = 'EXPLICIT_SYNC_VM_RETRY_BUILD';

/** What a module build depends on. */
export interface BuildInputs {
  kver: string;
  /** The kernel packages' Debian version (the source the module is built from). */
  version: string;
  module: string;
  /** How it is built: "host gcc 12", "trixie build root (gcc 14)". */
  builder: string;
  /** The runner's build code (recipes, patches, build root). */
  code: string;
}

/** 16 hex digits of the inputs' SHA-256. */
export function buildInputsHash(inputs: BuildInputs): string {
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

/** The log of a failed build of `module` for `kver` with inputs `hash`. */
export function failureLogPath(cache: string, kver: string, module: string, hash: string): string {
  return path.join(cache, 'build-failures', kver, `${module}-${hash}.log`);
}

const REASON = 'reason: ';

/** A failure recorded before with these inputs: its log and its one-line reason. */
export function readFailure(cache: string, inputs: BuildInputs): { log: string; reason: string } | undefined {
  const log = failureLogPath(cache, inputs.kver, inputs.module, buildInputsHash(inputs));
  let text: string;
  try {
    text = fs.readFileSync(log, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith(REASON));
  return { log, reason: line !== undefined ? line.slice(REASON.length) : 'see the log' };
}

/**
 * One line of an error message for a warning: the first compiler or tool error the message
 * quotes (a failed make's first line is only its long command line), else its first line.
 */
export function failureReason(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.slice(1).find((l) => /\berror\b|\bE: /i.test(l)) ?? lines[0] ?? message;
}

/** The log's text: what was built with what, the reason, and the whole error (the tool's stderr). */
export function renderFailureLog(inputs: BuildInputs, message: string, at: Date): string {
  return [
    `explicit-sync vm: building ${inputs.module} for ${inputs.kver} failed`,
    `kernel packages: ${inputs.version}`,
    `built with: ${inputs.builder}`,
    `inputs: ${buildInputsHash(inputs)}`,
    `at: ${at.toISOString()}`,
    `${REASON}${failureReason(message)}`,
    '',
    message.trimEnd(),
    '',
  ].join('\n');
}

/** Records a failed build; returns its log's path. Call under the cache lock. */
export function recordFailure(cache: string, inputs: BuildInputs, message: string): string {
  const log = failureLogPath(cache, inputs.kver, inputs.module, buildInputsHash(inputs));
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const tmp = `${log}.${process.pid}`;
  fs.writeFileSync(tmp, renderFailureLog(inputs, message, new Date()));
  fs.renameSync(tmp, log);
  return log;
}

/** Forgets every recorded failure of `module` for `kver` (it built). */
export function clearFailures(cache: string, kver: string, module: string): void {
  const dir = path.join(cache, 'build-failures', kver);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const mine = new RegExp(`^${module.replace(/[^\w]/g, '\\$&')}-[0-9a-f]{16}\\.log$`);
  for (const n of names) if (mine.test(n)) fs.rmSync(path.join(dir, n), { force: true });
}
