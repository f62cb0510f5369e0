/**
 * Programmatic API of the VM runner: boot the test VM, run one command in it, report its status.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ARCHES, type ArchProfile, type GuestArch } from './arch';
import { ensureArm64Root, guestNodeSpec, type GuestRoot } from './arm64-root';
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_SEC, type KvmMode } from './args';
import { defaultCacheRoot, processAlive } from './cache';
import { deadlineAt, formatSeconds, handshakeMs, remainingMs, timerDelay } from './deadline';
import { renderRunScript, selectGuestEnv } from './guest-env';
import { chooseAccel, kvmOpenable, readVerdict, verdictFile, writeVerdict, type AccelPlan } from './kvm';
import type { GuestModules } from './initramfs';
import { DEFAULT_KERNEL, type Kernel, type KernelChoice, type ProvisionContext } from './kernel';
import { GUEST_DRIVERS, kernelDrivers } from './modules';
import { OOT_RECIPES } from './modules-oot';
import { ensureOotModules } from './oot-build';
import { aptFor, checkTools, ensureKernel, ensureVmImage, VmSetupError, type VmImage } from './provision';
import { bootQemu, kernelCmdline, type Accel, type BootResult } from './qemu';
import { rewriteLocalNpx } from './npx';

export { VmSetupError } from './provision';
export type { KvmMode } from './args';

/** Options of runInVm(). */
export interface RunInVmOptions {
  /** argv of the command; it runs in `cwd` with stdin from /dev/null and stderr merged into stdout. */
  command: string[];
  /** Working directory in the guest, the same absolute path as on the host (default process.cwd()). */
  cwd?: string;
  /** Bound on the whole run including provisioning (default 900 s). */
  timeoutSec?: number;
  kvm?: KvmMode;
  /**
   * Extra guest variables, set after the automatically forwarded ones (EXPLICIT_SYNC_*, CI, TERM,
   * NO_COLOR, FORCE_COLOR, NODE_OPTIONS).
   */
  env?: Record<string, string>;
  /** No progress messages on stderr (failures are still reported there). */
  quiet?: boolean;
  /** Receives the command's output as it arrives (default: written to stdout). */
  onOutput?: (chunk: string) => void;
  memoryMiB?: number;
  cpus?: number;
  /** Aborting kills the VM; runInVm then rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Testing hook: make the first boot fail the way a rare TCG boot does (a kernel panic before the
   * command starts), to exercise the runner's one re-boot. The CLI sets it from
   * EXPLICIT_SYNC_VM_FAULT=boot-panic.
   */
  faultFirstBoot?: 'boot-panic';
  /**
   * Build (once, cached) and load vkms, a third DRM device with KMS (default true). When it cannot
   * be built the run warns and goes on without it; the guest's EXPLICIT_SYNC_VM_VKMS says which.
   */
  vkms?: boolean;
  /** The kernel to boot (default the 6.12 series' newest release). */
  kernel?: KernelChoice;
  /**
   * The guest's architecture (default x64). arm64 boots Debian's arm64 kernel under
   * qemu-system-aarch64 (TCG) with a userspace of its own (arm64-root.ts); its Node is the host's
   * major release unless $EXPLICIT_SYNC_VM_NODE says otherwise.
   */
  arch?: GuestArch;
}

/** How the run ended: the command exited, or the VM was stopped or failed before it could. */
export type RunInVmReason = 'exited' | 'timeout' | 'panic' | 'no-marker';

/** What runInVm() resolves to. */
export interface RunInVmResult {
  /** The command's status; 124 on timeout; 125 on a panic or a guest that ended without a status. */
  exitCode: number;
  reason: RunInVmReason;
  /** From starting QEMU to the command starting (the last boot, if KVM fell back to TCG). */
  bootMs?: number;
}

/** Exit status of a run that timed out (as timeout(1)), and of a guest that failed. */
export const EXIT_TIMEOUT = 124;
export const EXIT_GUEST_FAILURE = 125;

const TAG = '[explicit-sync vm]';

