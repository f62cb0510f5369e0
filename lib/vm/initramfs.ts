/**
 * The guest's initramfs: static busybox, the needed modules (decompressed) and /init.
 *
 * Cached as <cache>/initramfs/<kver>-<hash>.cpio.gz, where the hash covers everything that goes
 * into it (the /init text, the module list and files, busybox), so any change rebuilds it.
 * Nothing per-run is inside: the command, its cwd and environment reach the guest through the
 * per-run directory named on the kernel command line (see index.ts).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { makeTempDir, publish } from './cache';
import { INIT_MARKER, READY_MARKER, exitMarker } from './console';
import { GUEST_RUN_DIR } from './guest-env';
import type { Kernel, ProvisionContext } from './kernel';
import { BOOT_MODULES, BOOT_MODULES_IF_MODULAR, canonicalModuleName, hasModule, resolveModules, type ModuleFile } from './modules';
import { BUSYBOX_PATH, runTool, toolEnv, toolPath } from './tools';

/**
 * A module built out of tree (vkms, sw_sync: see modules-oot.ts): loaded after the in-tree
 * modules, whose names it lists in `depends`. One that fails to load is reported and left out of
 * the guest's driver list; the run goes on.
 */
export interface ExtraModule {
  name: string;
  /** An uncompressed .ko built against the same kernel. */
  file: string;
  depends: readonly string[];
}

/** Bump when the initramfs layout changes in a way the hash inputs do not show. */
const FORMAT = 3;

/** What /init loads and announces. */
export interface InitSpec {
  /** In-tree modules in load order: a failure to load one is fatal. */
  modules: readonly string[];
  /** Out-of-tree modules, loaded after them: a failure is reported and the module left out. */
  optional: readonly { module: string; driver: string }[];
  /** Drivers the kernel has built in or as the in-tree modules above (EXPLICIT_SYNC_VM_DRIVERS). */
  drivers: readonly string[];
  /**
   * Host path of a guest root of another architecture (arm64-root.ts): the command's root is then
   * that tree plus the host's other top-level folders, instead of the host's whole tree.
   */
  guestRoot?: string;
}

/**
 * The shell lines that mount the host root read-only and make $R the command's root, leaving the
 * host tree at $H. With a guest root: a tmpfs at $R holding bind mounts of the guest root's
 * top-level folders, then of every other top-level folder of the host (so the checkout, the cache
 * and the home folders keep their paths); the host's system folders (bin, lib, usr, etc, …) are
 * the guest root's, and proc, sys, dev, tmp and run are mounted fresh below.
 */
function renderRootMount(guestRoot: string | undefined): string {
  // cache=loose: the guest caches the host tree, which must not change while the command runs
  // (2-4x faster module loading than no cache; npx went from minutes to seconds).
  const mount9p = (at: string): string =>
    `mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot ${at} || fail "cannot mount the host root (9p)"`;
  if (guestRoot === undefined) return `R=/mnt/root H=/mnt/root
${mount9p('$R')}`;
  return `R=/mnt/root H=/mnt/host
mkdir -p $H && ${mount9p('$H')}
[ -x "$H${guestRoot}/bin/busybox" ] || fail "the guest root ${guestRoot} is missing on the host"
mount -t tmpfs -o mode=755 tmpfs $R || fail "cannot mount the root tmpfs"
for d in "$H${guestRoot}"/*; do n=\${d##*/}; mkdir "$R/$n" && mount --bind "$d" "$R/$n" || fail "cannot bind /$n of the guest root"; done
for d in "$H"/*; do
  n=\${d##*/}
  case $n in proc|sys|dev|tmp|run|lost+found) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] && [ ! -e "$R/$n" ] || continue
  mkdir "$R/$n" && mount --bind "$d" "$R/$n" || fail "cannot bind /$n of the host"
done
mkdir -p $R/proc $R/sys $R/dev $R/tmp $R/run`;
}

/**
 * /init, run by the kernel as PID 1 (busybox sh). Its console protocol is described in
 * console.ts; on a setup failure it says why and powers off without an exit marker.
 */
