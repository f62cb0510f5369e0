/**
 * `explicit-sync vm --list-kernels`: the kernels in the cache, and what each named series would
 * fetch today, read from the runner's own package lists. Lists less than a day old are read as
 * they are (no `apt-get update`, no cache lock: a listing never waits for a run's provisioning);
 * older ones are updated first, under the lock, and when apt cannot be reached the old lists answer,
 * saying how old they are.
 */
import * as fs from 'node:fs';
import { APT_LISTS_MAX_AGE_MS, aptListsAgeMs, formatAge, runnerApt, type RunnerApt } from './apt';
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

/**
 * The listing as text lines. `plans` maps a series to what apt would fetch (or why it cannot);
 * `lists` says how current the package lists it came from are.
 */
export function renderKernelList(
  cached: readonly { kver: string; series: string[]; modules: string[] }[],
  plans: ReadonlyMap<string, KernelPlan | Error>,
  lists = '',
): string {
  const lines = ['Cached kernels:'];
  if (cached.length === 0) lines.push('  (none)');
  for (const k of cached) {
    const tags = k.series.length > 0 ? ` [${k.series.join(', ')}]` : '';
    const mods = k.modules.length > 0 ? `; built out of tree: ${k.modules.join(', ')}` : '';
    lines.push(`  ${k.kver}${tags}${mods}`);
  }
  lines.push('', `Can be fetched (--kernel <series>; default ${DEFAULT_KERNEL}):`);
  if (lists !== '') lines.push(`  (${lists})`);
  for (const [series, plan] of plans) {
    lines.push(plan instanceof Error ? `  ${series.padEnd(7)} unavailable: ${plan.message}` : `  ${series.padEnd(7)} ${plan.kver} (${plan.version}: ${plan.packages.join(' ')})`);
  }
  return `${lines.join('\n')}\n`;
}

/** What the listing says about the package lists it read. */
export function listsNote(ageMs: number | undefined, updateError?: Error): string {
  const age = ageMs === undefined ? 'none yet' : `updated ${formatAge(ageMs)} ago`;
  if (updateError === undefined) return `package lists ${age}`;
  // apt's own first complaint (W: Failed to fetch …), rather than the long command line.
  const lines = updateError.message.split('\n').map((l) => l.trim());
  const why = lines.find((l) => /^(E|W|Err):/.test(l)) ?? lines[0] ?? updateError.message;
  return `apt could not be reached (${why}): package lists ${age}`;
}

/** The runner's apt and what to say about its lists: fresh ones as they are, else updated, else the old ones. */
async function listingApt(ctx: ProvisionContext, signal: AbortSignal): Promise<{ apt?: RunnerApt; note: string; error?: Error }> {
  const age = aptListsAgeMs(ctx.cache);
  if (age !== undefined && age < APT_LISTS_MAX_AGE_MS) return { apt: await runnerApt(ctx.cache, ctx.tool, ctx.progress, false), note: listsNote(age) };
  return withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    try {
      return { apt: await aptFor(ctx), note: listsNote(aptListsAgeMs(ctx.cache)) };
    } catch (err) {
      const stale = aptListsAgeMs(ctx.cache);
      if (stale === undefined) return { note: listsNote(undefined, err as Error), error: err as Error };
      return { apt: await runnerApt(ctx.cache, ctx.tool, ctx.progress, false), note: listsNote(stale, err as Error) };
    }
  });
}

/** Builds the listing (see the module's comment for when it asks apt). */
export async function listKernels(ctx: ProvisionContext, signal: AbortSignal): Promise<string> {
  const plans = new Map<string, KernelPlan | Error>();
  const { apt, note, error } = await listingApt(ctx, signal);
  for (const s of KERNEL_SERIES) plans.set(s, apt === undefined ? (error as Error) : await planKernel(apt, { series: s }).catch((err: Error) => err));
  const newest = rememberedNewest(ctx.cache);
  const cached = cachedKernels(ctx.cache).map((k) => ({
    kver: k.kver,
    series: seriesOf(k.kver, newest),
    modules: OOT_RECIPES.filter((r) => fs.existsSync(ootCachePath(ctx.cache, r.name, k.kver))).map((r) => r.name),
  }));
  return renderKernelList(cached, plans, note);
}
