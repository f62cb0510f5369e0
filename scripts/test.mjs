#!/usr/bin/env node
// `npm test`: build, run the host tests, run the kernel tests inside the VM (or directly where
// this machine has /dev/dri), and end with one line of totals: "N passed, M failed".
//
//   node scripts/test.mjs [--host-only | --vm-only | --pack-only | --build-only] [--no-pack] [--no-build] [--direct]
//                         [--kernel <6.1|6.12|newest|release>[,<…>]] [--kernels] [--arch arm64]
//
// --direct runs the kernel tests on this machine's own /dev/dri instead of booting the VM (the
// default when EXPLICIT_SYNC_IN_VM=1 or when /dev/dri exists and EXPLICIT_SYNC_FORCE_VM is unset).
//
// --kernel boots that kernel for the kernel tests (default 6.12; several, comma-separated, run one
// after another); --kernels (npm run test:kernels) runs them on 6.1, 6.12 and newest. Each kernel's
// totals and time are printed, then one line of totals over everything.
//
// --arch arm64 (npm run test:arm64) runs the host tests and the kernel tests inside the arm64 guest
// (`explicit-sync vm --arch arm64`: emulated, with Node's arm64 build of this Node's major), with
// the cross-built prebuilds/linux-arm64 addon (the build step makes it: scripts/prebuild.mjs). The
// interop tests are left out there: their Mesa and Vulkan program are x86-64 builds. Its package
// test packs the tarball here (with the dependencies, from node_modules, as tarballs) and installs
// it in the guest, offline and with no compiler (test/pack/guest-install.test.mts); --no-pack skips it.
//
// Conformance mode: EXPLICIT_SYNC_DEVICE=/dev/dri/renderD128 npm test runs only the device-generic
// kernel tests (dist-test/conformance) against that node, directly on this machine (in the VM only
// with EXPLICIT_SYNC_FORCE_VM=1), whatever its driver. Tests needing what the driver lacks skip
// with a printed reason, and skips are listed, not failed. Without the variable the kernel tests
// are dist-test/vm plus dist-test/conformance on the nodes found, and in the VM any skip fails.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const kernelAt = argv.findIndex((a) => a === '--kernel' || a.startsWith('--kernel='));
let kernels = ['6.12'];
if (kernelAt !== -1) {
  const value = argv[kernelAt].includes('=') ? argv[kernelAt].slice('--kernel='.length) : argv.splice(kernelAt + 1, 1)[0];
  argv.splice(kernelAt, 1);
  if (!value) {
    console.error('test.mjs: --kernel needs a value (6.1, 6.12, newest or a release)');
    process.exit(2);
  }
  kernels = value.split(',').filter((k) => k !== '');
}
const archAt = argv.findIndex((a) => a === '--arch' || a.startsWith('--arch='));
let arch = 'x64';
if (archAt !== -1) {
  arch = argv[archAt].includes('=') ? argv[archAt].slice('--arch='.length) : argv.splice(archAt + 1, 1)[0];
  argv.splice(archAt, 1);
  if (arch !== 'x64' && arch !== 'arm64') {
    console.error('test.mjs: --arch needs x64 or arm64');
    process.exit(2);
  }
}
const arm64 = arch === 'arm64';
const args = new Set(argv);
if (args.has('--kernels')) kernels = ['6.1', '6.12', 'newest'];
const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');

// The kernel tests run on the Node that runs this script (the guest sees the host's tree), with
// its directory first on the guest's PATH so that tests spawning `node` get the same one
// (`npm run test:node` runs this script on other Node versions).
// In the arm64 guest, `node` is the guest's own (its userspace's /usr/local/bin/node).
function guestNode() {
  if (arm64) return ['--arch', 'arm64', '--', 'node'];
  const { GUEST_PATH } = createRequire(import.meta.url)('../dist/vm/guest-env.js');
  return ['--env', `PATH=${dirname(process.execPath)}:${GUEST_PATH}`, '--', process.execPath];
}

function step(title) {
  process.stderr.write(`\n== ${title}\n`);
}

function build() {
  step('build');
  const native = existsSync(join(root, 'build', 'Makefile')) ? ['build'] : ['rebuild'];
  for (const [cmd, argv] of [
    [process.execPath, [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), ...native]],
    [process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']],
    [process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.test.json']],
    // The README's snippets, type-checked against the build and compiled for test/vm/readme.
    [process.execPath, [join(root, 'scripts', 'readme-snippets.mjs')]],
    // The arm64 guest loads the cross-built prebuild (build/Release is this machine's x64 build).
    ...(arm64 ? [[process.execPath, [join(root, 'scripts', 'prebuild.mjs'), 'arm64']]] : []),
  ]) {
    const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.log('build failed');
      console.log('0 passed, 1 failed');
      process.exit(1);
    }
  }
}

