/**
 * Building the out-of-tree modules (the recipes of modules-oot.ts) for the kernel a run boots,
 * once per kernel release, from Debian's own packages of that kernel's very version:
 * - on the host, with its gcc and make, against the headers and kbuild packages extracted into a
 *   temporary directory, when the host's gcc is at least the one the kernel was built with (6.1 and
 *   6.12 on Debian 12);
 * - else in a Debian build root of the kernel's release (buildroot.ts; 7.x, built with gcc 14).
 * Either way the kernel source package gives the module's files. A build that fails is recorded
 * (oot-failures.ts) and not tried again until its inputs change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { machineArchive, type RunnerApt } from './apt';
import { BUILD_MOUNT, buildRootUnavailable, chrootMakeArgs, debianSuiteOf, ensureBuildRoot } from './buildroot';
import { makeTempDir, publish, withCacheLock } from './cache';
import type { ExtraModule } from './initramfs';
import { ARCHES } from './arch';
import { parsePolicyCandidate, releaseArch, type Kernel, type ProvisionContext } from './kernel';
import { parseModinfo } from './modules';
import {
  buildPackages,
  compilerMismatch,
  kernelGccMajor,
  moduleMakeArgs,
  ootCachePath,
  ootRecipe,
  rehomeMakefile,
  rehomeSymlink,
  type OotRecipe,
} from './modules-oot';
import { clearFailures, failureReason, readFailure, recordFailure, RETRY_BUILD_ENV, type BuildInputs } from './oot-failures';
import { runTool, toolPath } from './tools';

/** The result of ensureOotModules(): what can be loaded, and why the others cannot. */
export interface OotResult {
  modules: ExtraModule[];
  failures: { name: string; why: string }[];
}

/**
 * Where the modules are built: on the host, or in the build root of a Debian release. A host build
 * for another architecture (arm64) cross-compiles: kbuild's host programs are the amd64 kbuild
 * package's, the compiler is `${cross}gcc`, and make gets ARCH= and CROSS_COMPILE=.
 */
export type OotBuilder = { kind: 'host'; label: string; makeVars?: readonly string[] } | { kind: 'root'; suite: string; label: string };

/** The cross-compiling make variables for a kernel of another architecture than the host's, if it is one. */
export function crossMakeVars(kver: string): readonly string[] | undefined {
  const arch = releaseArch(kver) === 'arm64' ? ARCHES.arm64 : undefined;
  return arch?.crossCompile === undefined ? undefined : [`ARCH=${arch.kbuildArch}`, `CROSS_COMPILE=${arch.crossCompile}`];
}