export function renderInit(spec: InitSpec): string {
  return `#!/bin/busybox sh
# explicit-sync guest /init (generated). PID 1: must never exit (the kernel would panic).
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo ${INIT_MARKER}
# Printk writes the console synchronously and would overtake (or, at power-off, cut short) what is
# still queued in the tty: drain it first (busybox stty sets the mode with TCSADRAIN).
off() { stty -onlcr; echo o >/proc/sysrq-trigger 2>/dev/null || poweroff -f; sleep 60; }
fail() { echo "explicit-sync init: $*"; off; }
mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
for m in ${spec.modules.join(' ')}; do
  insmod /lib/modules/$m.ko || fail "cannot load module $m"
done
drivers=${spec.drivers.join(',')}
for md in ${spec.optional.map((o) => `${o.module}:${o.driver}`).join(' ')}; do
  if insmod /lib/modules/\${md%%:*}.ko; then drivers=\${drivers:+$drivers,}\${md#*:}; else echo "explicit-sync init: warning: cannot load module \${md%%:*}; going on without it"; fi
done
run= nonce= timeout=
for arg in $(cat /proc/cmdline); do
  case $arg in es.run=*) run=\${arg#es.run=} ;; es.nonce=*) nonce=\${arg#es.nonce=} ;; es.timeout=*) timeout=\${arg#es.timeout=} ;; esac
done
[ -n "$run" ] && [ -n "$nonce" ] || fail "es.run= or es.nonce= missing from the kernel command line"
# The guest enforces the run's bound itself, even when the host runner is gone (killed, stopped):
# at es.timeout seconds after /init started, report status 124 (as timeout(1)) and power off.
# The host's own timer normally fires first (it started counting before the guest booted).
case $timeout in ''|*[!0-9]*) ;; *)
  { sleep $timeout; echo; echo "explicit-sync init: the run's --timeout passed in the guest; powering off"; echo "${exitMarker('$nonce', '124')}"; off; } &
esac
${renderRootMount(spec.guestRoot)}
# Read the per-run files before a tmpfs may hide them (the cache can be under /tmp).
cp "$R$run/run.sh" /run.sh && read -r cwd <"$R$run/cwd" || fail "cannot read $run on the host"
mkdir -p /hosttmp && mount --bind $H/tmp /hosttmp || fail "cannot bind the host /tmp"
mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys && mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount proc, sys, dev"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
for d in /tmp /run /var/tmp /dev/shm; do
  mkdir -p $R$d 2>/dev/null; mount -t tmpfs -o mode=1777 tmpfs $R$d || fail "cannot mount a tmpfs on $d"
done
mkdir -p $R${GUEST_RUN_DIR} && cp /run.sh $R${GUEST_RUN_DIR}/run.sh || fail "cannot write ${GUEST_RUN_DIR}"
# A working directory under /tmp is hidden by the tmpfs: show the host's copy of its top folder
# under /tmp at the same path (the whole checkout when the command runs in a subfolder of it).
case $cwd in /tmp/?*) top=\${cwd#/tmp/}; top=/tmp/\${top%%/*}; mkdir -p "$R$top" && mount --bind "/hosttmp/\${top#/tmp/}" "$R$top" || fail "cannot bind $top" ;; esac
stty -onlcr
echo ${READY_MARKER}
env -i EXPLICIT_SYNC_VM_DRIVERS=$drivers /bin/chroot $R /bin/sh ${GUEST_RUN_DIR}/run.sh
echo "${exitMarker('$nonce', '$?')}"
off
`;
}

/** Cache key of an initramfs: every input that changes its content. */
export function initramfsKey(
  kver: string,
  init: string,
  modules: readonly ModuleFile[],
  busyboxId: string,
  extras: readonly string[],
): string {
  const hash = createHash('sha256')
    .update(JSON.stringify({ FORMAT, kver, init, modules: modules.map((m) => [m.name, m.file]), busyboxId, extras }))
    .digest('hex');
  return `${kver}-${hash.slice(0, 16)}`;
}

function fileDigest(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every path under `dir`, relative and sorted, directories before their contents (for cpio). */
function listTree(dir: string, prefix = '.'): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = `${prefix}/${entry.name}`;
    out.push(rel);
    if (entry.isDirectory()) out.push(...listTree(dir, rel));
  }
  return out;
}

async function stage(
  root: string,
  init: string,
  modules: readonly ModuleFile[],
  extras: readonly ExtraModule[],
  ctx: ProvisionContext,
  busybox: string,
): Promise<void> {
  for (const d of ['bin', 'dev', 'proc', 'sys', 'mnt/root', 'lib/modules', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  // The applets are listed by the host's busybox (the same Debian package for any architecture).
  const applets = (await runTool(BUSYBOX_PATH, ['--list'], ctx.tool)).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a));
  for (const applet of applets) if (applet !== 'busybox') fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  fs.writeFileSync(path.join(root, 'init'), init, { mode: 0o755 });
  for (const m of modules) {
    const target = path.join(root, 'lib/modules', `${m.name}.ko`);
    // Compression differs per kernel: Debian's 6.1 ships plain .ko files, 6.12 and later .ko.xz.
    if (!m.file.endsWith('.xz')) {
      fs.copyFileSync(m.file, target);
      continue;
    }
    const out = fs.openSync(target, 'w');
    try {
      await runTool(BUSYBOX_PATH, ['unxz', '-c', m.file], { ...ctx.tool, stdoutFd: out });
    } finally {
      fs.closeSync(out);
    }
  }
  for (const e of extras) fs.copyFileSync(e.file, path.join(root, 'lib/modules', `${canonicalModuleName(e.name)}.ko`));
}

