/**
 * Everything a boot needs from the cache: the kernel, its out-of-tree modules and the initramfs,
 * provisioned on first use.
 */
import * as fs from 'node:fs';
import { runnerApt, type RunnerApt } from './apt';
import { withCacheLock } from './cache';
import { planInitramfs, touchImage, type GuestModules } from './initramfs';
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
export function checkTools(): void {
  const missing = missingTools();
  if (missing.length > 0) {
    throw new VmSetupError(`missing ${missing.join(', ')}\ninstall them with: ${INSTALL_HINT}`);
  }
}

/** The runner's apt, its lists refreshed when stale. Call under the cache lock. */
export function aptFor(ctx: ProvisionContext): Promise<RunnerApt> {
  return runnerApt(ctx.cache, ctx.tool, ctx.progress);
}

const waiting = (ctx: ProvisionContext) => (): void => ctx.progress('waiting for another run to finish provisioning');

/** The kernel `choice` names: the cached one, else looked up with apt and fetched under the cache lock. */
export async function ensureKernel(ctx: ProvisionContext, signal: AbortSignal, choice: KernelChoice): Promise<Kernel> {
  const cached = findCachedKernel(ctx.cache, choice);
  if (cached !== undefined) return cached;
  return withCacheLock(ctx.cache, signal, waiting(ctx), async () => {
    const again = findCachedKernel(ctx.cache, choice);
    if (again !== undefined) return again;
    const apt = await aptFor(ctx);
    const plan = await planKernel(apt, choice);
    ctx.progress(`kernel ${kernelChoiceName(choice)} is ${plan.kver} (${plan.version})`);
    const kernel = findCachedKernel(ctx.cache, { release: plan.kver }) ?? (await provisionKernel(ctx, apt, plan));
    if ('series' in choice && choice.series === 'newest') rememberNewest(ctx.cache, plan.kver);
    return kernel;
  });
}

/**
 * The initramfs for `kernel` with `guest`'s modules. Fast path (cached): no lock. Otherwise builds it
 * under the cache lock.
 */
export async function ensureVmImage(ctx: ProvisionContext, signal: AbortSignal, kernel: Kernel, guest: GuestModules): Promise<VmImage> {
  const plan = await planInitramfs(kernel, ctx, guest);
  if (fs.existsSync(plan.path)) {
    touchImage(plan.path);
    return { kernel, initrd: plan.path };
  }
  return withCacheLock(ctx.cache, signal, waiting(ctx), async () => {
    if (!fs.existsSync(plan.path)) await plan.build();
    return { kernel, initrd: plan.path };
  });
}
