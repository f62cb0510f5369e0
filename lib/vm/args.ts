/**
 * Command-line parsing for `explicit-sync vm`. Pure: no I/O, no process state.
 */
import { ARCH_ENV, ARCHES, DEFAULT_ARCH, parseArch, type GuestArch } from './arch';
import { DEFAULT_KERNEL, KERNEL_ENV, parseKernelChoice, releaseArch, type KernelChoice } from './kernel';

/** How the VM is accelerated. `auto` tries KVM (with a handshake) and falls back to TCG. */
export type KvmMode = 'auto' | 'on' | 'off';

/** Options of `explicit-sync vm`, after parsing and validation. */
export interface VmCliOptions {
  /** argv of the command to run in the guest; never empty. */
  command: string[];
  /** Bound on the whole run, in seconds (> 0). */
  timeoutSec: number;
  kvm: KvmMode;
  /** Guest memory in MiB. */
  memoryMiB: number;
  cpus: number;
  /** `--env` values in the order given: `NAME` (take the host's value) or `NAME=VALUE`. */
  env: string[];
  quiet: boolean;
  help: boolean;
  /** Build and load vkms (default true; `--no-vkms` turns it off). */
  vkms: boolean;
  /** The kernel to boot: --kernel, else $EXPLICIT_SYNC_VM_KERNEL, else 6.12. */
  kernel: KernelChoice;
  /** `--list-kernels`: say what is cached and what can be fetched, boot nothing. */
  listKernels: boolean;
  /** The guest's architecture: --arch, else $EXPLICIT_SYNC_VM_ARCH, else x64. */
  arch: GuestArch;
}

/** A mistake in the command line; the CLI prints it with the usage text and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Default bound on a whole run, in seconds. */
export const DEFAULT_TIMEOUT_SEC = 900;
/** Default guest memory (MiB) and CPU count. */
export const DEFAULT_MEMORY_MIB = 2048;
export const DEFAULT_CPUS = 2;

/** The environment variable that overrides the default timeout (the flag wins over it). */
export const TIMEOUT_ENV = 'EXPLICIT_SYNC_VM_TIMEOUT';

/** `explicit-sync vm --help`. */
export const VM_USAGE = `Usage: explicit-sync vm [options] -- <command> [args...]

Boots a throwaway Linux VM (Debian's 6.12 by default; vgem, virtio-gpu, vkms, sw_sync,
udmabuf, dma-heap, as far as the kernel has them) with the host filesystem mounted
read-only as its root, runs <command> in the current directory, streams its output
and exits with its exit status.

Options:
  --kernel <k>         6.1, 6.12, newest (Debian 13 backports' newest) or an exact
                       release such as 6.1.0-57-amd64 (default ${DEFAULT_KERNEL}, or $${KERNEL_ENV})
  --list-kernels       list the kernels in the cache and those that can be fetched
  --arch x64|arm64     the guest's architecture (default ${DEFAULT_ARCH}, or $${ARCH_ENV}); arm64
                       is emulated (qemu-system-aarch64, TCG: several times slower) and runs
                       Debian's arm64 kernel with an arm64 userspace of its own (busybox, glibc,
                       Node's arm64 build: the host's major, or $EXPLICIT_SYNC_VM_NODE) in which
                       the host's other top-level folders (the checkout, the cache) are mounted
  --timeout <seconds>  bound on the whole run (default ${DEFAULT_TIMEOUT_SEC}, or $${TIMEOUT_ENV});
                       exits 124 when it expires
  --kvm auto|on|off    use KVM (auto: try it, fall back to TCG; default auto)
  --memory <MiB>       guest memory (default ${DEFAULT_MEMORY_MIB})
  --cpus <n>           guest CPUs (default ${DEFAULT_CPUS})
  --env NAME[=VALUE]   forward a variable into the guest (repeatable)
  --no-vkms            boot without vkms (by default it is built once against the
                       guest kernel, which needs gcc and make, or mmdebstrap and root
                       for a kernel built with a newer gcc, and loaded)
  -q, --quiet          no progress messages on stderr
  -h, --help           show this help

Exit status: the command's; 124 on timeout; 125 if the guest panicked or ended
without reporting a status; 1 if the VM could not be provisioned or started.

A vkms or sw_sync build that failed is not tried again until what it is built
from changes (its log is in the cache, named by the warning); set
EXPLICIT_SYNC_VM_RETRY_BUILD=1 to try again anyway.`;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function archOption(text: string, source: string): GuestArch {
  try {
    return parseArch(text);
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/ but received/, ` for ${source} but received`)}`);
  }
}

function kernelOption(text: string, source: string): KernelChoice {
  try {
    return parseKernelChoice(text);
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/ but received/, ` for ${source} but received`)}`);
  }
}

