#!/usr/bin/env node
// `npm run test:sanitize`: the whole test suite against an AddressSanitizer + UndefinedBehavior-
// Sanitizer build of the addon. Ends with one line of totals, "N passed, M failed".
//
//   node scripts/sanitize.mjs [--host-only | --vm-only] [--no-build]
//
// The sanitized addon is built in a separate tree, .cache/sanitize/ (git-ignored), so that the
// ordinary build/Release that everything else loads is never clobbered: binding.gyp and native/ are
// copied there and built with `node-gyp rebuild --sanitize=1` (binding.gyp's `sanitize` variable:
// -fsanitize=address,undefined -fno-sanitize-recover=undefined). dist/, dist-test/, bin/, examples/,
// package.json and .mocharc.json are copied beside it, so that `bindings` (which looks for the addon next to
// the package.json of dist/native.js) loads the sanitized one; node_modules resolves up to the
// project's own. Node itself is not instrumented: the ASan runtime is put in front of it with
// LD_PRELOAD (gcc's libasan), for the host tests here and for the kernel tests in the VM
// (forwarded with --env). Leak detection is off (Node does not free everything at exit by
// design); any sanitizer report aborts the process that hit it and fails the run.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tree = join(root, '.cache', 'sanitize');
const args = new Set(process.argv.slice(2));
const node = process.execPath;
const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const t0 = performance.now();

const ASAN_OPTIONS = [
  'detect_leaks=0', // Node keeps memory alive until exit on purpose
  'abort_on_error=1',
  'halt_on_error=1',
  'detect_stack_use_after_return=0',
  'allow_user_segv_handler=1', // V8's WebAssembly trap handler installs its own SIGSEGV handler
  'print_summary=1',
].join(':');
const UBSAN_OPTIONS = 'halt_on_error=1:abort_on_error=1:print_stacktrace=1';

/** mocha's own summary (as scripts/test.mjs reads it; importing that script would run it). */
function parseMochaSummary(output) {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (re) => Number(re.exec(plain)?.[1] ?? 0);
  if (!/^\s*\d+ passing/m.test(plain)) return null;
  return { passed: num(/^\s*(\d+) passing/m), failed: num(/^\s*(\d+) failing/m), pending: num(/^\s*(\d+) pending/m) };
}

function step(title) {
  process.stderr.write(`\n== ${title}\n`);
}