/** Creates the per-run directory (run.sh + cwd) that the guest's /init reads over 9p. */
function makeRunDir(cache: string, nonce: string, script: string, cwd: string): string {
  const runs = path.join(cache, 'runs');
  fs.mkdirSync(runs, { recursive: true });
  // Leftovers of runs that were killed: their names start with a pid that no longer exists.
  for (const name of fs.readdirSync(runs)) {
    const pid = Number.parseInt(name, 10);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) {
      fs.rmSync(path.join(runs, name), { recursive: true, force: true });
    }
  }
  const dir = path.join(runs, `${process.pid}-${nonce}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'run.sh'), script);
  fs.writeFileSync(path.join(dir, 'cwd'), `${cwd}\n`);
  return dir;
}

/** Boots the VM once or, when KVM fails its handshake under --kvm auto, twice. */
async function boot(
  cache: string,
  image: VmImage,
  runDir: string,
  nonce: string,
  opts: RunInVmOptions,
  deadlineMs: number,
  progress: (m: string) => void,
  extraCmdline: readonly string[] = [],
): Promise<BootResult> {
  const verdictPath = verdictFile(cache, os.release());
  const arch = ARCHES[opts.arch ?? 'x64'];
  let plan: AccelPlan;
  try {
    if (!arch.kvm && opts.kvm === 'on') throw new Error(`--kvm on: KVM cannot run an ${arch.arch} guest on this host`);
    plan = arch.kvm ? chooseAccel(opts.kvm ?? 'auto', kvmOpenable(), readVerdict(verdictPath)) : { first: 'tcg', fallback: false };
  } catch (err) {
    throw new VmSetupError((err as Error).message);
  }
  const launch = (accel: Accel): Promise<BootResult> => {
    progress(`booting (${accel})`);
    const hs = handshakeMs(deadlineMs, Date.now());
    return bootQemu(
      {
        kernel: image.kernel.vmlinuz, initrd: image.initrd, accel, arch: arch.arch,
        memoryMiB: opts.memoryMiB ?? DEFAULT_MEMORY_MIB, cpus: opts.cpus ?? DEFAULT_CPUS,
        append: [kernelCmdline(runDir, nonce, remainingMs(deadlineMs, Date.now()) / 1000, arch.arch), ...extraCmdline].join(' '),
      },
      nonce,
      {
        deadlineMs,
        ...(accel === 'kvm' && !hs.cutByDeadline ? { handshakeMs: hs.ms } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        onOutput: opts.onOutput ?? ((text) => void process.stdout.write(text)),
        onInit: () => {
          if (accel === 'kvm' && plan.fallback) writeVerdict(verdictPath, 'ok');
        },
        onReady: (ms) => progress(`guest up in ${formatSeconds(ms)}`),
        onWarning: (message) => void process.stderr.write(`${TAG} warning: ${message}\n`),
      },
    );
  };
  const first = await launch(plan.first);
  if (first.outcome.kind !== 'kvm-failed') return first;
  if (!plan.fallback) throw new VmSetupError(`KVM failed: ${first.outcome.why}`);
  writeVerdict(verdictPath, 'broken');
  progress(`KVM does not work here (${first.outcome.why}); falling back to TCG and remembering that in ${verdictPath}`);
  return launch('tcg');
}

/**
 * The guest's drivers for `kernel`, read from its packages: in-tree modules, built-in drivers, and
 * the out-of-tree builds (vkms, sw_sync) of those it lacks. A driver the kernel lacks and that
 * cannot be built is reported (a warning, even with `quiet`, for one that should have been built)
 * and the run goes on; the guest's EXPLICIT_SYNC_VM_DRIVERS says what loaded.
 */
async function guestModules(kernel: Kernel, ctx: ProvisionContext, signal: AbortSignal, vkms: boolean, arch: ArchProfile): Promise<GuestModules> {
  const sources = await kernelDrivers(kernel.root, kernel.kver, kernel.config, ctx.tool);
  const modules = GUEST_DRIVERS.filter((d) => sources.get(d.driver) === 'module' && (vkms || d.driver !== 'vkms'))
    .map((d) => ({ module: d.module, driver: d.driver }));
  const builtin = GUEST_DRIVERS.filter((d) => sources.get(d.driver) === 'builtin').map((d) => d.driver);
  const wanted = OOT_RECIPES.filter((r) => sources.get(r.name) === 'absent' && (vkms || r.name !== 'vkms')).map((r) => r.name);
  const oot = wanted.length > 0 ? await ensureOotModules(kernel, wanted, ctx, signal, () => aptFor(ctx, arch.debian)) : { modules: [], failures: [] };
  for (const f of oot.failures) process.stderr.write(`${TAG} warning: booting without ${f.name}, which could not be built: ${f.why}\n`);
  const lacking = GUEST_DRIVERS.filter((d) => sources.get(d.driver) === 'absent' && !oot.modules.some((m) => m.name === d.driver));
  if (lacking.length > 0) ctx.progress(`kernel ${kernel.kver} has no ${lacking.map((d) => d.driver).join(', ')}`);
  return { modules, builtin, extras: oot.modules };
}

/** Shortest time left for which a second boot is worth trying (a TCG boot takes 5–10 s). */
export const REBOOT_MIN_LEFT_MS = 20_000;
/** Boots a run tries at most when each guest dies before the command starts. */
const MAX_BOOTS = 3;

/**
 * Whether a run should boot once more: the guest died (a panic, or QEMU ended without the exit
 * marker) before the command started, so nothing of the command ran and nothing can run twice.
 * A guest that died after the command started is the command's failure, reported as such.
 */
export function shouldBootAgain(result: Pick<BootResult, 'outcome' | 'bootMs'>, leftMs: number): boolean {
  const died = result.outcome.kind === 'panic' || result.outcome.kind === 'no-marker';
  return died && result.bootMs === undefined && leftMs >= REBOOT_MIN_LEFT_MS;
}

/** Kernel command line that makes a boot panic before /init (no initramfs init, no root fs). */
const BOOT_PANIC_CMDLINE = ['rdinit=/explicit-sync-fault-no-such-init', 'root=/dev/explicit-sync-fault'];

/** Explains a failed run on stderr: the guest's boot log when it never started the command. */
function reportFailure(result: BootResult, message: string): void {
  const lines = [`${TAG} ${message}`];
  if (result.bootMs === undefined && result.bootLog.trim()) lines.push(`${TAG} guest console before the failure:`, result.bootLog.trimEnd());
  if (result.stderr.trim()) lines.push(`${TAG} qemu stderr:`, result.stderr.trimEnd());
  process.stderr.write(`${lines.join('\n')}\n`);
}

/**
 * Boots one of Debian's kernels (default 6.12) under QEMU with the drivers it has of vgem,
 * virtio-gpu, vkms, sw_sync, udmabuf and the system dma-heap,
 * the host's / mounted read-only as the guest's root, and runs `command` there.
 * Rejects with VmSetupError when the host lacks what the VM needs.
 */
export async function runInVm(options: RunInVmOptions): Promise<RunInVmResult> {
  const started = Date.now();
  const deadlineMs = deadlineAt(started, options.timeoutSec ?? DEFAULT_TIMEOUT_SEC);
  const progress = (message: string): void => {
    if (!options.quiet) process.stderr.write(`${TAG} ${message}\n`);
  };
  if (options.command.length === 0) throw new TypeError('runInVm: command must not be empty');
  const arch = ARCHES[options.arch ?? 'x64'];
  checkTools(arch);

  const cache = defaultCacheRoot();
  if (/\s/.test(cache)) throw new VmSetupError(`the cache path ${JSON.stringify(cache)} contains whitespace; set EXPLICIT_SYNC_CACHE`);
  const cwd = path.resolve(options.cwd ?? process.cwd());

  // Provisioning tools are killed at the deadline too.
  const provisioning = new AbortController();
  const deadlineTimer = setTimeout(() => provisioning.abort(), timerDelay(remainingMs(deadlineMs, Date.now())));
  const onUserAbort = (): void => provisioning.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onUserAbort, { once: true });
  let image: VmImage;
  let guest: GuestModules;
  let foreign: GuestRoot | undefined;
  try {
    const ctx: ProvisionContext = { cache, progress, tool: { signal: provisioning.signal } };
    const kernel = await ensureKernel(ctx, provisioning.signal, options.kernel ?? { series: DEFAULT_KERNEL }, arch.debian);
    guest = await guestModules(kernel, ctx, provisioning.signal, options.vkms !== false, arch);
    if (arch.arch === 'arm64') {
      let spec: string;
      try {
        spec = guestNodeSpec(process.env);
      } catch (err) {
        throw new VmSetupError((err as Error).message);
      }
      foreign = await ensureArm64Root(ctx, provisioning.signal, spec);
      progress(`arm64 userspace: ${foreign.dir} (Node ${foreign.node})`);
    }
    image = await ensureVmImage(ctx, provisioning.signal, kernel, guest, foreign);
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (err instanceof VmSetupError) throw err;
    if (!provisioning.signal.aborted) throw new VmSetupError(`cannot provision the VM: ${(err as Error).message}`, { cause: err });
    process.stderr.write(`${TAG} timed out after ${formatSeconds(Date.now() - started)} while provisioning the VM\n`);
    return { exitCode: EXIT_TIMEOUT, reason: 'timeout' };
  } finally {
    clearTimeout(deadlineTimer);
    options.signal?.removeEventListener('abort', onUserAbort);
  }

  const nonce = randomBytes(8).toString('hex');
  // The command sees a tty exactly when our own output goes to one.
  const tty = options.onOutput === undefined && process.stdout.isTTY === true;
  const npx = rewriteLocalNpx(options.command, cwd);
  if (npx !== undefined) progress(npx.note);
  const script = renderRunScript({
    command: npx?.command ?? options.command,
    cwd,
    env: selectGuestEnv(process.env, {
      EXPLICIT_SYNC_VM_VKMS: [...guest.modules.map((m) => m.driver), ...guest.builtin, ...guest.extras.map((e) => e.name)].includes('vkms') ? '1' : '0',
      EXPLICIT_SYNC_VM_KERNEL: image.kernel.kver,
      ...options.env,
    }),
    tty,
    ...(tty ? { size: { columns: process.stdout.columns, rows: process.stdout.rows } } : {}),
  });
  const runDir = makeRunDir(cache, nonce, script, cwd);
  try {
    const fault = options.faultFirstBoot === 'boot-panic' ? BOOT_PANIC_CMDLINE : [];
    let result = await boot(cache, image, runDir, nonce, options, deadlineMs, progress, fault);
    // Up to MAX_BOOTS in all: a second boot can die the same way (the fault-injection test saw it).
    for (let boots = 1; boots < MAX_BOOTS && shouldBootAgain(result, remainingMs(deadlineMs, Date.now())); boots++) {
      // Seen under TCG in about 1 of 9 boots: the guest kernel crashes before /init runs the
      // command. Said even with `quiet`: the first boot's log is part of the story.
      reportFailure(
        result,
        `the guest ${result.outcome.kind === 'panic' ? 'kernel panicked' : 'ended'} while booting, before the command started: booting once more`,
      );
      // The image may have been pruned meanwhile by another run: look (and build) again.
      image = await ensureVmImage({ cache, progress, tool: {} }, options.signal ?? new AbortController().signal, image.kernel, guest, foreign);
      result = await boot(cache, image, runDir, nonce, options, deadlineMs, progress);
    }
    const { outcome } = result;
    const bootMs = result.bootMs !== undefined ? { bootMs: result.bootMs } : {};
    switch (outcome.kind) {
      case 'exited':
        progress(`command exited with status ${outcome.code} after ${formatSeconds(Date.now() - started)} in total`);
        return { exitCode: outcome.code, reason: 'exited', ...bootMs };
      case 'timeout':
        reportFailure(result, `timed out after ${formatSeconds(Date.now() - started)} (--timeout); killed the VM`);
        return { exitCode: EXIT_TIMEOUT, reason: 'timeout', ...bootMs };
      case 'panic':
        reportFailure(result, 'the guest kernel panicked');
        return { exitCode: EXIT_GUEST_FAILURE, reason: 'panic', ...bootMs };
      case 'no-marker':
        reportFailure(result, `QEMU ended (${outcome.qemuStatus}) without the command's exit status`);
        return { exitCode: EXIT_GUEST_FAILURE, reason: 'no-marker', ...bootMs };
      case 'aborted':
        throw options.signal?.reason ?? new Error('aborted');
      case 'kvm-failed':
        throw new VmSetupError(`KVM failed: ${outcome.why}`);
    }
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}