/** How the modules of a kernel built with gcc `kernelMajor` are built here, or why they cannot be. */
export function chooseBuilder(
  kver: string,
  kernelMajor: number | undefined,
  hostMajor: number | undefined,
  haveTool: (name: string) => boolean,
  uid: number | undefined,
): OotBuilder | { why: string } {
  const missing = ['tar', 'xz'].filter((t) => !haveTool(t));
  if (missing.length > 0) return { why: `missing ${missing.join(', ')} (apt-get install tar xz-utils)` };
  const mismatch = compilerMismatch(kernelMajor, hostMajor);
  const hostTools = ['gcc', 'make'].filter((t) => !haveTool(t));
  if (mismatch === undefined && hostTools.length === 0) return { kind: 'host', label: `host gcc ${hostMajor ?? '(unknown version)'}` };
  // The kernel's gcc is newer than the host's, or the host has none: a build root, where one can be made.
  const suite = debianSuiteOf(kver);
  const unavailable = buildRootUnavailable(haveTool, uid);
  if (suite !== undefined && unavailable === undefined) return { kind: 'root', suite, label: `${suite} build root (gcc ${kernelMajor ?? 'of the release'})` };
  if (mismatch === undefined) return { why: `missing ${hostTools.join(', ')} (apt-get install gcc make xz-utils)` };
  if (suite === undefined) return { why: `${mismatch}, and ${kver} names no Debian release to make one of` };
  return { why: `${mismatch}: ${unavailable}` };
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

async function hostGccMajor(ctx: ProvisionContext, gcc = 'gcc'): Promise<number | undefined> {
  try {
    const v = (await runTool(gcc, ['-dumpversion'], ctx.tool)).stdout.trim();
    return /^\d+/.test(v) ? Number.parseInt(v, 10) : undefined;
  } catch {
    return undefined;
  }
}

/** The runner's build code, as the failure records' inputs (a change of recipe or patch retries). */
function buildCode(): string {
  return ['modules-oot', 'oot-build', 'buildroot'].map((f) => {
    try {
      return fs.readFileSync(path.join(__dirname, `${f}.js`), 'utf8');
    } catch {
      return f;
    }
  }).join('\n');
}

/** What apt (and so mmdebstrap) says when the archive cannot be reached. */
const NETWORK_FAILURE = /Failed to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection (?:refused|timed out)/;

/** A build step that failed: `record` when it says something about the inputs (not a download). */
class StepError extends Error {
  constructor(message: string, readonly record: boolean) {
    super(message);
  }
}

/** Extracts the headers and kbuild packages in `debs` into `root` and makes them work from there (host builds). */
async function unpackHeaders(debs: string, root: string, headers: string, ctx: ProvisionContext): Promise<string> {
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
  const headersDir = path.join(root, 'usr/src', headers);
  const makefile = path.join(headersDir, 'Makefile');
  fs.writeFileSync(makefile, rehomeMakefile(fs.readFileSync(makefile, 'utf8'), root));
  return headersDir;
}

/** What buildModules() gives back: the built modules, and failures that say whether to record them. */
interface Built {
  modules: ExtraModule[];
  failures: { name: string; error: StepError }[];
}

/** Downloads the packages once and builds every recipe of `recipes` for `kernel` with `builder`. Call under the cache lock. */
async function buildModules(kernel: Kernel, recipes: readonly OotRecipe[], builder: OotBuilder, version: string, apt: RunnerApt, ctx: ProvisionContext): Promise<Built> {
  const result: Built = { modules: [], failures: [] };
  const failAll = (err: StepError): Built => ({ modules: [], failures: recipes.map((r) => ({ name: r.name, error: err })) });
  const pkgs = buildPackages(kernel.kver);
  const tmp = await makeTempDir(ctx.cache);
  try {
    const debs = path.join(tmp, 'debs');
    fs.mkdirSync(debs);
    // The source package must be the very version of the image we boot; the others carry the
    // same version (they are built from the same source package).
    const names = builder.kind === 'host' ? [pkgs.source, pkgs.headers, pkgs.common, pkgs.kbuild] : [pkgs.source];
    ctx.progress(`downloading ${names.join(' ')} ${version} to build ${recipes.map((r) => r.name).join(', ')} (about 160 MB)`);
    try {
      await apt.get(['download', ...names.map((n) => `${n}=${version}`)], { cwd: debs });
    } catch (err) {
      if (ctx.tool.signal?.aborted) throw err;
      return failAll(new StepError((err as Error).message, false));
    }
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    const sourceDeb = fs.readdirSync(debs).find((f) => f.startsWith(`${pkgs.source}_`));
    if (sourceDeb === undefined) return failAll(new StepError(`apt-get download gave no ${pkgs.source} package`, false));
    await runTool('dpkg', ['-x', path.join(debs, sourceDeb), src], ctx.tool);
    fs.rmSync(path.join(debs, sourceDeb));

    let headersDir: string;
    let make: (moduleDir: string, vars: readonly string[]) => Promise<unknown>;
    if (builder.kind === 'host') {
      headersDir = await unpackHeaders(debs, path.join(tmp, 'root'), pkgs.headers, ctx);
      const cross = builder.makeVars ?? [];
      make = (moduleDir, vars) => runTool('make', moduleMakeArgs(headersDir, moduleDir, 2, [...vars, ...cross]), ctx.tool);
    } else {
      let root: string;
      try {
        root = await ensureBuildRoot(ctx, builder.suite, kernel.kver, version, machineArchive());
      } catch (err) {
        if (ctx.tool.signal?.aborted) throw err;
        // A root that could not be downloaded (no network) is tried again next run; one that failed otherwise is recorded.
        const message = (err as Error).message;
        return failAll(new StepError(`making the ${builder.suite} build root failed: ${message}`, !NETWORK_FAILURE.test(message)));
      }
      headersDir = `/usr/src/${pkgs.headers}`;
      make = (moduleDir, vars) =>
        runTool('unshare', chrootMakeArgs(root, path.join(tmp, 'build'), moduleMakeArgs(headersDir, path.posix.join(BUILD_MOUNT, path.basename(moduleDir)), 2, vars)), ctx.tool);
    }

    ctx.progress(`extracting ${recipes.map((r) => r.dir).join(', ')} from the kernel source`);
    const members = recipes.flatMap((r) =>
      r.files === '*' ? [`${pkgs.tarTop}/${r.dir}/*`] : r.files.map((f) => `${pkgs.tarTop}/${r.dir}/${f}`),
    );
    await runTool('tar', ['-xJf', path.join(src, 'usr/src', pkgs.tarball), '-C', src, '--wildcards', ...members], ctx.tool);

    for (const recipe of recipes) {
      try {
        // Each module gets its own copy of its sources (two recipes may share a directory).
        const moduleDir = path.join(tmp, 'build', recipe.name);
        fs.mkdirSync(moduleDir, { recursive: true });
        const from = path.join(src, pkgs.tarTop, recipe.dir);
        const files = recipe.files === '*' ? fs.readdirSync(from) : recipe.files;
        for (const f of files) fs.cpSync(path.join(from, f), path.join(moduleDir, f), { recursive: true });
        recipe.prepare(moduleDir);
        ctx.progress(`building ${recipe.name}.ko for ${kernel.kver} (${builder.label})`);
        await make(moduleDir, recipe.makeVars);
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
        result.failures.push({ name: recipe.name, error: new StepError((err as Error).message, true) });
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
 * result, never a rejection (the caller warns and boots without it); aborting still rejects. A
 * build that failed before with the same inputs is not tried again (its log is named) unless
 * $EXPLICIT_SYNC_VM_RETRY_BUILD is 1.
 */
export async function ensureOotModules(
  kernel: Kernel,
  names: readonly string[],
  ctx: ProvisionContext,
  signal: AbortSignal,
  apt: () => Promise<RunnerApt>,
  env: Readonly<Record<string, string | undefined>> = process.env,
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
  // Load order is the recipes' order, whichever were cached.
  const ordered = (mods: readonly ExtraModule[]): ExtraModule[] => recipes.flatMap((r) => mods.filter((m) => m.name === r.name));
  const cached = await cachedOnes();
  if (cached.length === recipes.length) return { modules: cached, failures: [] };

  const configText = kernel.config ? fs.readFileSync(kernel.config, 'utf8') : '';
  const have = (t: string): boolean => path.isAbsolute(toolPath(t));
  const cross = crossMakeVars(kernel.kver);
  let builder: OotBuilder | { why: string };
  if (cross === undefined) {
    builder = chooseBuilder(kernel.kver, kernelGccMajor(configText), await hostGccMajor(ctx), have, process.getuid?.());
  } else {
    const gcc = `${ARCHES.arm64.crossCompile ?? ''}gcc`;
    const crossBuilder = chooseBuilder(kernel.kver, kernelGccMajor(configText), await hostGccMajor(ctx, gcc), (t) => have(t === 'gcc' ? gcc : t), process.getuid?.());
    builder = 'kind' in crossBuilder && crossBuilder.kind === 'host'
      ? { kind: 'host', label: `host ${gcc} ${crossBuilder.label.replace(/^host gcc /, '')}`, makeVars: cross }
      : { why: 'why' in crossBuilder ? crossBuilder.why.replace(/\bgcc\b/, gcc) : `cross builds need ${gcc} at least the kernel's (no build root for another architecture)` };
  }
  const missing = recipes.filter((r) => !cached.some((m) => m.name === r.name));
  if ('why' in builder) return { modules: cached, failures: missing.map((r) => ({ name: r.name, why: builder.why })) };

  const code = buildCode();
  // The kernel's packages' version, as the cache recorded it (older caches did not: the release
  // then stands for it), so that a run can look a failure up without asking apt.
  const inputsOf = (r: OotRecipe): BuildInputs => ({ kver: kernel.kver, version: kernel.version ?? '(not recorded)', module: r.name, builder: builder.label, code });
  const failures: OotResult['failures'] = [];
  const retry = env[RETRY_BUILD_ENV] === '1';
  let todo = missing;
  if (!retry) {
    todo = missing.filter((r) => {
      const before = readFailure(ctx.cache, inputsOf(r));
      if (before !== undefined) {
        failures.push({ name: r.name, why: `${before.reason} (it failed before with the same inputs; log: ${before.log}; ${RETRY_BUILD_ENV}=1 tries again)` });
      }
      return before === undefined;
    });
  }
  if (todo.length === 0) return { modules: cached, failures };

  return withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    const now = await cachedOnes();
    const left = todo.filter((r) => !now.some((m) => m.name === r.name));
    if (left.length === 0) return { modules: ordered(now), failures };
    let built: Built;
    let version = kernel.version;
    try {
      const a = await apt();
      version ??= parsePolicyCandidate(await a.cache(['policy', `linux-image-${kernel.kver}-unsigned`]));
      if (version === undefined) throw new StepError(`the runner's apt names no version of linux-image-${kernel.kver}-unsigned`, false);
      built = await buildModules(kernel, left, builder, version, a, ctx);
    } catch (err) {
      if (signal.aborted) throw err;
      built = { modules: [], failures: left.map((r) => ({ name: r.name, error: err instanceof StepError ? err : new StepError((err as Error).message, false) })) };
    }
    for (const m of built.modules) clearFailures(ctx.cache, kernel.kver, m.name);
    for (const f of built.failures) {
      const recipe = ootRecipe(f.name);
      if (f.error.record) {
        const log = recordFailure(ctx.cache, inputsOf(recipe), f.error.message);
        failures.push({ name: f.name, why: `${failureReason(f.error.message)} (log: ${log}; not tried again until its inputs change, or ${RETRY_BUILD_ENV}=1)` });
      } else {
        failures.push({ name: f.name, why: f.error.message });
      }
    }
    return { modules: ordered([...now, ...built.modules]), failures };
  });
}
