/**
 * Kernel modules built out of tree for the guest, where Debian's kernel does not build them:
 * vkms (a virtual KMS display) and sw_sync (CPU-controlled sync_file timelines). Each is data — the
 * kernel source files it is made of and the patches that make them a module — built by one
 * function against the exact kernel the runner boots, from Debian's own source, headers and
 * kbuild packages (of the kernel's very version).
 *
 * Layout: <cache>/<module>/<kver>/<module>.ko (uncompressed, ready for insmod). Like every cache
 * entry it appears only complete (see cache.ts); the download and build happen under the cache
 * lock. Building needs gcc (of the major version the kernel was built with) and make on the host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunnerApt } from './apt';
import { makeTempDir, publish, withCacheLock } from './cache';
import type { ExtraModule } from './initramfs';
import { parsePolicyCandidate, type Kernel, type ProvisionContext } from './kernel';
import { parseKernelConfig, parseModinfo } from './modules';
import { runTool, toolPath } from './tools';

/** One module built out of tree. */
export interface OotRecipe {
  /** The module's name, as the kernel and insmod know it. */
  name: string;
  /** Its Kconfig symbol (without CONFIG_): a kernel that sets it needs no out-of-tree build. */
  config: string;
  /** Directory of its sources in the kernel tree. */
  dir: string;
  /** Files of `dir` to extract; '*' for all of them. */
  files: readonly string[] | '*';
  /**
   * Turns the extracted sources into a buildable module directory (renames, patches, a Kbuild
   * file). Patches match what the source says, never line numbers; one that finds nothing to
   * patch throws, so a build against a kernel whose source moved on fails saying why.
   */
  prepare(dir: string): void;
  /** Extra `make` variables. */
  makeVars: readonly string[];
  /** What the module depends on when modinfo cannot tell. */
  defaultDepends: readonly string[];
}

/** Replaces `pattern` in `text`, throwing when the source does not contain it. */
export function patchSource(text: string, pattern: RegExp, replacement: string, what: string): string {
  if (!pattern.test(text)) throw new Error(`cannot patch ${what}: the source no longer matches ${pattern}`);
  return text.replace(pattern, replacement);
}

/**
 * sw_sync.c + sync_debug.c as one module: sync_debug.c gets a licence (it was built in), the trace
 * points go (their header defines them for the built-in tracing only), and the debugfs printer
 * stops calling sync_file_get_name(), which the kernel does not export (older kernels only).
 */
