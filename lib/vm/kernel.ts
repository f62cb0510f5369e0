/**
 * Guest kernels: which Debian package a `--kernel` choice means, and one kernel fetched and
 * unpacked into the cache.
 *
 * Layout: <cache>/kernels/<kver>/ is the union of the kernel's packages as `dpkg -x` leaves them,
 * with modules.dep generated. Older packages put the image at boot/vmlinuz-<kver> and modules in
 * lib/modules/<kver>; newer ones (7.x) put both in usr/lib/modules/<kver> and ship no modules.dep:
 * a `lib -> usr/lib` link makes depmod and modinfo -b read either. A directory there is always
 * complete (see cache.ts). <cache>/newest-kernel remembers which release `newest` resolved to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunnerApt } from './apt';
import type { ArchProfile } from './arch';
import { makeTempDir, publish } from './cache';
import { runTool, type ToolOptions } from './tools';

/** The kernel series the runner knows by name. */
export type KernelSeries = '6.1' | '6.12' | 'newest';

/** What `--kernel` asked for: a series (its newest release), or one exact release. */
export type KernelChoice = { series: KernelSeries } | { release: string };

/** The kernel a run boots when nothing else is asked for. */
export const DEFAULT_KERNEL: KernelSeries = '6.12';

/** The environment variable that chooses the kernel (the --kernel flag wins over it). */
export const KERNEL_ENV = 'EXPLICIT_SYNC_VM_KERNEL';

/** The named series, in the order `test:kernels` runs them. */
export const KERNEL_SERIES: readonly KernelSeries[] = ['6.1', '6.12', 'newest'];

/** Debian's architecture of a kernel flavour ("amd64", "arm64"). */
export type DebianArch = ArchProfile['debian'];

/**
 * Release names of the generic amd64 and arm64 flavours: "6.1.0-57-amd64", "6.12.118+deb12-amd64",
 * "7.3.4+deb13-amd64", "6.12.118+deb12-arm64".
 */
const RELEASE_RE = /^(\d+)\.(\d+)\.(\d+)(?:-(\d+)|\+deb(\d+))-(amd64|arm64)$/;

/** Parses a `--kernel` value; throws a plain Error saying what it accepts. */
export function parseKernelChoice(text: string): KernelChoice {
  const t = text.trim();
  if (t === '6.1' || t === '6.12' || t === 'newest') return { series: t };
  if (RELEASE_RE.test(t)) return { release: t };
  throw new Error(`Expected 6.1, 6.12, newest or a kernel release such as 6.12.118+deb12-amd64 but received ${JSON.stringify(text)}`);
}

/** A choice as the user would write it. */
export function kernelChoiceName(choice: KernelChoice): string {
  return 'series' in choice ? choice.series : choice.release;
}

/** Sort key of a release (numeric major, minor, patch, ABI number); undefined for other names. */
export function releaseKey(kver: string): number[] | undefined {
  const m = RELEASE_RE.exec(kver);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0)] : undefined;
}

/** Compares two releases (both must have a releaseKey): negative when a is older. */
export function compareReleases(a: string, b: string): number {
  const ka = releaseKey(a) ?? [];
  const kb = releaseKey(b) ?? [];
  for (let i = 0; i < 4; i++) if ((ka[i] ?? 0) !== (kb[i] ?? 0)) return (ka[i] ?? 0) - (kb[i] ?? 0);
  return 0;
}

/** The Debian architecture of release `kver` (its flavour's suffix), if it is a release name. */
export function releaseArch(kver: string): DebianArch | undefined {
  return RELEASE_RE.exec(kver)?.[6] as DebianArch | undefined;
}

/** Whether release `kver` belongs to the 6.1 or 6.12 series (the Debian 12 packages) of `arch`. */
export function releaseInSeries(kver: string, series: '6.1' | '6.12', arch: DebianArch = 'amd64'): boolean {
  const re = series === '6.1' ? new RegExp(`^6\\.1\\.0-\\d+-${arch}$`) : new RegExp(`^6\\.12\\.\\d+\\+deb\\d+-${arch}$`);
  return re.test(kver);
}

/** An extracted guest kernel in the cache. */
export interface Kernel {
  /** Kernel release, e.g. "6.12.117+deb12-amd64". */
  kver: string;
  /** Root of the extracted packages (for depmod/modinfo -b). */
  root: string;
  vmlinuz: string;
  /** The kernel's .config, when the packages carry it. */
  config?: string;
  /** The Debian version of the packages (e.g. "6.1.192-3"), when known. */
  version?: string;
}

/** A linux-image package name from apt. */
export interface KernelPackage {
  name: string;
  kver: string;
}

/** The `apt-cache search --names-only` pattern for the unsigned images of a Debian 12 series. */
export function aptSearchPattern(series: '6.1' | '6.12', arch: DebianArch = 'amd64'): string {
  return series === '6.1' ? `^linux-image-6\\.1\\.0-[0-9]+-${arch}-unsigned$` : `^linux-image-6\\.12\\.[0-9]+\\+deb[0-9]+-${arch}-unsigned$`;
}

