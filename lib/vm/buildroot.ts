/**
 * A Debian build root for out-of-tree modules of a kernel the host cannot build for: Debian's 7.x
 * kernels are built with Debian 13's gcc 14, whose flags (-fmin-function-alignment, …) Debian 12's
 * gcc 12 rejects, and whose headers' prebuilt objtool needs glibc 2.38. The root is made from
 * Debian's own packages with `mmdebstrap` (a Debian 12 package): the kernel's Debian release
 * (trixie for "+deb13"), with its backports suite for the headers, and only what a module build
 * needs: the Essential set, make, binutils and the kernel's linux-headers package of the very
 * version booted, which pulls in its common headers, its kbuild tools (with pahole) and the gcc it
 * was built with. The root is the host's business only: nothing of it goes into the guest.
 *
 * Layout: <cache>/buildroot/<kver>/ (a chroot, about 400 MB), made once under the cache lock and
 * published complete (see cache.ts). A build runs `make` in it through `unshare` (a private mount
 * namespace with its own /proc, which objtool reads, and the module sources bind-mounted at /build)
 * and `chroot`, so the cached root is never written by a build and nothing stays mounted after it.
 * Needs root (chroot, mount); the runner says so otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEBIAN_KEYRING, type DebianArchive } from './apt';
import { makeTempDir, publish } from './cache';
import type { ProvisionContext } from './kernel';
import { runTool } from './tools';

/** Debian's release names by version, for the "+debNN" of a kernel release. */
const DEBIAN_CODENAMES: Readonly<Record<string, string>> = { '12': 'bookworm', '13': 'trixie', '14': 'forky' };

/** The Debian release a kernel release was built for ("7.3.4+deb13-amd64" → trixie), if it says. */
export function debianSuiteOf(kver: string): string | undefined {
  const m = /\+deb(\d+)-/.exec(kver);
  return m ? DEBIAN_CODENAMES[m[1] as string] : undefined;
}

/** Where the build root for kernel release `kver` lives. */
export function buildRootPath(cache: string, kver: string): string {
  return path.join(cache, 'buildroot', kver);
}

/** Where the module sources appear inside the root during a build (an empty directory in the root). */
export const BUILD_MOUNT = '/build';

/** The packages the root holds besides the Essential set. */
export function buildRootPackages(kver: string, version: string): string[] {
  return ['make', 'binutils', `linux-headers-${kver}=${version}`];
}

/** The mmdebstrap argv that makes the root for `kver` (package `version`) at `target`. */
export function mmdebstrapArgs(suite: string, kver: string, version: string, target: string, archive: DebianArchive, keyring = DEBIAN_KEYRING): string[] {
  return [
    '--mode=root',
    '--variant=essential',
    `--include=${buildRootPackages(kver, version).join(',')}`,
    // Documentation is most of what a build root would not use.
    ...['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*', '/usr/share/locale/*'].map((p) => `--dpkgopt=path-exclude=${p}`),
    suite,
    target,
    `deb [signed-by=${keyring}] ${archive.main} ${suite} main`,
    `deb [signed-by=${keyring}] ${archive.main} ${suite}-backports main`,
  ];
}

/**
 * The argv (for `unshare`) that runs `make makeArgs` in `root` with `sources` bind-mounted at
 * /build: a new mount and PID namespace with /proc mounted in the root, gone when make exits.
 */
export function chrootMakeArgs(root: string, sources: string, makeArgs: readonly string[]): string[] {
  const script = 'mount --bind "$1" "$2$3" && r=$2 && shift 3 && exec chroot "$r" make "$@"';
  return ['--fork', '--pid', '--mount', `--mount-proc=${path.join(root, 'proc')}`, '--', 'sh', '-c', script, 'sh', sources, root, BUILD_MOUNT, ...makeArgs];
}

/** Why this host cannot make or use a build root, or undefined if it can. */
export function buildRootUnavailable(haveTool: (name: string) => boolean, uid: number | undefined): string | undefined {
  const missing = ['mmdebstrap', 'unshare', 'chroot'].filter((t) => !haveTool(t));
  if (missing.length > 0) return `no ${missing.join(', ')} here (apt-get install --no-install-recommends mmdebstrap)`;
  if (uid !== 0) return 'making and entering it needs root (chroot, mount)';
  return undefined;
}

/**
 * The build root for kernel release `kver` (its packages' `version`): the cached one, else made
 * with mmdebstrap into a temporary directory and published. Call under the cache lock.
 */
export async function ensureBuildRoot(ctx: ProvisionContext, suite: string, kver: string, version: string, archive: DebianArchive): Promise<string> {
  const target = buildRootPath(ctx.cache, kver);
  if (fs.existsSync(path.join(target, BUILD_MOUNT))) return target;
  const tmp = await makeTempDir(ctx.cache);
  try {
    const root = path.join(tmp, 'root');
    ctx.progress(`making a ${suite} build root for ${kver} with mmdebstrap (gcc, make, linux-headers-${kver}: about 340 MB on disk, made once)`);
    await runTool('mmdebstrap', ['-q', ...mmdebstrapArgs(suite, kver, version, root, archive)], ctx.tool);
    // Written last: a root with /build is complete.
    fs.mkdirSync(path.join(root, BUILD_MOUNT));
    await publish(root, target);
    return target;
  } finally {
    await removeUnlessMounted(tmp, ctx);
  }
}

/** Removes `dir`, unless something is still mounted under it (a failed mmdebstrap's /proc): then it stays, and says so. */
async function removeUnlessMounted(dir: string, ctx: ProvisionContext): Promise<void> {
  let mounts = '';
  try {
    mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    mounts = '';
  }
  const under = mounts.split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
  if (under.length > 0) {
    ctx.progress(`leaving ${dir} in place: ${under.join(', ')} still mounted there (umount, then delete it)`);
    return;
  }
  await fs.promises.rm(dir, { recursive: true, force: true });
}
