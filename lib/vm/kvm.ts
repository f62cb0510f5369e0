/**
 * Whether to boot with KVM, and the remembered outcome of trying it.
 *
 * Some hosts expose a /dev/kvm that cannot run a stock kernel (e.g. a paravirtual KVM that dies
 * with "KVM internal error … emulation failure" and then hangs). `auto` therefore tries KVM with a
 * handshake, falls back to TCG, and writes the verdict to <cache>/kvm-<host kernel release> so
 * later runs on the same host kernel skip the probe.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KvmMode } from './args';
import type { Accel } from './qemu';

/** The remembered result of trying KVM on this host kernel. */
export type KvmVerdict = 'ok' | 'broken';

/** The accelerator to boot with first, and whether TCG may follow. */
export interface AccelPlan {
  first: Accel;
  /** KVM only: on a failed handshake, record `broken` and boot again with TCG. */
  fallback: boolean;
}

/**
 * Which accelerator to boot with. Pure. `on` insists on KVM (and fails without fallback);
 * `auto` uses KVM only if /dev/kvm can be opened and it is not known to be broken here.
 */
export function chooseAccel(mode: KvmMode, kvmOpenable: boolean, verdict: KvmVerdict | undefined): AccelPlan {
  if (mode === 'off') return { first: 'tcg', fallback: false };
  if (mode === 'on') {
    if (!kvmOpenable) throw new Error('--kvm on, but /dev/kvm cannot be opened for reading and writing');
    return { first: 'kvm', fallback: false };
  }
  return kvmOpenable && verdict !== 'broken' ? { first: 'kvm', fallback: true } : { first: 'tcg', fallback: false };
}

/** Whether /dev/kvm exists and this process may open it read-write (what QEMU needs). */
export function kvmOpenable(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/kvm', fs.constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

/** The verdict file for a host kernel release (its name is sanitised to one path component). */
export function verdictFile(cache: string, hostRelease: string): string {
  return path.join(cache, `kvm-${hostRelease.replace(/[^\w.+-]/g, '_')}`);
}

/** The recorded verdict, or undefined if none (or unreadable). */
export function readVerdict(file: string): KvmVerdict | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text === 'ok' || text === 'broken' ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Records a verdict atomically (write a sibling, rename over). */
export function writeVerdict(file: string, verdict: KvmVerdict): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(tmp, `${verdict}\n`);
  fs.renameSync(tmp, file);
}
