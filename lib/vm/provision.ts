/**
 * Everything a boot needs from the cache: the kernel, its out-of-tree modules and the initramfs,
 * provisioned on first use.
 */
import * as fs from 'node:fs';
import { ARM64_APT, KERNEL_APT, runnerApt, type RunnerApt } from './apt';
import { ARCHES, type ArchProfile } from './arch';
import type { DebianArch } from './kernel';
import { withCacheLock } from './cache';
import { planInitramfs, touchImage, type ForeignRoot, type GuestModules } from './initramfs';
import {
  findCachedKernel,
  kernelChoiceName,
  planKernel,
  provisionKernel,
  rememberNewest,
  type Kernel,
  type KernelChoice,
  type ProvisionContext,
} from './kernel';
import { INSTALL_HINT, missingTools } from './tools';

/** A problem the user must fix on the host (missing tools, no kernel package, …): exit 1. */
export class VmSetupError extends Error {
  override name = 'VmSetupError';
}

/** What QEMU boots. */
export interface VmImage {
  kernel: Kernel;
  initrd: string;
}

/** Throws VmSetupError naming each missing tool and the command that installs them all. */
export function checkTools(arch: ArchProfile = ARCHES.x64): void {
  const extra = arch.arch === 'x64' ? new Map<string, string>() : new Map([[arch.qemu, arch.qemuPackage]]);
  const missing = missingTools(extra);
  if (missing.length > 0) {
    const hint = arch.arch === 'x64' ? INSTALL_HINT : `${INSTALL_HINT} ${arch.qemuPackage}`;
    throw new VmSetupError(`missing ${missing.join(', ')}\ninstall them with: ${hint}`);
  }
}

/** The runner's apt for guests of `arch`, its lists refreshed when stale. Call under the cache lock. */
export function aptFor(ctx: ProvisionContext, arch: DebianArch = 'amd64'): Promise<RunnerApt> {
  return runnerApt(ctx.cache, ctx.tool, ctx.progress, true, arch === 'amd64' ? KERNEL_APT : ARM64_APT);
}

const waiting = (ctx: ProvisionContext) => (): void => ctx.progress('waiting for another run to finish provisioning');

/** The kernel `choice` names: the cached one, else looked up with apt and fetched under the cache lock. */
export async function ensureKernel(ctx: ProvisionContext, signal: AbortSignal, choice: KernelChoice, arch: DebianArch = 'amd64'): Promise<Kernel> {
  const cached = findCachedKernel(ctx.cache, choice, arch);
  if (cached !== undefined) return cached;
  return withCacheLock(ctx.cache, signal, waiting(ctx), async () => {
    const again = findCachedKernel(ctx.cache, choice, arch);
    if (again !== undefined) return again;
    const apt = await aptFor(ctx, arch);
    const plan = await planKernel(apt, choice, arch);
    ctx.progress(`kernel ${kernelChoiceName(choice)} is ${plan.kver} (${plan.version})`);
    const kernel = findCachedKernel(ctx.cache, { release: plan.kver }) ?? (await provisionKernel(ctx, apt, plan));
    if ('series' in choice && choice.series === 'newest') rememberNewest(ctx.cache, plan.kver, arch);
    return kernel;
  });
}

/**
 * The initramfs for `kernel` with `guest`'s modules. Fast path (cached): no lock. Otherwise builds it
 * under the cache lock.
 */
export async function ensureVmImage(ctx: ProvisionContext, signal: AbortSignal, kernel: Kernel, guest: GuestModules, foreign?: ForeignRoot): Promise<VmImage> {
  const plan = await planInitramfs(kernel, ctx, guest, foreign);
  if (fs.existsSync(plan.path)) {
    touchImage(plan.path);
    return { kernel, initrd: plan.path };
  }
  return withCacheLock(ctx.cache, signal, waiting(ctx), async () => {
    if (!fs.existsSync(plan.path)) await plan.build();
    return { kernel, initrd: plan.path };
  });
}
