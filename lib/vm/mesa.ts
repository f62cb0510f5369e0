/**
 * Mesa for the interop tests: Debian 12's own Mesa (22.3) has no SYNC_FD export in lavapipe, no
 * dma-buf memory export and no EGL_ANDROID_native_fence_sync, so the runner fetches Mesa 25
 * (MESA_PACKAGES: lavapipe, the Vulkan loader, EGL/GBM, and kmscube) from bookworm-backports with an apt configuration of its own, and unpacks the
 * packages into the cache. Nothing is installed: the guest mounts the host's root, so a test
 * points the Vulkan loader at the unpacked tree (LD_LIBRARY_PATH, VK_DRIVER_FILES).
 *
 * Which packages: those `apt-get install -s -t bookworm-backports` says this machine lacks (or
 * has older), so the tree only adds to what the host root already provides (libc, libstdc++,
 * libLLVM and the like come from the machine). Layout: <cache>/mesa/<mesa version>-<hash>/ with
 * the unpacked `usr/`, `lvp_icd.json` (lavapipe's ICD manifest with an absolute library path) and
 * `mesa.json` (what it holds); <cache>/mesa/current names the tree in use. Once a tree is there it
 * is used as it is, with no network, until the cache is removed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runnerApt, type AptProfile, type RunnerApt } from './apt';
import { makeTempDir, publish, withCacheLock } from './cache';
import type { ProvisionContext } from './kernel';
import { runTool } from './tools';

/** The apt configuration Mesa comes from: Debian 12 and its backports (<cache>/apt-mesa). */
export const MESA_APT: AptProfile = {
  dir: 'apt-mesa',
  purpose: 'Mesa 25 for the interop tests only',
  suites: [
    { suite: 'bookworm', archive: 'main' },
    { suite: 'bookworm-backports', archive: 'main' },
  ],
};

/** The suite the packages are taken from (`apt-get -t`). */
export const MESA_SUITE = 'bookworm-backports';

/**
 * What the interop tests need: lavapipe, the Vulkan loader and its headers; Mesa's EGL and GBM
 * (llvmpipe) and Debian's kmscube, a third-party atomic KMS client.
 */
export const MESA_PACKAGES: readonly string[] = ['mesa-vulkan-drivers', 'libvulkan-dev', 'libegl-mesa0', 'libgbm1', 'libgl1-mesa-dri', 'kmscube'];

/** Where the libraries are in an unpacked tree. */
const LIB_DIR = 'usr/lib/x86_64-linux-gnu';
const META = 'mesa.json';
const CURRENT = 'current';

/** An unpacked Mesa in the cache. */
export interface MesaTree {
  /** The tree's root (holds usr/). */
  root: string;
  /** The version of mesa-vulkan-drivers, e.g. "25.0.7-2~bpo12+1". */
  version: string;
  /** `name=version` of every package unpacked. */
  packages: string[];
  /** The packages asked for (MESA_PACKAGES when it was made): a tree for another list is not used. */
  requested: string[];
  /** Bytes of .deb files downloaded for it. */
  downloadBytes: number;
  /** Milliseconds the download and unpacking took when the tree was made. */
  provisionMs: number;
  /** The library folder (for LD_LIBRARY_PATH and -L). */
  libDir: string;
  /** The header folder (for -I). */
  includeDir: string;
  /** lavapipe's ICD manifest, with an absolute library path (for VK_DRIVER_FILES). */
  icd: string;
  /** Mesa's DRI drivers (LIBGL_DRIVERS_PATH) and GBM backends (GBM_BACKENDS_PATH). */
  driDir: string;
  gbmDir: string;
  /** The kmscube program. */
  kmscube: string;
}

/** One package apt would install: `Inst name [old version] (new version suite [arch])`. */
export interface PlannedPackage {
  name: string;
  version: string;
}

/** The packages in `apt-get -s install` output (its `Inst` lines), in order. */
export function parseSimulatedInstall(output: string): PlannedPackage[] {
  const found: PlannedPackage[] = [];
  for (const m of output.matchAll(/^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) /gm)) found.push({ name: m[1] as string, version: m[2] as string });
  return found;
}

/** The cache folder name of a set of packages: the Mesa version and a hash of the whole set. */
export function mesaTreeName(packages: readonly PlannedPackage[]): string {
  const mesa = packages.find((p) => p.name === 'mesa-vulkan-drivers');
  if (mesa === undefined) throw new Error(`apt would not install mesa-vulkan-drivers from ${MESA_SUITE}`);
  const hash = createHash('sha256')
    .update([...MESA_PACKAGES, '', ...packages.map((p) => `${p.name}=${p.version}`).sort()].join('\n'))
    .digest('hex')
    .slice(0, 12);
  return `${mesa.version.replace(/[^A-Za-z0-9.+-]/g, '_')}-${hash}`;
}