/** Unsigned kernel images of `series` named in `apt-cache search` output, newest first (cloud/rt flavours excluded). */
export function parseKernelPackages(searchOutput: string, series: '6.1' | '6.12' = '6.12', arch: DebianArch = 'amd64'): KernelPackage[] {
  const found: KernelPackage[] = [];
  for (const line of searchOutput.split('\n')) {
    const name = line.split(' - ')[0]?.trim() ?? '';
    const m = /^linux-image-(.+)-unsigned$/.exec(name);
    if (m && releaseInSeries(m[1] as string, series, arch)) found.push({ name, kver: m[1] as string });
  }
  return found.sort((a, b) => compareReleases(b.kver, a.kver));
}

/** The candidate version in `apt-cache policy` output, or undefined if it cannot be installed. */
export function parsePolicyCandidate(policyOutput: string): string | undefined {
  const m = /^\s*Candidate:\s*(\S+)\s*$/m.exec(policyOutput);
  return m && m[1] !== '(none)' ? m[1] : undefined;
}

/** One package paragraph of `apt-cache show`: its version and the package names it depends on. */
export interface PackageStanza {
  package: string;
  version: string;
  depends: string[];
}

/** The paragraphs of `apt-cache show` output. */
export function parseShow(text: string): PackageStanza[] {
  return text.split(/\n\s*\n/).flatMap((para) => {
    const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(para)?.[1]?.trim();
    const pkg = field('Package');
    const version = field('Version');
    if (pkg === undefined || version === undefined) return [];
    const depends = (field('Depends') ?? '')
      .split(',')
      .flatMap((alt) => alt.split('|').map((d) => d.trim().split(/[\s(]/)[0] as string))
      .filter((d) => d !== '');
    return [{ package: pkg, version, depends }];
  });
}

/**
 * The newest kernel release that Debian's `linux-image-amd64` metapackage points at, given its
 * `apt-cache show` paragraphs (one per suite): the image package and version to fetch.
 */
export function newestFromMetapackage(stanzas: readonly PackageStanza[]): { name: string; kver: string; version: string } | undefined {
  let best: { name: string; kver: string; version: string } | undefined;
  for (const s of stanzas) {
    for (const dep of s.depends) {
      const m = /^linux-image-(.+?)(-unsigned)?$/.exec(dep);
      const kver = m?.[1];
      if (kver === undefined || releaseKey(kver) === undefined) continue;
      if (best === undefined || compareReleases(kver, best.kver) > 0) best = { name: dep, kver, version: s.version };
    }
  }
  return best;
}

/**
 * The packages that together hold a kernel: the image package plus, for the 7.x packaging, the
 * `linux-binary-`, `linux-modules-` and `linux-base-` packages it depends on (image, modules,
 * config and modules.builtin). `depends` is the image package's Depends.
 */
export function kernelPackageSet(image: string, depends: readonly string[], kver: string): string[] {
  const parts = depends.filter((d) => d === `linux-binary-${kver}` || d === `linux-modules-${kver}` || d === `linux-base-${kver}`);
  return [image, ...parts];
}

/** What provisioning fetches for one kernel. */
export interface KernelPlan {
  kver: string;
  version: string;
  packages: string[];
}

/** What provisioning steps share: the cache root, progress output, and tool options (abort). */
export interface ProvisionContext {
  cache: string;
  progress: (message: string) => void;
  tool: ToolOptions;
}

/** Metadata written beside an extracted kernel. */
const META = '.explicit-sync-kernel.json';
const NEWEST_FILE = 'newest-kernel';

/** The file that remembers `newest` for `arch` (amd64 keeps the name it always had). */
function newestFile(cache: string, arch: DebianArch): string {
  return path.join(cache, arch === 'amd64' ? NEWEST_FILE : `${NEWEST_FILE}-${arch}`);
}

/** The image, config and modules directory of an extracted tree for `kver`, if it has an image. */
export function kernelAt(root: string, kver: string): Kernel | undefined {
  const modules = path.join(root, 'lib/modules', kver);
  const vmlinuz = [path.join(root, 'boot', `vmlinuz-${kver}`), path.join(modules, 'vmlinuz'), path.join(root, 'usr/lib/modules', kver, 'vmlinuz')]
    .find((f) => fs.existsSync(f));
  if (vmlinuz === undefined) return undefined;
  const config = [path.join(root, 'boot', `config-${kver}`), path.join(modules, 'config'), path.join(root, 'usr/lib/modules', kver, 'config')]
    .find((f) => fs.existsSync(f));
  let version: string | undefined;
  try {
    version = (JSON.parse(fs.readFileSync(path.join(root, META), 'utf8')) as { version?: string }).version;
  } catch {
    version = undefined;
  }
  return { kver, root, vmlinuz, ...(config ? { config } : {}), ...(version ? { version } : {}) };
}

/** Every kernel in the cache, newest release first. */
export function cachedKernels(cache: string): Kernel[] {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(cache, 'kernels'));
  } catch {
    return [];
  }
  return names
    .filter((n) => releaseKey(n) !== undefined)
    .sort((a, b) => compareReleases(b, a))
    .flatMap((kver) => kernelAt(path.join(cache, 'kernels', kver), kver) ?? []);
}

