/**
 * Everything a boot needs from the cache: the kernel and the initramfs, provisioned on first use.
 */
import * as fs from 'node:fs';
import { withCacheLock } from './cache';
import { planInitramfs, touchImage, type ExtraModule } from './initramfs';
import { findCachedKernel, provisionKernel, type Kernel, type ProvisionContext } from './kernel';
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

/** The kernel alone: the cached one, else provisioned under the cache lock. */
export async function ensureKernel(ctx: ProvisionContext, signal: AbortSignal): Promise<Kernel> {
  const cached = findCachedKernel(ctx.cache);
  if (cached !== undefined) return cached;
  const onWait = (): void => ctx.progress('waiting for another run to finish provisioning');
  return withCacheLock(ctx.cache, signal, onWait, async () => findCachedKernel(ctx.cache) ?? (await provisionKernel(ctx)));
}

/**
 * The kernel and initramfs to boot. Fast path (both cached): no lock, no apt. Otherwise takes the
 * cache lock, looks again (another run may have just finished), and provisions what is missing.
 */
export async function ensureVmImage(ctx: ProvisionContext, signal: AbortSignal, extras: readonly ExtraModule[] = []): Promise<VmImage> {
  const cached = findCachedKernel(ctx.cache);
  if (cached !== undefined) {
    const plan = await planInitramfs(cached, ctx, extras);
    if (fs.existsSync(plan.path)) {
      touchImage(plan.path);
      return { kernel: cached, initrd: plan.path };
    }
  }
  const onWait = (): void => ctx.progress('waiting for another run to finish provisioning');
  return withCacheLock(ctx.cache, signal, onWait, async () => {
    const kernel = findCachedKernel(ctx.cache) ?? (await provisionKernel(ctx));
    const plan = await planInitramfs(kernel, ctx, extras);
    if (!fs.existsSync(plan.path)) await plan.build();
    return { kernel, initrd: plan.path };
  });
}
