/**
 * The system tools the runner drives, how to find them, and one way to run them.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Tool → Debian package that provides it. apt tools are part of any Debian system. */
export const REQUIRED_TOOLS: ReadonlyMap<string, string> = new Map([
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['busybox', 'busybox-static'],
  ['cpio', 'cpio'],
  ['depmod', 'kmod'],
  ['modinfo', 'kmod'],
  ['dpkg', 'dpkg'],
  ['apt-get', 'apt'],
  ['apt-cache', 'apt'],
]);

/** The busybox that goes into the initramfs: it must be the static build (it runs with no libc). */
export const BUSYBOX_PATH = '/bin/busybox';

/** The one command that installs every tool the runner needs. */
export const INSTALL_HINT = 'apt-get install --no-install-recommends qemu-system-x86 busybox-static cpio kmod';

/** Directories searched besides $PATH: depmod and modinfo live in sbin, often absent for non-root. */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Where `name` is found in `dirs` (in order), according to `isExecutable`; undefined if nowhere. */
export function findExecutable(name: string, dirs: readonly string[], isExecutable: (file: string) => boolean): string | undefined {
  for (const dir of dirs) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const searchDirs = (): string[] => [...(process.env['PATH'] ?? '').split(':'), ...EXTRA_DIRS];

/** Absolute path of `name` on $PATH (and the sbin directories), or undefined. */
export function findExecutableOnPath(name: string): string | undefined {
  return findExecutable(name, searchDirs(), isExecutableFile);
}

/** Absolute path of a required tool, or the bare name if it cannot be found (spawn then fails). */
export function toolPath(name: string): string {
  return findExecutable(name, searchDirs(), isExecutableFile) ?? name;
}

/** Whether an ELF image has no PT_INTERP program header, i.e. needs no dynamic loader. */
export function isStaticElf(image: Buffer): boolean {
  if (image.length < 64 || image.readUInt32BE(0) !== 0x7f454c46 || image[4] !== 2 || image[5] !== 1) return false;
  const phoff = Number(image.readBigUInt64LE(0x20));
  const phentsize = image.readUInt16LE(0x36);
  const phnum = image.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > image.length) return false;
    if (image.readUInt32LE(at) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** Human-readable problems with the required tools; empty when everything is there. */
export function missingTools(extra: ReadonlyMap<string, string> = new Map()): string[] {
  const problems: string[] = [];
  for (const [tool, pkg] of [...REQUIRED_TOOLS, ...extra]) {
    if (tool === 'busybox') continue;
    if (findExecutable(tool, searchDirs(), isExecutableFile) === undefined) problems.push(`${tool} (package ${pkg})`);
  }
  let busybox: Buffer | undefined;
  try {
    busybox = fs.readFileSync(BUSYBOX_PATH);
  } catch {
    busybox = undefined;
  }
  if (busybox === undefined) problems.push(`${BUSYBOX_PATH} (package busybox-static)`);
  else if (!isStaticElf(busybox)) problems.push(`a static ${BUSYBOX_PATH} (package busybox-static; the installed one is dynamic)`);
  return problems;
}

/** How runTool() runs a tool. */
export interface ToolOptions {
  cwd?: string;
  /** Aborting kills the tool with SIGKILL. */
  signal?: AbortSignal;
  /** Write the tool's stdout here (a file descriptor) instead of capturing it. */
  stdoutFd?: number;
}

/** A tool's captured output. */
export interface ToolResult {
  stdout: string;
  stderr: string;
}

/** A tool that failed; the message carries its stderr so the user sees why. */
export class ToolError extends Error {
  override name = 'ToolError';
}

/**
 * The environment of the host tools the runner starts (apt, dpkg, make, cpio, QEMU): the caller's,
 * without LD_PRELOAD. The sanitizer run preloads libasan into its tests and so into the runner they
 * start; preloaded into apt's gpgv, it deadlocked (a futex wait, for ever) on a fresh cache's
 * `apt-get update`, and nothing the runner starts needs the caller's preloads.
 */
export function toolEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { LD_PRELOAD: _preload, ...rest } = env;
  return { ...rest, LC_ALL: 'C' };
}

/** Runs a tool to completion without a shell; rejects with ToolError unless it exits 0. */
export function runTool(name: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath(name), args, {
      cwd: opts.cwd,
      signal: opts.signal,
      killSignal: 'SIGKILL',
      stdio: ['ignore', opts.stdoutFd ?? 'pipe', 'pipe'],
      env: toolEnv(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => reject(err.name === 'AbortError' ? err : new ToolError(`${name}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve({ stdout, stderr });
      const detail = stderr.trim() ? `:\n${stderr.trim()}` : '';
      reject(new ToolError(`${[name, ...args].join(' ')} failed (${signal ?? `exit ${code}`})${detail}`));
    });
  });
}
