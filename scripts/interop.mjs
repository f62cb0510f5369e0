#!/usr/bin/env node
// The interop tests' provisioning (npm test runs it before the kernel tests): Mesa 25 from
// bookworm-backports, unpacked into the cache by the VM runner's own apt (lib/vm/mesa.ts; nothing
// is installed), and test/interop/vk-interop.c compiled against it with the system C compiler into
// build/interop/vk-interop. It writes build/interop/interop.json, which test/vm/interop.test.mts
// reads in the guest: the program, and the environment that points the Vulkan loader at lavapipe.
//
//   node scripts/interop.mjs          (after `npx tsc -p tsconfig.json`: it uses dist/vm)
//
// EXPLICIT_SYNC_CACHE chooses the cache (a scratch one measures a fresh download), CC the compiler.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { defaultCacheRoot } = await import(join(root, 'dist/vm/cache.js'));
const { ensureMesa } = await import(join(root, 'dist/vm/mesa.js'));

const started = Date.now();
const cache = defaultCacheRoot();
const progress = (m) => process.stderr.write(`interop: ${m}\n`);
let mesa;
try {
  mesa = await ensureMesa({ cache, progress, tool: {} }, new AbortController().signal);
} catch (err) {
  console.error(`interop: could not provision Mesa for the interop tests: ${err.message}`);
  process.exit(1);
}

const source = join(root, 'test/interop/vk-interop.c');
const outDir = join(root, 'build/interop');
const binary = join(outDir, 'vk-interop');
const configFile = join(outDir, 'interop.json');
const cc = process.env.CC || 'cc';
const args = ['-std=c11', '-O1', '-g', '-Wall', '-Wextra', '-Werror', `-I${mesa.includeDir}`, '-o', binary, source, `-L${mesa.libDir}`, '-lvulkan'];
let previous;
try {
  previous = JSON.parse(readFileSync(configFile, 'utf8'));
} catch {
  previous = undefined;
}
const stale =
  !existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs || previous?.mesa?.root !== mesa.root || previous?.cc !== cc;
if (stale) {
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync(cc, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`interop: ${cc} ${args.join(' ')} failed${r.error ? `: ${r.error.message}` : ''}`);
    console.error('interop: it needs a C compiler (Debian: apt-get install --no-install-recommends gcc libc6-dev)');
    process.exit(1);
  }
}

const config = {
  cc,
  binary,
  mesa: { version: mesa.version, root: mesa.root, packages: mesa.packages, downloadBytes: mesa.downloadBytes, provisionMs: mesa.provisionMs },
  // The loader finds lavapipe alone (VK_ICD_FILENAMES for loaders older than 1.3.234), and Mesa's
  // device-select layer from the host's own Mesa stays out (NODEVICE_SELECT).
  env: {
    LD_LIBRARY_PATH: mesa.libDir,
    VK_DRIVER_FILES: mesa.icd,
    VK_ICD_FILENAMES: mesa.icd,
    NODEVICE_SELECT: '1',
    // Mesa 25's EGL and GBM (kmscube): glvnd's libEGL loads libEGL_mesa.so.0 from LD_LIBRARY_PATH,
    // which loads its DRI driver and GBM backend from these.
    LIBGL_DRIVERS_PATH: mesa.driDir,
    GBM_BACKENDS_PATH: mesa.gbmDir,
    // glvnd's libEGL looks for vendors in /usr/share/glvnd: on a machine without Mesa's EGL
    // installed there is none, so name Mesa 25's (it loads libEGL_mesa.so.0 from LD_LIBRARY_PATH).
    __EGL_VENDOR_LIBRARY_FILENAMES: join(mesa.root, 'usr/share/glvnd/egl_vendor.d/50_mesa.json'),
  },
  kmscube: mesa.kmscube,
};
writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
progress(`Mesa ${mesa.version} in ${mesa.root}; ${binary} ${stale ? 'built' : 'up to date'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
