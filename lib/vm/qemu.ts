/**
 * One QEMU boot: its command line, and supervision of the process until it ends.
 *
 * Invariants: QEMU never sees the terminal (stdin is /dev/null, no monitor, no display, the only
 * character device is the guest's serial console on stdout), and every way a boot ends — exit
 * marker, deadline, failed KVM handshake, panic, abort — ends with the process gone: whenever we
 * stop waiting for it we SIGKILL it (a failed KVM guest hangs and ignores gentler signals).
 */
import { spawn } from 'node:child_process';
import { ARCHES, type GuestArch } from './arch';
import { ConsoleParser } from './console';
import { POWEROFF_GRACE_MS, remainingMs, timerDelay } from './deadline';
import { findExecutableOnPath, toolEnv, toolPath } from './tools';

/** The QEMU accelerator. */
export type Accel = 'kvm' | 'tcg';

/** One boot's machine. */
export interface QemuConfig {
  kernel: string;
  initrd: string;
  accel: Accel;
  memoryMiB: number;
  cpus: number;
  /** Kernel command line. */
  append: string;
  /** The guest's architecture (default x64). */
  arch?: GuestArch;
}

/**
 * The guest kernel's command line; `runDir` must not contain whitespace (checked by the caller).
 * `timeoutSec` is what is left of the run's bound: the guest's /init powers off when it passes,
 * counted from its own start, so the guest ends even when no runner is left to kill QEMU.
 */
export function kernelCmdline(runDir: string, nonce: string, timeoutSec?: number, arch: GuestArch = 'x64'): string {
  const timeout = timeoutSec !== undefined ? [`es.timeout=${Math.max(1, Math.ceil(timeoutSec))}`] : [];
  return [`console=${ARCHES[arch].console}`, 'quiet', 'loglevel=3', 'panic=-1', 'mitigations=off', ...timeout, `es.run=${runDir}`, `es.nonce=${nonce}`].join(' ');
}

