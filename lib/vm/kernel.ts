/**
 * The guest kernel: Debian's newest linux-image-6.12.*-amd64-unsigned, extracted into the cache.
 *
 * Layout: <cache>/kernels/<kver>/{boot/vmlinuz-<kver>, lib/modules/<kver>/…} with modules.dep
 * already generated. A directory there is always complete (see cache.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir, publish } from './cache';
import { runTool, type ToolOptions } from './tools';

/** An extracted guest kernel in the cache. */
export interface Kernel {
  /** Kernel release, e.g. "6.12.117+deb12-amd64". */
  kver: string;
  /** Root of the extracted package (for depmod/modinfo -b). */
  root: string;
  vmlinuz: string;
}

/** A linux-image package name from apt. */
export interface KernelPackage {
  name: string;
  kver: string;
  /** The 6.12.<patch> number, which orders the packages. */
  patch: number;
}

const PACKAGE_RE = /^linux-image-(6\.12\.(\d+)\+deb\d+-amd64)-unsigned$/;
/** Regex for `apt-cache search --names-only`, matching what PACKAGE_RE accepts. */
export const APT_SEARCH_PATTERN = '^linux-image-6\\.12\\.[0-9]+\\+deb[0-9]+-amd64-unsigned$';

/** Kernel packages named in `apt-cache search` output, newest first (cloud/rt flavours excluded). */
export function parseKernelPackages(searchOutput: string): KernelPackage[] {
  const found: KernelPackage[] = [];
  for (const line of searchOutput.split('\n')) {
    const name = line.split(' - ')[0]?.trim() ?? '';
    const m = PACKAGE_RE.exec(name);
    if (m) found.push({ name, kver: m[1] as string, patch: Number(m[2]) });
  }
  return found.sort((a, b) => b.patch - a.patch);
}

/** The candidate version in `apt-cache policy` output, or undefined if it cannot be installed. */
export function parsePolicyCandidate(policyOutput: string): string | undefined {
  const m = /^\s*Candidate:\s*(\S+)\s*$/m.exec(policyOutput);
  return m && m[1] !== '(none)' ? m[1] : undefined;
}

/** The release of the vmlinuz files in an extracted tree's boot/, e.g. ["6.12.117+deb12-amd64"]. */
function releasesIn(dir: string): string[] {
  try {
    return fs.readdirSync(path.join(dir, 'boot')).filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length));
  } catch {
    return [];
  }
}

function kernelAt(root: string, kver: string): Kernel {
  return { kver, root, vmlinuz: path.join(root, 'boot', `vmlinuz-${kver}`) };
}

/** The newest kernel already in the cache, if any (later runs never consult apt). */
export function findCachedKernel(cache: string): Kernel | undefined {
  const dir = path.join(cache, 'kernels');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const usable = parseKernelPackages(names.map((kver) => `linux-image-${kver}-unsigned`).join('\n'))
    .filter((p) => releasesIn(path.join(dir, p.kver)).includes(p.kver));
  const newest = usable[0];
  return newest && kernelAt(path.join(dir, newest.kver), newest.kver);
}

/** What provisioning steps share: the cache root, progress output, and tool options (abort). */
export interface ProvisionContext {
  cache: string;
  progress: (message: string) => void;
  tool: ToolOptions;
}

async function searchPackages(ctx: ProvisionContext): Promise<KernelPackage[]> {
  const search = async (): Promise<KernelPackage[]> =>
    parseKernelPackages((await runTool('apt-cache', ['search', '--names-only', APT_SEARCH_PATTERN], ctx.tool)).stdout);
  let found = await search();
  if (found.length === 0) {
    if (process.getuid?.() !== 0) {
      throw new Error('apt knows no linux-image-6.12.*-amd64-unsigned package; run `apt-get update` as root and retry');
    }
    ctx.progress('apt knows no linux-image-6.12 package yet: running apt-get update');
    await runTool('apt-get', ['update'], ctx.tool);
    found = await search();
  }
  if (found.length === 0) {
    throw new Error(
      'no linux-image-6.12.*-amd64-unsigned package in the apt sources (Debian 12 with bookworm-security, or newer, has it)',
    );
  }
  return found;
}

/** Downloads, extracts and indexes the newest installable kernel package. Call under the cache lock. */
export async function provisionKernel(ctx: ProvisionContext): Promise<Kernel> {
  let chosen: KernelPackage | undefined;
  let version: string | undefined;
  for (const pkg of await searchPackages(ctx)) {
    version = parsePolicyCandidate((await runTool('apt-cache', ['policy', pkg.name], ctx.tool)).stdout);
    if (version !== undefined) {
      chosen = pkg;
      break;
    }
  }
  if (chosen === undefined || version === undefined) {
    throw new Error('no linux-image-6.12 package has an installable candidate (apt-cache policy)');
  }

  const tmp = await makeTempDir(ctx.cache);
  try {
    ctx.progress(`downloading ${chosen.name} ${version} (about 100 MB)`);
    await runTool('apt-get', ['download', `${chosen.name}=${version}`], { ...ctx.tool, cwd: tmp });
    const deb = fs.readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${chosen.name} produced no .deb`);

    ctx.progress(`extracting ${deb}`);
    const root = path.join(tmp, 'root');
    await runTool('dpkg', ['-x', path.join(tmp, deb), root], ctx.tool);
    if (!releasesIn(root).includes(chosen.kver)) throw new Error(`${deb} has no boot/vmlinuz-${chosen.kver}`);
    await runTool('depmod', ['-b', root, chosen.kver], ctx.tool);

    const target = path.join(ctx.cache, 'kernels', chosen.kver);
    await publish(root, target);
    return kernelAt(target, chosen.kver);
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}