function fail(why) {
  console.log(why);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

function sh(cmd, argv, cwd = root) {
  const r = spawnSync(cmd, argv, { cwd, stdio: 'inherit' });
  if (r.status !== 0) fail(`${cmd} ${argv.join(' ')} failed (status ${r.status})`);
}

/** gcc's ASan runtime (the one the addon was linked against). */
function asanRuntime() {
  const r = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  if (!path.startsWith('/') || !existsSync(path)) fail('sanitizer run: gcc\'s libasan.so was not found (apt-get install gcc)');
  return realpathSync(path);
}

function build() {
  step('build (TypeScript in the project, the sanitized addon in .cache/sanitize)');
  sh(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  sh(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.test.json']);
  sh(node, [join(root, 'scripts', 'readme-snippets.mjs')]);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const p of ['binding.gyp', 'native']) cpSync(join(root, p), join(tree, p), { recursive: true });
  // The headers of the running Node: npm passes its `nodedir` setting as npm_config_nodedir; run
  // directly, use the ones installed beside node (e.g. /usr/include/node), else node-gyp's cache.
  const prefix = dirname(dirname(realpathSync(node)));
  const nodedir = process.env['npm_config_nodedir'] ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
  const gyp = [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', '--sanitize=1'];
  if (nodedir !== undefined) gyp.push(`--nodedir=${nodedir}`);
  sh(node, gyp, tree);
}

/** Copies the compiled JS next to the sanitized addon (done on every run: it is cheap). */
function stage() {
  // Whatever the tests load by a path relative to the package: compiled JS, the CLI, the examples,
  // the README and the script that extracts its snippets (test/host/readme), the interop tests'
  // Vulkan program (scripts/interop.mjs compiles it into this tree's build/interop).
  for (const p of ['dist', 'dist-test', 'bin', 'examples', 'scripts', 'test/interop']) {
    rmSync(join(tree, p), { recursive: true, force: true });
    if (!existsSync(join(root, p))) continue;
    cpSync(join(root, p), join(tree, p), { recursive: true });
  }
  for (const p of ['package.json', '.mocharc.json', 'README.md']) cpSync(join(root, p), join(tree, p));
  // Tests that start node_modules/… by a relative path (mocha in a child run) find the project's.
  rmSync(join(tree, 'node_modules'), { recursive: true, force: true });
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
  const addon = join(tree, 'build', 'Release', 'explicit_sync.node');
  if (!existsSync(addon)) fail('sanitizer run: no sanitized addon in .cache/sanitize (run without --no-build)');
  // The build really is sanitized: the addon needs libasan.
  const ldd = spawnSync('ldd', [addon], { encoding: 'utf8' });
  if (!/libasan/.test(ldd.stdout)) fail('sanitizer run: .cache/sanitize/build/Release/explicit_sync.node is not an ASan build');
  return addon;
}

/** Runs a command with output streamed; returns { code, output }. */
function run(cmd, argv, env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let output = '';
    for (const [stream, to] of [
      [child.stdout, process.stdout],
      [child.stderr, process.stderr],
    ])
      stream.on('data', (chunk) => {
        output += chunk;
        to.write(chunk);
      });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

/** Sanitizer reports in a run's output (also those of child processes the tests started). */
function reports(output) {
  return output.split('\n').filter((l) => /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer/.test(l));
}

async function suite(title, cmd, argv, env, skipsFail) {
  step(title);
  const t = performance.now();
  const { code, output } = await run(cmd, argv, env);
  const s = parseMochaSummary(output) ?? { passed: 0, failed: 1, pending: 0 };
  let failed = s.failed + (skipsFail ? s.pending : 0);
  const found = reports(output);
  if (found.length > 0) {
    console.log(`${title}: ${found.length} sanitizer report line(s):\n  ${found.join('\n  ')}`);
    failed += 1;
  }
  if (code !== 0 && failed === 0) failed = 1;
  console.log(`${title}: ${s.passed} passed, ${failed} failed in ${Math.round((performance.now() - t) / 1000)} s under ASan+UBSan`);
  return { passed: s.passed, failed };
}

if (!args.has('--no-build')) build();
stage();
const libasan = asanRuntime();
const env = { LD_PRELOAD: libasan, ASAN_OPTIONS, UBSAN_OPTIONS };
const totals = { passed: 0, failed: 0 };
const add = (r) => {
  totals.passed += r.passed;
  totals.failed += r.failed;
};

if (!args.has('--vm-only')) {
  add(await suite('host tests (sanitized addon)', node, [mocha, 'dist-test/host/**/*.test.mjs'], env, false));
}
if (!args.has('--host-only')) {
  const cli = join(root, 'bin', 'explicit-sync.js');
  const forward = Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  const timeout = process.env['EXPLICIT_SYNC_SANITIZE_VM_TIMEOUT'] ?? '1500';
  // The interop tests' Mesa and Vulkan program, as `npm test` provisions them, into this tree's
  // build/interop (the program itself is not sanitized: it is Mesa's peer, not the addon).
  step('interop provisioning (Mesa from bookworm-backports, test/interop/vk-interop.c)');
  if (spawnSync(node, [join(tree, 'scripts', 'interop.mjs')], { cwd: tree, stdio: 'inherit' }).status !== 0)
    console.log('interop provisioning failed: the interop kernel tests will fail');
  // What `npm test` runs in the VM: the kernel tests and the conformance tests.
  const kernelSuites = ['vm', 'conformance'].filter((d) => existsSync(join(tree, 'dist-test', d))).map((d) => `dist-test/${d}/**/*.test.mjs`);
  add(
    await suite(
      'kernel tests in the VM (sanitized addon)',
      node,
      [cli, 'vm', '--timeout', timeout, ...forward, '--', node, mocha, ...kernelSuites],
      {},
      true,
    ),
  );
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
console.log('');
console.log(`${pkg.name} under AddressSanitizer + UndefinedBehaviorSanitizer (${libasan}): ${Math.round((performance.now() - t0) / 1000)} s in all`);
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exitCode = totals.failed > 0 ? 1 : 0;