export function patchSwSync(files: { swSync: string; syncDebug: string }): { swSync: string; syncDebug: string } {
  let swSync = files.swSync.replace(/^#define CREATE_TRACE_POINTS[ \t]*\n/m, '');
  swSync = patchSource(swSync, /^#include "sync_trace\.h"[ \t]*$/m, '#define trace_sync_timeline(obj) do { } while (0)', 'sw_sync.c (trace points)');
  let syncDebug = patchSource(files.syncDebug, /^(#include "sync_debug\.h"[ \t]*)$/m, '$1\n#include <linux/module.h>', 'sync_debug.c (includes)');
  syncDebug = syncDebug.replace(
    /sync_file_get_name\(\s*\w+\s*,\s*(\w+)\s*,\s*sizeof\(\s*\1\s*\)\s*\)/g,
    '(snprintf($1, sizeof($1), "sync_file"), $1)',
  );
  syncDebug += '\nMODULE_LICENSE("GPL");\nMODULE_DESCRIPTION("sw_sync: CPU-controlled sync_file timelines (built out of tree by explicit-sync)");\n';
  return { swSync, syncDebug };
}

/** The recipes the runner knows, in load order. */
export const OOT_RECIPES: readonly OotRecipe[] = [
  {
    name: 'vkms',
    config: 'DRM_VKMS',
    dir: 'drivers/gpu/drm/vkms',
    files: '*',
    prepare: () => undefined,
    makeVars: ['CONFIG_DRM_VKMS=m'],
    defaultDepends: ['drm_kms_helper', 'drm', 'drm_shmem_helper'],
  },
  {
    name: 'sw_sync',
    config: 'SW_SYNC',
    dir: 'drivers/dma-buf',
    files: ['sw_sync.c', 'sync_debug.c', 'sync_debug.h'],
    prepare: (dir) => {
      const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
      const patched = patchSwSync({ swSync: read('sw_sync.c'), syncDebug: read('sync_debug.c') });
      fs.rmSync(path.join(dir, 'sw_sync.c'));
      fs.writeFileSync(path.join(dir, 'sw_sync_main.c'), patched.swSync);
      fs.writeFileSync(path.join(dir, 'sync_debug.c'), patched.syncDebug);
      fs.writeFileSync(path.join(dir, 'Kbuild'), 'obj-m := sw_sync.o\nsw_sync-y := sw_sync_main.o sync_debug.o\n');
    },
    makeVars: [],
    defaultDepends: [],
  },
];

/** The recipe named `name`. */
export function ootRecipe(name: string): OotRecipe {
  const r = OOT_RECIPES.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no out-of-tree recipe for ${name}`);
  return r;
}

/** The Debian packages that build modules for kernel release `kver` (e.g. "6.12.117+deb12-amd64"). */
export interface BuildPackages {
  /** linux-source-<series>: the whole tree as a tarball; only the modules' files are extracted. */
  source: string;
  /** linux-headers-<kver>: the flavour's build tree (Makefile, .config, Module.symvers). */
  headers: string;
  /** linux-headers-<kbase>-common: the headers and Makefiles shared by every flavour. */
  common: string;
  /** linux-kbuild-…: the host programs of scripts/ (modpost, fixdep, …). */
  kbuild: string;
  /** The source tarball's name inside the source package, under usr/src/. */
  tarball: string;
  /** Directory name at the top of the tarball. */
  tarTop: string;
}

/**
 * The packages for a kernel release; throws on a release string it does not understand. Debian 12's
 * 6.1 ("6.1.0-57-amd64") names kbuild after the series; later ones ("6.12.118+deb12-amd64") after
 * the base release.
 */
export function buildPackages(kver: string): BuildPackages {
  const plus = /^((\d+)\.(\d+)\.\d+\+deb\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/.exec(kver);
  const abi = /^((\d+)\.(\d+)\.\d+-\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/.exec(kver);
  const m = plus ?? abi;
  if (m === null) throw new Error(`cannot derive the module build packages from kernel release ${JSON.stringify(kver)}`);
  const base = m[1] as string;
  const series = `${m[2]}.${m[3]}`;
  return {
    source: `linux-source-${series}`,
    headers: `linux-headers-${kver}`,
    common: `linux-headers-${base}-common`,
    kbuild: plus ? `linux-kbuild-${base}` : `linux-kbuild-${series}`,
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
export function moduleMakeArgs(headersDir: string, moduleDir: string, jobs: number, vars: readonly string[] = []): string[] {
  return [
    '-C', headersDir, `M=${moduleDir}`, `-j${Math.max(1, jobs)}`,
    ...vars,
    // Module BTF needs pahole, which a build host rarely has; the guest has no use for it.
    'CONFIG_DEBUG_INFO_BTF_MODULES=',
    'modules',
  ];
}

/** The cached module `name` for `kver`, if it was built before. */
export function ootCachePath(cache: string, name: string, kver: string): string {
  return path.join(cache, name, kver, `${name}.ko`);
}

/** The major gcc version a kernel was built with, from its config (CONFIG_GCC_VERSION=140200 → 14). */
export function kernelGccMajor(configText: string): number | undefined {
  const v = parseKernelConfig(configText).get('GCC_VERSION');
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Math.floor(Number(v) / 10000) : undefined;
}

/**
 * Why the host cannot build modules for a kernel built with gcc `kernelMajor`, or undefined if it
 * can: kbuild passes flags of the kernel's compiler (gcc 14's -fmin-function-alignment, …) that an
 * older one rejects.
 */
export function compilerMismatch(kernelMajor: number | undefined, hostMajor: number | undefined): string | undefined {
  if (kernelMajor === undefined || hostMajor === undefined || hostMajor >= kernelMajor) return undefined;
  return `the kernel was built with gcc ${kernelMajor} and this host has gcc ${hostMajor}; its out-of-tree modules need a gcc-${kernelMajor} build root`;
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

async function moduleDepends(ko: string, recipe: OotRecipe, ctx: ProvisionContext): Promise<string[]> {
  const deps = parseModinfo((await runTool('modinfo', [ko], ctx.tool)).stdout).depends;
  return deps.length > 0 ? deps : [...recipe.defaultDepends];
}

/** The result of ensureOotModules(): what can be loaded, and why the others cannot. */
export interface OotResult {
  modules: ExtraModule[];
  failures: { name: string; why: string }[];
}

async function hostGccMajor(ctx: ProvisionContext): Promise<number | undefined> {
  try {
    const v = (await runTool('gcc', ['-dumpversion'], ctx.tool)).stdout.trim();
    return /^\d+/.test(v) ? Number.parseInt(v, 10) : undefined;
  } catch {
    return undefined;
  }
}

/** Downloads the packages once and builds every recipe of `recipes` for `kernel`. Call under the cache lock. */
async function buildModules(kernel: Kernel, recipes: readonly OotRecipe[], apt: RunnerApt, ctx: ProvisionContext): Promise<OotResult> {
  const result: OotResult = { modules: [], failures: [] };
  const failAll = (why: string): OotResult => ({ modules: [], failures: recipes.map((r) => ({ name: r.name, why })) });
  const missing = ['gcc', 'make', 'tar', 'xz'].filter((t) => !path.isAbsolute(toolPath(t)));
  if (missing.length > 0) return failAll(`missing ${missing.join(', ')} (apt-get install gcc make xz-utils)`);
  const configText = kernel.config ? fs.readFileSync(kernel.config, 'utf8') : '';
  const mismatch = compilerMismatch(kernelGccMajor(configText), await hostGccMajor(ctx));
  if (mismatch !== undefined) return failAll(mismatch);

  const pkgs = buildPackages(kernel.kver);
  // The source package must be the very version of the image we boot; the others carry the
  // same version (they are built from the same source package).
  const version = kernel.version ?? parsePolicyCandidate(await apt.cache(['policy', `linux-image-${kernel.kver}-unsigned`]));
  if (version === undefined) return failAll(`the runner's apt names no version of linux-image-${kernel.kver}-unsigned`);

  const tmp = await makeTempDir(ctx.cache);
  try {
    const debs = path.join(tmp, 'debs');
    fs.mkdirSync(debs);
    const names = [pkgs.source, pkgs.headers, pkgs.common, pkgs.kbuild];
    ctx.progress(`downloading ${names.join(' ')} ${version} to build ${recipes.map((r) => r.name).join(', ')} (about 160 MB)`);
    await apt.get(['download', ...names.map((n) => `${n}=${version}`)], { cwd: debs });
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

    ctx.progress(`extracting ${recipes.map((r) => r.dir).join(', ')} from the kernel source`);
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    const members = recipes.flatMap((r) =>
      r.files === '*' ? [`${pkgs.tarTop}/${r.dir}/*`] : r.files.map((f) => `${pkgs.tarTop}/${r.dir}/${f}`),
    );
    await runTool('tar', ['-xJf', path.join(root, 'usr/src', pkgs.tarball), '-C', src, '--wildcards', ...members], ctx.tool);

    for (const recipe of recipes) {
      try {
        // Each module gets its own copy of its sources (two recipes may share a directory).
        const moduleDir = path.join(tmp, 'build', recipe.name);
        fs.mkdirSync(moduleDir, { recursive: true });
        const from = path.join(src, pkgs.tarTop, recipe.dir);
        const files = recipe.files === '*' ? fs.readdirSync(from) : recipe.files;
        for (const f of files) fs.cpSync(path.join(from, f), path.join(moduleDir, f), { recursive: true });
        recipe.prepare(moduleDir);
        ctx.progress(`building ${recipe.name}.ko for ${kernel.kver}`);
        await runTool('make', moduleMakeArgs(headersDir, moduleDir, 2, recipe.makeVars), ctx.tool);
        const built = path.join(moduleDir, `${recipe.name}.ko`);
        if (!fs.existsSync(built)) throw new Error(`make built no ${recipe.name}.ko`);
        const out = path.join(tmp, 'out', recipe.name);
        fs.mkdirSync(out, { recursive: true });
        fs.copyFileSync(built, path.join(out, `${recipe.name}.ko`));
        const file = ootCachePath(ctx.cache, recipe.name, kernel.kver);
        await publish(out, path.dirname(file));
        result.modules.push({ name: recipe.name, file, depends: await moduleDepends(file, recipe, ctx) });
      } catch (err) {
        if (ctx.tool.signal?.aborted) throw err;
        result.failures.push({ name: recipe.name, why: (err as Error).message });
      }
    }
    return result;
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The out-of-tree modules `names` for `kernel`, built on first use and cached by kernel release.
 * Fast path (all cached): no lock, no apt. A module that cannot be built is a failure in the
 * result, never a rejection (the caller warns and boots without it); aborting still rejects.
 */
export async function ensureOotModules(
  kernel: Kernel,
  names: readonly string[],
  ctx: ProvisionContext,
  signal: AbortSignal,
  apt: () => Promise<RunnerApt>,
): Promise<OotResult> {
  const recipes = names.map(ootRecipe);
  const cachedOnes = async (): Promise<ExtraModule[]> => {
    const out: ExtraModule[] = [];
    for (const r of recipes) {
      const file = ootCachePath(ctx.cache, r.name, kernel.kver);
      if (fs.existsSync(file)) out.push({ name: r.name, file, depends: await moduleDepends(file, r, ctx) });
    }
    return out;
  };
  const cached = await cachedOnes();
  if (cached.length === recipes.length) return { modules: cached, failures: [] };
  return withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    const have = await cachedOnes();
    const todo = recipes.filter((r) => !have.some((m) => m.name === r.name));
    if (todo.length === 0) return { modules: have, failures: [] };
    let built: OotResult;
    try {
      built = await buildModules(kernel, todo, await apt(), ctx);
    } catch (err) {
      if (signal.aborted) throw err;
      built = { modules: [], failures: todo.map((r) => ({ name: r.name, why: (err as Error).message })) };
    }
    // Load order is the recipes' order, whichever were cached.
    const all = [...have, ...built.modules];
    return { modules: recipes.flatMap((r) => all.filter((m) => m.name === r.name)), failures: built.failures };
  });
}
