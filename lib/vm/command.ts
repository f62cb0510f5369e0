/**
 * `explicit-sync vm`: the CLI face of runInVm.
 */
import { CliCommand, registerCommand } from '../cli/registry';
import { parseVmArgs, UsageError, VM_USAGE } from './args';
import { resolveEnvSpecs } from './guest-env';
import { runInVm, VmSetupError } from './index';
import { defaultCacheRoot } from './cache';
import { listKernels } from './list-kernels';

/** Exit statuses for a run interrupted by a signal (128 + signal number, as shells do). */
const SIGNAL_EXIT = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT;
const STOP_SIGNALS = Object.keys(SIGNAL_EXIT) as StopSignal[];

async function runVm(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseVmArgs(argv, process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`explicit-sync vm: ${err.message}\n\n${VM_USAGE}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${VM_USAGE}\n`);
    return 0;
  }
  if (options.listKernels) {
    const progress = (m: string): void => {
      if (!options.quiet) process.stderr.write(`[explicit-sync vm] ${m}\n`);
    };
    process.stdout.write(await listKernels({ cache: defaultCacheRoot(), progress, tool: {} }, new AbortController().signal));
    return 0;
  }

  // Ctrl-C, a TERM or a HUP (the terminal closed) kills the VM and ends with 128 + signal. QEMU
  // also dies by itself if we are SIGKILLed (PR_SET_PDEATHSIG, see qemu.ts).
  const interrupted = new AbortController();
  const onSignal = (signal: StopSignal): void => {
    // After a HUP the terminal may be gone: a failed write must not crash us before QEMU is killed.
    if (signal === 'SIGHUP') process.stderr.on('error', () => undefined);
    interrupted.abort(signal);
  };
  const handlers = STOP_SIGNALS.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.once(s, h);
  try {
    const result = await runInVm({
      command: options.command,
      timeoutSec: options.timeoutSec,
      kvm: options.kvm,
      env: resolveEnvSpecs(process.env, options.env),
      quiet: options.quiet,
      memoryMiB: options.memoryMiB,
      cpus: options.cpus,
      vkms: options.vkms,
      kernel: options.kernel,
      arch: options.arch,
      ...(process.env.EXPLICIT_SYNC_VM_FAULT === 'boot-panic' ? { faultFirstBoot: 'boot-panic' as const } : {}),
      signal: interrupted.signal,
    });
    return result.exitCode;
  } catch (err) {
    const reason: unknown = interrupted.signal.reason;
    if (interrupted.signal.aborted && STOP_SIGNALS.includes(reason as StopSignal)) {
      process.stderr.write(`[explicit-sync vm] interrupted (${reason}); killed the VM\n`);
      return SIGNAL_EXIT[reason as StopSignal];
    }
    if (err instanceof VmSetupError) {
      process.stderr.write(`${err.message.split('\n').map((line) => `[explicit-sync vm] ${line}`).join('\n')}\n`);
      return 1;
    }
    throw err;
  } finally {
    for (const [s, h] of handlers) process.removeListener(s, h);
  }
}

/** The `vm` subcommand. */
export const vmCommand: CliCommand = registerCommand({
  name: 'vm',
  summary: 'run a command in a throwaway VM with vgem, virtio-gpu, udmabuf and dma-heap',
  run: runVm,
});