async function writeCpioGz(root: string, output: string): Promise<void> {
  const cpio = spawn(toolPath('cpio'), ['--quiet', '-o', '-H', 'newc', '-R', '0:0'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
  let stderr = '';
  cpio.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve, reject) => {
    cpio.on('error', reject);
    cpio.on('close', resolve);
  });
  cpio.stdin.end(`${listTree(root).join('\n')}\n`);
  await pipeline(cpio.stdout, createGzip({ level: 6 }), fs.createWriteStream(output));
  const code = await exited;
  if (code !== 0) throw new Error(`cpio failed (exit ${code}): ${stderr.trim()}`);
}

/**
 * An image not booted for this long is removed when another image of its kernel is built. Images
 * of one kernel differ by their inputs (with or without vkms, another checkout's /init), and runs
 * of several of them may be under way at once: removing a sibling at once would pull it from
 * under a run that still has to boot it (a second boot, say).
 */
export const STALE_IMAGE_MS = 7 * 24 * 3600 * 1000;

/** Marks an image as used now (its mtime), so that pruning keeps it. */
export function touchImage(file: string): void {
  const now = new Date();
  try {
    fs.utimesSync(file, now, now);
  } catch {
    // Gone meanwhile: the caller's existence check decides what to do.
  }
}

/** Removes the images of `kver` other than `keep` that were not used for STALE_IMAGE_MS. */
export function pruneStaleImages(dir: string, kver: string, keep: string, now = Date.now()): void {
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(`${kver}-`) || name === keep) continue;
    const file = path.join(dir, name);
    try {
      if (now - fs.statSync(file).mtimeMs > STALE_IMAGE_MS) fs.rmSync(file, { force: true });
    } catch {
      // Removed by another run meanwhile.
    }
  }
}

/** An initramfs, identified by its inputs, that may or may not be built yet. */
export interface InitramfsPlan {
  /** Where the image is cached; it exists once `build` has run (by this or another run). */
  path: string;
  /** Builds and publishes the image. Call under the cache lock, and only if `path` is missing. */
  build(): Promise<void>;
}

/** The guest's drivers: in-tree modules to load (dependencies are added), built-in ones, out-of-tree ones. */
export interface GuestModules {
  /** In-tree modules of drivers, by module name, with the driver each one gives. */
  modules: readonly { module: string; driver: string }[];
  /** Drivers built into the kernel. */
  builtin: readonly string[];
  /** Out-of-tree modules, with the driver each one gives (its module name). */
  extras: readonly ExtraModule[];
}

/** The guest's userspace when it is not the host's: its root, and the static busybox for the initramfs. */
export interface ForeignRoot {
  dir: string;
  busybox: string;
}

/** Works out the initramfs for `kernel` (its module order and cache key) without building it. */
export async function planInitramfs(kernel: Kernel, ctx: ProvisionContext, guest: GuestModules, foreign?: ForeignRoot): Promise<InitramfsPlan> {
  const extras = guest.extras;
  const modular: string[] = [];
  for (const m of BOOT_MODULES_IF_MODULAR) if (await hasModule(kernel.root, kernel.kver, m, ctx.tool)) modular.push(m);
  const roots = [...modular, ...BOOT_MODULES, ...guest.modules.map((m) => m.module), ...extras.flatMap((e) => e.depends)];
  const modules = await resolveModules(kernel.root, kernel.kver, roots, ctx.tool);
  const init = renderInit({
    modules: modules.map((m) => m.name),
    optional: extras.map((e) => ({ module: canonicalModuleName(e.name), driver: canonicalModuleName(e.name) })),
    drivers: [...guest.modules.map((m) => m.driver), ...guest.builtin],
    ...(foreign !== undefined ? { guestRoot: foreign.dir } : {}),
  });
  const busybox = foreign?.busybox ?? BUSYBOX_PATH;
  const bb = fs.statSync(busybox);
  const key = initramfsKey(kernel.kver, init, modules, `${bb.size}:${bb.mtimeMs}`, extras.map((e) => `${e.name}:${fileDigest(e.file)}`));
  const target = path.join(ctx.cache, 'initramfs', `${key}.cpio.gz`);
  const build = async (): Promise<void> => {
    ctx.progress(`building initramfs (${[...modules.map((m) => m.name), ...extras.map((e) => e.name)].join(' ')})`);
    const tmp = await makeTempDir(ctx.cache);
    try {
      const root = path.join(tmp, 'root');
      await stage(root, init, modules, extras, ctx, busybox);
      const image = path.join(tmp, 'initramfs.cpio.gz');
      await writeCpioGz(root, image);
      await publish(image, target);
      pruneStaleImages(path.dirname(target), kernel.kver, path.basename(target));
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  };
  return { path: target, build };
}