/** Runs a command, streaming its output, and returns { code, output }. */
function run(cmd, argv, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let output = '';
    const pipe = (stream, to) =>
      stream.on('data', (chunk) => {
        output += chunk;
        to.write(chunk);
      });
    pipe(child.stdout, process.stdout);
    pipe(child.stderr, process.stderr);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** mocha's own summary: "N passing", "M failing", "K pending". Null when mocha never got there. */
export function parseMochaSummary(output) {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (re) => Number(re.exec(plain)?.[1] ?? 0);
  if (!/^\s*\d+ passing/m.test(plain)) return null;
  return { passed: num(/^\s*(\d+) passing/m), failed: num(/^\s*(\d+) failing/m), pending: num(/^\s*(\d+) pending/m) };
}

/** The reasons conformance tests printed when they skipped ("skipped: …" lines). */
export function skipReasons(output) {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  return [...plain.matchAll(/^\s*skipped: (.*)$/gm)].map((m) => m[1].trim());
}

// A kernel run's bound covers a fresh cache's provisioning (apt lists, the kernel packages, the
// out-of-tree modules: minutes) as well as the suite; EXPLICIT_SYNC_VM_TIMEOUT overrides it.
const VM_TIMEOUT = process.env.EXPLICIT_SYNC_VM_TIMEOUT ? [] : ['--timeout', '1800'];

// The VM runner's status for a guest that panicked or ended without reporting its command's status.
const VM_DIED = 125;

async function suite(title, cmd, argv, { skipsFail, env, retryVmDeath = false }) {
  step(title);
  let { code, output } = await run(cmd, argv, env);
  if (retryVmDeath && code === VM_DIED && parseMochaSummary(output) === null) {
    // A software-emulated guest has (rarely) panicked in idle while booting. Boot once more, and
    // count only the second run: a guest that dies again, or after mocha reported, fails the run.
    console.log(`${title}: the VM died before mocha reported (exit status ${code}); booting it once more`);
    ({ code, output } = await run(cmd, argv, env));
  }
  const reasons = skipReasons(output);
  if (reasons.length > 0) {
    console.log(`${title}: skip reasons:`);
    for (const r of new Set(reasons)) console.log(`  - ${r}`);
  }
  const s = parseMochaSummary(output);
  if (s === null) {
    console.log(`${title}: no mocha summary (exit status ${code}): counted as one failure`);
    return { passed: 0, failed: 1, skipped: 0 };
  }
  let failed = s.failed;
  if (skipsFail && s.pending > 0) {
    console.log(`${title}: ${s.pending} test(s) skipped where every kernel feature must be tested: counted as failures`);
    failed += s.pending;
  }
  if (code !== 0 && failed === 0) failed = 1; // e.g. a hook failed, or the VM died after the summary
  return { passed: s.passed, failed, skipped: skipsFail ? 0 : s.pending };
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const add = (r) => {
  totals.passed += r.passed;
  totals.failed += r.failed;
  totals.skipped += r.skipped;
};

if (!args.has('--no-build')) build();
if (args.has('--build-only')) process.exit(0);
step(`tests on Node ${process.version}`);

if (arm64 && !existsSync(join(root, 'prebuilds', 'linux-arm64', 'explicit_sync.node'))) {
  // --no-build, and no prebuild yet (npm pack makes one): make it, the guest has nothing else to load.
  step('arm64 prebuild (scripts/prebuild.mjs arm64)');
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'prebuild.mjs'), 'arm64'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(join(root, 'prebuilds', 'linux-arm64', 'explicit_sync.node'))) {
    console.log('the arm64 prebuild failed: the arm64 guest cannot load the addon');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}
const cli = join(root, 'bin', 'explicit-sync.js');

if (!args.has('--vm-only') && !args.has('--pack-only')) {
  const hostTests = [mocha, 'dist-test/host/**/*.test.mjs'];
  // In the arm64 guest, the two host tests that boot the VM runner's own VM are left out: the
  // guest has no QEMU (and no nested VM would be arm64-specific).
  // The emulated guest runs JavaScript 20–50 times slower than this machine: the host tests' 60 s
  // per-test bound (.mocharc) is too short there for the native fuzz and the multi-wait matrix.
  const notInGuest = [...['vm-orphan', 'vm-reboot'].flatMap((t) => ['--ignore', `dist-test/host/${t}.test.mjs`]), '--timeout', '600000'];
  if (arm64) {
    add(await suite('host tests (in the arm64 VM)', process.execPath, [cli, 'vm', ...VM_TIMEOUT, ...guestNode(), mocha, ...notInGuest, ...hostTests.slice(1)], {
      skipsFail: false,
      retryVmDeath: true,
    }));
  } else {
    add(await suite('host tests', process.execPath, hostTests, { skipsFail: false }));
  }
}

// npm pack → install into a fresh project → require / import / tsc (no DRM needed; compiles the addon).
if (!args.has('--vm-only') && !args.has('--host-only') && !args.has('--no-pack')) {
  const guestInstall = 'dist-test/pack/guest-install.test.mjs';
  if (arm64) {
    step('packing the tarball and its dependencies for the arm64 guest');
    const dir = join(root, 'build', 'guest-pack');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const deps = ['bindings', 'file-uri-to-path', 'node-addon-api'].map((d) => join(root, 'node_modules', d));
    const packed = spawnSync('npm', ['pack', '--pack-destination', dir, root, ...deps], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    if (packed.status !== 0) console.log('npm pack failed: the package test in the arm64 VM will fail');
    add(await suite('package test (installed in the arm64 VM)', process.execPath, [cli, 'vm', ...VM_TIMEOUT, ...guestNode(), mocha, guestInstall], {
      skipsFail: true,
      env: { EXPLICIT_SYNC_PACK_DIR: dir },
      retryVmDeath: true,
    }));
  } else {
    add(await suite('package test (npm pack)', process.execPath, [mocha, '--ignore', guestInstall, 'dist-test/pack/**/*.test.mjs'], { skipsFail: false }));
  }
}

if (!args.has('--host-only') && !args.has('--pack-only')) {
  const conformance = process.env.EXPLICIT_SYNC_DEVICE ? process.env.EXPLICIT_SYNC_DEVICE : undefined;
  const vmTests = conformance
    ? [mocha, 'dist-test/conformance/**/*.test.mjs']
    : [mocha, ...(arm64 ? ['--ignore', 'dist-test/vm/interop.test.mjs'] : []), 'dist-test/vm/**/*.test.mjs', 'dist-test/conformance/**/*.test.mjs'];
  const direct =
    args.has('--direct') ||
    process.env.EXPLICIT_SYNC_IN_VM === '1' ||
    (conformance !== undefined && process.env.EXPLICIT_SYNC_FORCE_VM === undefined) ||
    (existsSync('/dev/dri') && process.env.EXPLICIT_SYNC_FORCE_VM === undefined);
  if (conformance === undefined && !arm64) {
    // The interop tests' Mesa (downloaded once into the cache) and their Vulkan program. A failure
    // is reported here and again by the interop tests, which then fail saying what is missing.
    step('interop provisioning (Mesa from bookworm-backports, test/interop/vk-interop.c)');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'interop.mjs')], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) console.log('interop provisioning failed: the interop kernel tests will fail');
  }
  if (conformance !== undefined) {
    // EXPLICIT_SYNC_DEVICE is forwarded into the VM like every EXPLICIT_SYNC_* variable.
    const title = `conformance tests on ${conformance}${direct ? '' : ' (in the VM)'}`;
    const argv = direct ? vmTests : [join(root, 'bin', 'explicit-sync.js'), 'vm', ...VM_TIMEOUT, ...guestNode(), ...vmTests];
    add(await suite(title, process.execPath, argv, { skipsFail: false }));
  } else if (direct) {
    add(await suite('kernel tests (this machine\'s /dev/dri)', process.execPath, vmTests, { skipsFail: false }));
  } else {
    const perKernel = [];
    for (const kernel of kernels) {
      const started = Date.now();
      const vm = arm64 ? 'the arm64 VM' : 'the VM';
      const title = kernels.length === 1 && kernel === '6.12' ? `kernel tests (in ${vm})` : `kernel tests (in ${vm}, kernel ${kernel})`;
      const r = await suite(title, process.execPath, [cli, 'vm', ...VM_TIMEOUT, '--kernel', kernel, ...guestNode(), ...vmTests], {
        skipsFail: true,
        retryVmDeath: true,
      });
      add(r);
      perKernel.push({ kernel, ...r, seconds: (Date.now() - started) / 1000 });
    }
    if (perKernel.length > 1) {
      console.log('');
      for (const k of perKernel) console.log(`kernel ${k.kernel}: ${k.passed} passed, ${k.failed} failed in ${k.seconds.toFixed(0)} s`);
    }
  }
}

console.log('');
console.log(`${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`);
process.exitCode = totals.failed > 0 ? 1 : 0;