/** lavapipe's ICD manifest with its library as an absolute path into `libDir`. */
export function fixIcd(manifest: string, libDir: string): string {
  const json = JSON.parse(manifest) as { ICD?: { library_path?: string } };
  const lib = json.ICD?.library_path;
  if (typeof lib !== 'string') throw new Error('lavapipe\'s ICD manifest has no ICD.library_path');
  json.ICD = { ...json.ICD, library_path: path.join(libDir, path.basename(lib)) };
  return `${JSON.stringify(json, null, 2)}\n`;
}

function readTree(root: string): MesaTree | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(root, META), 'utf8')) as Pick<MesaTree, 'version' | 'packages' | 'requested' | 'downloadBytes' | 'provisionMs'>;
    if (!Array.isArray(meta.requested) || meta.requested.join(' ') !== MESA_PACKAGES.join(' ')) return undefined;
    return {
      ...meta,
      root,
      libDir: path.join(root, LIB_DIR),
      includeDir: path.join(root, 'usr/include'),
      icd: path.join(root, 'lvp_icd.json'),
      driDir: path.join(root, LIB_DIR, 'dri'),
      gbmDir: path.join(root, LIB_DIR, 'gbm'),
      kmscube: path.join(root, 'usr/bin/kmscube'),
    };
  } catch {
    return undefined;
  }
}

/** The tree <cache>/mesa/current names, if it is there. */
export function findCachedMesa(cache: string): MesaTree | undefined {
  const dir = path.join(cache, 'mesa');
  try {
    const name = fs.readFileSync(path.join(dir, CURRENT), 'utf8').trim();
    return name === '' ? undefined : readTree(path.join(dir, name));
  } catch {
    return undefined;
  }
}

/** The packages this machine lacks for MESA_PACKAGES, as apt resolves them against its dpkg status. */
export async function planMesa(apt: RunnerApt): Promise<PlannedPackage[]> {
  const out = await apt.get(['-s', '-q', '-t', MESA_SUITE, '--no-install-recommends', 'install', ...MESA_PACKAGES]);
  return parseSimulatedInstall(out);
}

async function provisionMesa(ctx: ProvisionContext, apt: RunnerApt, packages: readonly PlannedPackage[], target: string): Promise<void> {
  const tmp = await makeTempDir(ctx.cache);
  try {
    const started = Date.now();
    const debs = path.join(tmp, 'debs');
    fs.mkdirSync(debs);
    ctx.progress(`downloading Mesa for the interop tests: ${packages.map((p) => p.name).join(' ')} (about 25 MB on a Debian 12 desktop, more where its libraries are missing)`);
    await apt.get(['-q', 'download', ...packages.map((p) => `${p.name}=${p.version}`)], { cwd: debs });
    const files = fs.readdirSync(debs).filter((f) => f.endsWith('.deb'));
    const downloadBytes = files.reduce((n, f) => n + fs.statSync(path.join(debs, f)).size, 0);
    const root = path.join(tmp, 'root');
    fs.mkdirSync(root);
    for (const deb of files) await runTool('dpkg', ['-x', path.join(debs, deb), root], ctx.tool);
    const libDir = path.join(target, LIB_DIR);
    const manifest = fs.readFileSync(path.join(root, 'usr/share/vulkan/icd.d/lvp_icd.json'), 'utf8');
    fs.writeFileSync(path.join(root, 'lvp_icd.json'), fixIcd(manifest, libDir));
    const version = packages.find((p) => p.name === 'mesa-vulkan-drivers')?.version ?? '';
    const meta = {
      version,
      packages: packages.map((p) => `${p.name}=${p.version}`),
      requested: MESA_PACKAGES,
      downloadBytes,
      provisionMs: Date.now() - started,
    };
    fs.writeFileSync(path.join(root, META), `${JSON.stringify(meta, null, 2)}\n`);
    await publish(root, target);
    ctx.progress(`Mesa ${version}: ${(downloadBytes / 1e6).toFixed(1)} MB downloaded and unpacked in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The Mesa tree for the interop tests: the cached one, else resolved with the runner's own apt
 * (Debian 12 + bookworm-backports), downloaded and unpacked under the cache lock.
 */
export async function ensureMesa(ctx: ProvisionContext, signal: AbortSignal): Promise<MesaTree> {
  const cached = findCachedMesa(ctx.cache);
  if (cached !== undefined) return cached;
  return withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    const again = findCachedMesa(ctx.cache);
    if (again !== undefined) return again;
    const apt = await runnerApt(ctx.cache, ctx.tool, ctx.progress, true, MESA_APT);
    const packages = await planMesa(apt);
    const dir = path.join(ctx.cache, 'mesa');
    const name = mesaTreeName(packages);
    if (readTree(path.join(dir, name)) === undefined) await provisionMesa(ctx, apt, packages, path.join(dir, name));
    const current = path.join(dir, `${CURRENT}.${process.pid}`);
    fs.writeFileSync(current, `${name}\n`);
    fs.renameSync(current, path.join(dir, CURRENT));
    const tree = readTree(path.join(dir, name));
    if (tree === undefined) throw new Error(`the Mesa tree ${path.join(dir, name)} is incomplete`);
    return tree;
  });
}