/** QEMU's argv for `c`; nothing in it reads the terminal. */
export function qemuArgs(c: QemuConfig): string[] {
  return [
    '-nodefaults', '-no-user-config',
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-no-reboot',
    ...ARCHES[c.arch ?? 'x64'].machine,
    ...(c.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-m', String(c.memoryMiB), '-smp', String(c.cpus),
    '-kernel', c.kernel, '-initrd', c.initrd, '-append', c.append,
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-gpu-pci',
  ];
}

/**
 * How QEMU is started so that it dies with the runner, even a SIGKILLed one: util-linux's
 * `setpriv --pdeathsig KILL` sets PR_SET_PDEATHSIG and execs a shell that checks the runner is
 * still its parent (closing the window between fork and prctl) and execs QEMU, so the child's pid
 * is QEMU's. Without setpriv, QEMU is started directly: `warning` says what that costs.
 */
export function qemuCommand(args: readonly string[], qemu: string, setpriv: string | undefined, runnerPid: number): {
  file: string;
  args: string[];
  warning?: string;
} {
  if (setpriv === undefined) {
    return {
      file: qemu,
      args: [...args],
      warning: 'setpriv (util-linux) not found: if this runner is killed, QEMU lives on until the guest powers off at --timeout',
    };
  }
  const script = 'test "$PPID" = "$1" || exit 125; shift; exec "$@"';
  return { file: setpriv, args: ['--pdeathsig', 'KILL', '/bin/sh', '-c', script, 'sh', String(runnerPid), qemu, ...args] };
}

/**
 * How a boot ended. `kvm-failed` only happens when a KVM handshake was requested: QEMU said KVM
 * failed, ended, or showed no sign of the guest's /init within the handshake window.
 */
export type BootOutcome =
  | { kind: 'exited'; code: number }
  | { kind: 'timeout' }
  | { kind: 'panic' }
  | { kind: 'no-marker'; qemuStatus: string }
  | { kind: 'kvm-failed'; why: string }
  | { kind: 'aborted' };

/** How bootQemu() bounds and reports one boot. */
export interface BootOptions {
  deadlineMs: number;
  /** KVM only: the INIT marker must appear within this many ms, else the boot is `kvm-failed`. */
  handshakeMs?: number;
  signal?: AbortSignal;
  onOutput: (text: string) => void;
  /** Called when the guest's /init starts and when the command starts (ms since spawn). */
  onInit?: (ms: number) => void;
  onReady?: (ms: number) => void;
  /** Told when QEMU cannot be tied to this process's life (no setpriv). */
  onWarning?: (message: string) => void;
}

/** What bootQemu() resolves to. */
export interface BootResult {
  outcome: BootOutcome;
  /** Console text before the command started: shown when the boot failed. */
  bootLog: string;
  /** QEMU's own stderr. */
  stderr: string;
  /** Spawn to command start, if it started. */
  bootMs?: number;
}

/** QEMU's words for a KVM that cannot run the guest; after "KVM internal error" it hangs. */
const KVM_ERROR = /KVM internal error|failed to initialize kvm|Could not access KVM kernel module/i;

/** The first line of QEMU's stderr that reports an error, for messages. */
function firstError(stderr: string): string | undefined {
  return stderr.split('\n').find((line) => /error|failed|assert/i.test(line))?.replace(/^qemu-system-\w+: /, '').trim();
}

/** Boots QEMU, streams the command's output, and resolves once the QEMU process is gone. */
export function bootQemu(config: QemuConfig, nonce: string, opts: BootOptions): Promise<BootResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const parser = new ConsoleParser(nonce);
    const cmd = qemuCommand(qemuArgs(config), toolPath(ARCHES[config.arch ?? 'x64'].qemu), findExecutableOnPath('setpriv'), process.pid);
    if (cmd.warning !== undefined) opts.onWarning?.(cmd.warning);
    const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv() });
    let stderr = '';
    let bootMs: number | undefined;
    /** Why we killed QEMU, if we did; the first reason wins. */
    let stopped: BootOutcome | undefined;
    const timers: NodeJS.Timeout[] = [];

    const stop = (why: BootOutcome | undefined): void => {
      if (stopped === undefined && why !== undefined) stopped = why;
      child.kill('SIGKILL');
    };
    const after = (ms: number, fn: () => void): void => {
      timers.push(setTimeout(fn, timerDelay(ms)));
    };
    const onAbort = (): void => stop({ kind: 'aborted' });

    after(remainingMs(opts.deadlineMs, Date.now()), () => stop({ kind: 'timeout' }));
    const handshake = config.accel === 'kvm' ? opts.handshakeMs : undefined;
    if (handshake !== undefined) {
      after(handshake, () => {
        if (parser.phase === 'boot') stop({ kind: 'kvm-failed', why: `no sign of the guest within ${Math.round(handshake / 1000)} s` });
      });
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const { output, events } = parser.push(chunk);
      if (output) opts.onOutput(output);
      for (const event of events) {
        const ms = Date.now() - started;
        if (event === 'init') opts.onInit?.(ms);
        if (event === 'ready') {
          bootMs = ms;
          opts.onReady?.(ms);
        }
        // The guest powers off by itself after the marker or a panic; this only bounds the wait.
        if (event === 'exit' || event === 'panic') after(POWEROFF_GRACE_MS, () => stop(undefined));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      // QEMU hangs after a KVM internal error: kill it now. Before the guest's /init started, that
      // is a failed handshake (fall back to TCG); later, the run just ends without a status.
      if (config.accel === 'kvm' && KVM_ERROR.test(stderr)) {
        const early = handshake !== undefined && parser.phase === 'boot';
        stop(early ? { kind: 'kvm-failed', why: firstError(stderr) ?? 'KVM internal error' } : undefined);
      }
    });
    child.on('error', (err) => {
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      const rest = parser.end();
      if (rest) opts.onOutput(rest);
      let outcome: BootOutcome;
      const status = signal ?? `exit ${code}`;
      if (parser.exitCode !== undefined) outcome = { kind: 'exited', code: parser.exitCode };
      else if (stopped !== undefined) outcome = stopped;
      else if (handshake !== undefined && parser.phase === 'boot') {
        outcome = { kind: 'kvm-failed', why: firstError(stderr) ?? `QEMU ended (${status})` };
      }
      else if (parser.panicked) outcome = { kind: 'panic' };
      else outcome = { kind: 'no-marker', qemuStatus: status };
      resolve({ outcome, bootLog: parser.bootLog, stderr, ...(bootMs !== undefined ? { bootMs } : {}) });
    });
  });
}