/** Parses a positive number of seconds, as given to --timeout or $EXPLICIT_SYNC_VM_TIMEOUT. */
export function parseTimeoutSec(text: string, source: string): number {
  const value = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(value > 0)) {
    throw new UsageError(`Expected a positive number of seconds for ${source} but received ${JSON.stringify(text)}`);
  }
  return value;
}

function parsePositiveInt(text: string, flag: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new UsageError(`Expected an integer from ${min} to ${max} for ${flag} but received ${JSON.stringify(text)}`);
  }
  return value;
}

/** Validates one `--env` value: `NAME` or `NAME=VALUE` with a portable shell variable name. */
export function checkEnvSpec(spec: string): string {
  const eq = spec.indexOf('=');
  const name = eq === -1 ? spec : spec.slice(0, eq);
  if (!ENV_NAME.test(name)) {
    throw new UsageError(`Expected NAME or NAME=VALUE for --env but received ${JSON.stringify(spec)}`);
  }
  return spec;
}

/**
 * Parses the arguments after `vm`. Options come first; the command starts after `--` or at the
 * first argument that is not an option, and everything from there on belongs to the command.
 * `--flag value` and `--flag=value` are both accepted.
 */
export function parseVmArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): VmCliOptions {
  const envTimeout = env[TIMEOUT_ENV];
  const envKernel = env[KERNEL_ENV];
  const envArch = env[ARCH_ENV];
  const options: VmCliOptions = {
    command: [],
    timeoutSec: envTimeout !== undefined && envTimeout !== '' ? parseTimeoutSec(envTimeout, `$${TIMEOUT_ENV}`) : DEFAULT_TIMEOUT_SEC,
    kvm: 'auto',
    memoryMiB: DEFAULT_MEMORY_MIB,
    cpus: DEFAULT_CPUS,
    env: [],
    quiet: false,
    help: false,
    vkms: true,
    kernel: envKernel !== undefined && envKernel !== '' ? kernelOption(envKernel, `$${KERNEL_ENV}`) : { series: DEFAULT_KERNEL },
    listKernels: false,
    arch: envArch !== undefined && envArch !== '' ? archOption(envArch, `$${ARCH_ENV}`) : DEFAULT_ARCH,
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;

    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    const inline = flag !== arg ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`Missing value for ${flag}`);
      i++;
      return next;
    };
    const noValue = (): void => {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
    };

    switch (flag) {
      case '--timeout':
        options.timeoutSec = parseTimeoutSec(value(), flag);
        break;
      case '--kvm': {
        const mode = value();
        if (mode !== 'auto' && mode !== 'on' && mode !== 'off') {
          throw new UsageError(`Expected auto, on or off for --kvm but received ${JSON.stringify(mode)}`);
        }
        options.kvm = mode;
        break;
      }
      case '--memory':
        options.memoryMiB = parsePositiveInt(value(), flag, 256, 1024 * 1024);
        break;
      case '--cpus':
        options.cpus = parsePositiveInt(value(), flag, 1, 256);
        break;
      case '--env':
        options.env.push(checkEnvSpec(value()));
        break;
      case '-q':
      case '--quiet':
        noValue();
        options.quiet = true;
        break;
      case '-h':
      case '--help':
        noValue();
        options.help = true;
        break;
      case '--no-vkms':
        noValue();
        options.vkms = false;
        break;
      case '--kernel':
        options.kernel = kernelOption(value(), flag);
        break;
      case '--arch':
        options.arch = archOption(value(), flag);
        break;
      case '--list-kernels':
        noValue();
        options.listKernels = true;
        break;
      default:
        throw new UsageError(`Unknown option ${flag}`);
    }
  }

  if ('release' in options.kernel && releaseArch(options.kernel.release) !== ARCHES[options.arch].debian) {
    throw new UsageError(`Expected a kernel release of the ${options.arch} guest (…-${ARCHES[options.arch].debian}) but received ${JSON.stringify(options.kernel.release)}`);
  }
  options.command = argv.slice(i);
  if (options.command.length === 0 && !options.help && !options.listKernels) {
    throw new UsageError('Missing the command to run, e.g. explicit-sync vm -- npm test');
  }
  return options;
}
