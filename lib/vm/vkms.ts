/**
 * vkms for the guest: Debian's kernel does not build it, so it is built out of tree against the
 * exact kernel the runner boots, from Debian's own source, headers and kbuild packages.
 *
 * Layout: <cache>/vkms/<kver>/vkms.ko (uncompressed, ready for insmod). Like every cache entry it
 * appears only complete (see cache.ts); the download and build happen under the cache lock.
 * Building needs gcc and make on the host; when they are missing, provisioning fails and the runner
 * warns and boots without vkms (see index.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir, publish, withCacheLock } from './cache';
import type { ExtraModule } from './initramfs';
import { parsePolicyCandidate, type Kernel, type ProvisionContext } from './kernel';
import { parseModinfo } from './modules';
import { runTool, toolPath } from './tools';

/** The module's name, as the kernel and insmod know it. */
export const VKMS_MODULE = 'vkms';

/** What vkms depends on when modinfo cannot tell (TESTBED.md, 6.12). */
export const VKMS_DEFAULT_DEPENDS: readonly string[] = ['drm_kms_helper', 'drm', 'drm_shmem_helper'];

/** Tools the build needs besides those of the runner (tools.ts). */
export const VKMS_BUILD_TOOLS: readonly string[] = ['gcc', 'make', 'tar', 'xz'];

/** The Debian packages that build vkms for kernel release `kver` (e.g. "6.12.117+deb12-amd64"). */
export interface VkmsPackages {
  /** linux-source-6.12: the whole tree as a tarball; only drivers/gpu/drm/vkms is extracted. */
  source: string;
  /** linux-headers-<kver>: the flavour's build tree (Makefile, .config, Module.symvers). */
  headers: string;
  /** linux-headers-<kbase>-common: the headers and Makefiles shared by every flavour. */
  common: string;
  /** linux-kbuild-<kbase>: the host programs of scripts/ (modpost, fixdep, …). */
  kbuild: string;
  /** The source tarball's name inside the source package, under usr/src/. */
  tarball: string;
  /** Directory name at the top of the tarball. */
  tarTop: string;
}

const KVER_RE = /^((\d+)\.(\d+)\.\d+\+deb\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/;

/** The packages for a kernel release; throws on a release string it does not understand. */
export function vkmsPackages(kver: string): VkmsPackages {
  const m = KVER_RE.exec(kver);
  if (m === null) throw new Error(`cannot derive the vkms build packages from kernel release ${JSON.stringify(kver)}`);
  const base = m[1] as string;
  const series = `${m[2]}.${m[3]}`;
  return {
    source: `linux-source-${series}`,
    headers: `linux-headers-${kver}`,
    common: `linux-headers-${base}-common`,
    kbuild: `linux-kbuild-${base}`,
    tarball: `linux-source-${series}.tar.xz`,
    tarTop: `linux-source-${series}`,
  };
}

/**
 * Where an absolute symlink found in the extracted packages should point instead: the same path
 * inside `root` (the packages expect to be installed at /). Relative targets stay as they are.
 */
export function rehomeSymlink(target: string, root: string): string {
  return path.isAbsolute(target) ? path.join(root, target) : target;
}

/**
 * The flavour's Makefile with its absolute `include`s (Debian's reads
 * `include /usr/src/linux-headers-<kbase>-common/Makefile`) pointed inside `root`.
 */
export function rehomeMakefile(text: string, root: string): string {
  return text.replace(/^(\s*-?include\s+)(\/\S+)/gm, (_all, head: string, file: string) => `${head}${path.join(root, file)}`);
}

/** The `make` argv that builds the module in `moduleDir` against the headers tree `headersDir`. */
export function vkmsMakeArgs(headersDir: string, moduleDir: string, jobs: number): string[] {
  return [
    '-C', headersDir, `M=${moduleDir}`, `-j${Math.max(1, jobs)}`,
    'CONFIG_DRM_VKMS=m',
    // Module BTF needs pahole, which a build host rarely has; the guest has no use for it.
    'CONFIG_DEBUG_INFO_BTF_MODULES=',
    'modules',
  ];
}

/** The cached module for `kver`, if it was built before. */
export function vkmsCachePath(cache: string, kver: string): string {
  return path.join(cache, 'vkms', kver, `${VKMS_MODULE}.ko`);
}

/** Every symlink under `dir` (not following them). */
function symlinksUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) out.push(p);
    else if (entry.isDirectory()) out.push(...symlinksUnder(p));
  }
  return out;
}

