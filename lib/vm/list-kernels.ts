/**
 * `explicit-sync vm --list-kernels`: the kernels in the cache, and what each named series would
 * fetch today (asked of the runner's own apt configuration).
 */
import * as fs from 'node:fs';
import { withCacheLock } from './cache';
import {
  cachedKernels,
  DEFAULT_KERNEL,
  KERNEL_SERIES,
  planKernel,
  rememberedNewest,
  releaseInSeries,
  type KernelPlan,
  type ProvisionContext,
} from './kernel';
import { OOT_RECIPES, ootCachePath } from './modules-oot';
import { aptFor } from './provision';

/** The series names a cached release answers to (`newest` only if it is the remembered one). */
export function seriesOf(kver: string, newest: string | undefined): string[] {
  const out: string[] = [];
  if (releaseInSeries(kver, '6.1')) out.push('6.1');
  if (releaseInSeries(kver, '6.12')) out.push('6.12');
  if (kver === newest) out.push('newest');
  return out;
}

/** The listing as text lines. `plans` maps a series to what apt would fetch (or why it cannot). */
export function renderKernelList(
  cached: readonly { kver: string; series: string[]; modules: string[] }[],
  plans: ReadonlyMap<string, KernelPlan | Error>,
): string {
  const lines = ['Cached kernels:'];
  if (cached.length === 0) lines.push('  (none)');
  for (const k of cached) {
    const tags = k.series.length > 0 ? ` [${k.series.join(', ')}]` : '';
    const mods = k.modules.length > 0 ? `; built out of tree: ${k.modules.join(', ')}` : '';
    lines.push(`  ${k.kver}${tags}${mods}`);
  }
  lines.push('', `Can be fetched (--kernel <series>; default ${DEFAULT_KERNEL}):`);
  for (const [series, plan] of plans) {
    lines.push(plan instanceof Error ? `  ${series.padEnd(7)} unavailable: ${plan.message}` : `  ${series.padEnd(7)} ${plan.kver} (${plan.version}: ${plan.packages.join(' ')})`);
  }
  return `${lines.join('\n')}\n`;
}

/** Builds the listing; consults apt under the cache lock (it may refresh the runner's package lists). */
export async function listKernels(ctx: ProvisionContext, signal: AbortSignal): Promise<string> {
  const plans = new Map<string, KernelPlan | Error>();
  await withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    let apt;
    try {
      apt = await aptFor(ctx);
    } catch (err) {
      for (const s of KERNEL_SERIES) plans.set(s, err as Error);
      return;
    }
    for (const s of KERNEL_SERIES) plans.set(s, await planKernel(apt, { series: s }).catch((err: Error) => err));
  });
  const newest = rememberedNewest(ctx.cache);
  const cached = cachedKernels(ctx.cache).map((k) => ({
    kver: k.kver,
    series: seriesOf(k.kver, newest),
    modules: OOT_RECIPES.filter((r) => fs.existsSync(ootCachePath(ctx.cache, r.name, k.kver))).map((r) => r.name),
  }));
  return renderKernelList(cached, plans);
}
