#!/usr/bin/env node
// `npm run prebuild [-- x64,arm64]`: builds the addon for linux-x64 and linux-arm64 (glibc) into
// prebuilds/linux-<arch>/explicit_sync.node, which the npm tarball ships and the install step uses
// instead of compiling (scripts/install.js). Each build runs node-gyp in a scratch copy of
// binding.gyp and native/, so the checkout's own build/ is left alone. arm64 is cross-compiled
// with Debian's g++-aarch64-linux-gnu; without it that arch is skipped with a warning (the
// tarball then compiles from source on arm64). Node-API: one build serves every Node version the
// package supports. Beside each addon, build.json records what it needs: the newest glibc symbol
// version it links against, the Node-API version and the compiler.
// Its output goes to stderr: `npm pack --json` runs it (prepack) and its stdout must stay JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What building for each arch takes; `prefix` is the GNU toolchain's (empty: the host's). */
const TARGETS = {
  x64: { prefix: process.arch === 'x64' ? '' : 'x86_64-linux-gnu-' },
  arm64: { prefix: process.arch === 'arm64' ? '' : 'aarch64-linux-gnu-' },
};

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * The newest `<tag>_x.y[.z]` symbol version the addon needs (GLIBC: the oldest glibc it loads on;
 * GLIBCXX: the oldest libstdc++).
 */
export function versionFloor(objdumpOutput, tag = 'GLIBC') {
  const versions = [...objdumpOutput.matchAll(new RegExp(`\\b${tag}_(\\d+)\\.(\\d+)(?:\\.(\\d+))?`, 'g'))].map((m) => [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)]);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const top = versions.at(-1);
  return top === undefined ? null : top[2] ? top.join('.') : `${top[0]}.${top[1]}`;
}

function nodeGyp() {
  // npm runs scripts with npm_config_node_gyp set to its bundled node-gyp; else the devDependency.
  const bundled = process.env.npm_config_node_gyp;
  return bundled && existsSync(bundled) ? bundled : join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
}

function buildFor(arch) {
  const { prefix } = TARGETS[arch];
  const cxx = `${prefix}g++`;
  if (!has(cxx)) {
    console.warn(`prebuild: ${cxx} not found: no linux-${arch} prebuild (Debian: apt install g++-${arch === 'arm64' ? 'aarch64' : 'x86-64'}-linux-gnu)`);
    return false;
  }
  const scratch = mkdtempSync(join(tmpdir(), `explicit-sync-prebuild-${arch}-`));
  try {
    cpSync(join(root, 'binding.gyp'), join(scratch, 'binding.gyp'));
    cpSync(join(root, 'native'), join(scratch, 'native'), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'));
    const args = [nodeGyp(), 'rebuild', `--arch=${arch}`];
    // Node's headers: npm's nodedir setting, else the ones installed beside this Node (Debian's
    // nodejs has /usr/include/node); node-gyp would otherwise download them.
    const besideNode = join(dirname(dirname(process.execPath)), 'include', 'node', 'node_api.h');
    const nodedir = process.env.npm_config_nodedir || (existsSync(besideNode) ? dirname(dirname(process.execPath)) : undefined);
    if (nodedir) args.push(`--nodedir=${nodedir}`);
    console.error(`prebuild: linux-${arch} with ${cxx}`);
    const env = { ...process.env, CC: `${prefix}gcc`, CXX: cxx, LINK: cxx, AR: `${prefix}ar` };
    const r = spawnSync(process.execPath, args, { cwd: scratch, env, stdio: ['ignore', 2, 2] });
    if (r.status !== 0) throw new Error(`prebuild: node-gyp failed for linux-${arch} (status ${r.status})`);
    const out = join(root, 'prebuilds', `linux-${arch}`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const addon = join(out, 'explicit_sync.node');
    cpSync(join(scratch, 'build', 'Release', 'explicit_sync.node'), addon);
    execFileSync(`${prefix}strip`, ['--strip-unneeded', addon]);
    const symbols = execFileSync(`${prefix}objdump`, ['-T', addon], { encoding: 'utf8' });
    const info = {
      platform: 'linux',
      arch,
      libc: 'glibc',
      glibc: versionFloor(symbols),
      libstdcxx: versionFloor(symbols, 'GLIBCXX'),
      napi: Number(/NAPI_VERSION=(\d+)/.exec(readFileSync(join(root, 'binding.gyp'), 'utf8'))?.[1]),
      compiler: execFileSync(cxx, ['--version'], { encoding: 'utf8' }).split('\n')[0],
    };
    writeFileSync(join(out, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
    console.error(`prebuild: ${addon} (glibc >= ${info.glibc}, libstdc++ GLIBCXX >= ${info.libstdcxx})`);
    return true;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wanted = (process.argv[2] ?? 'x64,arm64').split(',').filter(Boolean);
  for (const arch of wanted) if (!(arch in TARGETS)) throw new Error(`prebuild: unknown arch ${arch} (x64 or arm64)`);
  const built = wanted.filter(buildFor);
  if (built.length === 0) process.exitCode = 1;
}