async function moduleDepends(ko: string, ctx: ProvisionContext): Promise<string[]> {
  const deps = parseModinfo((await runTool('modinfo', [ko], ctx.tool)).stdout).depends;
  return deps.length > 0 ? deps : [...VKMS_DEFAULT_DEPENDS];
}

/** Downloads the packages and builds vkms.ko for `kernel` into the cache. Call under the cache lock. */
async function buildVkms(kernel: Kernel, ctx: ProvisionContext): Promise<string> {
  const missing = VKMS_BUILD_TOOLS.filter((t) => !path.isAbsolute(toolPath(t)));
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')} (apt-get install gcc make xz-utils)`);
  const pkgs = vkmsPackages(kernel.kver);
  const image = `linux-image-${kernel.kver}-unsigned`;
  // The source package must be the very version of the image we boot; the others carry the
  // same version (they are built from the same source package).
  const version = parsePolicyCandidate((await runTool('apt-cache', ['policy', image], ctx.tool)).stdout);
  if (version === undefined) throw new Error(`apt-cache policy ${image} names no version (run apt-get update?)`);

  const tmp = await makeTempDir(ctx.cache);
  try {
    const debs = path.join(tmp, 'debs');
    fs.mkdirSync(debs);
    const names = [pkgs.source, pkgs.headers, pkgs.common, pkgs.kbuild];
    ctx.progress(`downloading ${names.join(' ')} ${version} to build vkms (about 160 MB)`);
    await runTool('apt-get', ['download', ...names.map((n) => `${n}=${version}`)], { ...ctx.tool, cwd: debs });
    const root = path.join(tmp, 'root');
    for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
      await runTool('dpkg', ['-x', path.join(debs, deb), root], ctx.tool);
    }
    // The headers packages expect to be installed at /: they reach each other by absolute paths
    // (the flavour's Makefile includes the common one; some releases link scripts/ absolutely).
    for (const link of symlinksUnder(path.join(root, 'usr'))) {
      const target = fs.readlinkSync(link);
      if (!path.isAbsolute(target)) continue;
      fs.unlinkSync(link);
      fs.symlinkSync(rehomeSymlink(target, root), link);
    }
    const headersDir = path.join(root, 'usr/src', pkgs.headers);
    const makefile = path.join(headersDir, 'Makefile');
    fs.writeFileSync(makefile, rehomeMakefile(fs.readFileSync(makefile, 'utf8'), root));

    ctx.progress('extracting drivers/gpu/drm/vkms from the kernel source');
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    await runTool(
      'tar',
      ['-xJf', path.join(root, 'usr/src', pkgs.tarball), '-C', src, '--wildcards', `${pkgs.tarTop}/drivers/gpu/drm/vkms/*`],
      ctx.tool,
    );
    const moduleDir = path.join(src, pkgs.tarTop, 'drivers/gpu/drm/vkms');

    ctx.progress(`building ${VKMS_MODULE}.ko for ${kernel.kver}`);
    await runTool('make', vkmsMakeArgs(headersDir, moduleDir, 2), ctx.tool);
    const built = path.join(moduleDir, `${VKMS_MODULE}.ko`);
    if (!fs.existsSync(built)) throw new Error(`make built no ${VKMS_MODULE}.ko`);

    const out = path.join(tmp, 'out');
    fs.mkdirSync(out);
    fs.copyFileSync(built, path.join(out, `${VKMS_MODULE}.ko`));
    const target = path.dirname(vkmsCachePath(ctx.cache, kernel.kver));
    await publish(out, target);
    return vkmsCachePath(ctx.cache, kernel.kver);
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * vkms for `kernel`, built on first use and cached by kernel release. Fast path (cached): no lock,
 * no apt. Rejects when it cannot be built (no gcc, no packages): the caller decides what that means.
 */
export async function ensureVkms(kernel: Kernel, ctx: ProvisionContext, signal: AbortSignal): Promise<ExtraModule> {
  const cached = vkmsCachePath(ctx.cache, kernel.kver);
  const file = fs.existsSync(cached)
    ? cached
    : await withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () =>
        fs.existsSync(cached) ? cached : buildVkms(kernel, ctx),
      );
  return { name: VKMS_MODULE, file, depends: await moduleDepends(file, ctx) };
}