/** The release `newest` resolved to the last time apt was asked, if any. */
export function rememberedNewest(cache: string, arch: DebianArch = 'amd64'): string | undefined {
  try {
    return fs.readFileSync(newestFile(cache, arch), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The cached kernel for `choice`, if any (later runs never consult apt). */
export function findCachedKernel(cache: string, choice: KernelChoice = { series: DEFAULT_KERNEL }, arch: DebianArch = 'amd64'): Kernel | undefined {
  const all = cachedKernels(cache);
  if ('release' in choice) return all.find((k) => k.kver === choice.release);
  if (choice.series === 'newest') {
    const kver = rememberedNewest(cache, arch);
    return kver === undefined ? undefined : all.find((k) => k.kver === kver);
  }
  const series = choice.series;
  return all.find((k) => releaseInSeries(k.kver, series, arch));
}

async function imagePlan(apt: RunnerApt, image: string, kver: string, version?: string): Promise<KernelPlan | undefined> {
  let stanzas: PackageStanza[];
  try {
    stanzas = parseShow(await apt.cache(['show', version ? `${image}=${version}` : image]));
  } catch {
    return undefined; // apt-cache show fails for an unknown package
  }
  const chosen = version ? stanzas.find((s) => s.version === version) : stanzas[0];
  if (chosen === undefined) return undefined;
  const candidate = version ?? parsePolicyCandidate(await apt.cache(['policy', image])) ?? chosen.version;
  const stanza = stanzas.find((s) => s.version === candidate) ?? chosen;
  return { kver, version: stanza.version, packages: kernelPackageSet(image, stanza.depends, kver) };
}

/** Asks the runner's apt which packages `choice` means today. */
export async function planKernel(apt: RunnerApt, choice: KernelChoice, arch: DebianArch = 'amd64'): Promise<KernelPlan> {
  if ('release' in choice) {
    const kver = choice.release;
    const plan = (await imagePlan(apt, `linux-image-${kver}-unsigned`, kver)) ?? (await imagePlan(apt, `linux-image-${kver}`, kver));
    if (plan === undefined) throw new Error(`no linux-image-${kver}[-unsigned] package in the runner's apt sources (see explicit-sync vm --list-kernels)`);
    return plan;
  }
  if (choice.series === 'newest') {
    const best = newestFromMetapackage(parseShow(await apt.cache(['show', `linux-image-${arch}`])));
    if (best === undefined) throw new Error(`no linux-image-${arch} package in the runner's apt sources names a kernel image`);
    const plan = await imagePlan(apt, best.name, best.kver, best.version);
    if (plan === undefined) throw new Error(`apt-cache show ${best.name}=${best.version} failed`);
    return plan;
  }
  const series = choice.series;
  for (const pkg of parseKernelPackages(await apt.cache(['search', '--names-only', aptSearchPattern(series, arch)]), series, arch)) {
    const plan = await imagePlan(apt, pkg.name, pkg.kver);
    if (plan !== undefined) return plan;
  }
  throw new Error(`no linux-image-${series}.*-${arch}-unsigned package in the runner's apt sources`);
}

/** Downloads, extracts and indexes the kernel of `plan`. Call under the cache lock. */
export async function provisionKernel(ctx: ProvisionContext, apt: RunnerApt, plan: KernelPlan): Promise<Kernel> {
  const tmp = await makeTempDir(ctx.cache);
  try {
    const debs = path.join(tmp, 'debs');
    fs.mkdirSync(debs);
    ctx.progress(`downloading ${plan.packages.join(' ')} ${plan.version} (about 100 MB)`);
    await apt.get(['download', ...plan.packages.map((p) => `${p}=${plan.version}`)], { cwd: debs });
    const root = path.join(tmp, 'root');
    fs.mkdirSync(root);
    for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
      ctx.progress(`extracting ${deb}`);
      await runTool('dpkg', ['-x', path.join(debs, deb), root], ctx.tool);
    }
    // Merged-/usr packaging: depmod and modinfo -b look in <root>/lib/modules.
    if (!fs.existsSync(path.join(root, 'lib')) && fs.existsSync(path.join(root, 'usr/lib/modules'))) fs.symlinkSync('usr/lib', path.join(root, 'lib'));
    if (kernelAt(root, plan.kver) === undefined) throw new Error(`${plan.packages.join(', ')} hold no vmlinuz for ${plan.kver}`);
    await runTool('depmod', ['-b', root, plan.kver], ctx.tool);
    fs.writeFileSync(path.join(root, META), `${JSON.stringify({ kver: plan.kver, version: plan.version, packages: plan.packages })}\n`);

    const target = path.join(ctx.cache, 'kernels', plan.kver);
    await publish(root, target);
    return kernelAt(target, plan.kver) as Kernel;
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/** Records which release `newest` means, so later runs find it in the cache without apt. */
export function rememberNewest(cache: string, kver: string, arch: DebianArch = 'amd64'): void {
  const file = newestFile(cache, arch);
  const tmp = `${file}.${process.pid}`;
  fs.writeFileSync(tmp, `${kver}\n`);
  fs.renameSync(tmp, file);
}
