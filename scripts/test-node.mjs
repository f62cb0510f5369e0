#!/usr/bin/env node
// `npm run test:node -- 22,24,26 [test.mjs flags]`: the suite on other Node versions, without
// touching the machine's Node. Builds once with this Node (the addon is Node-API: one build
// serves every version), then runs `scripts/test.mjs --no-build` under each version's own
// binary (fetched from the npm registry into the cache, see node-versions.mjs), with that
// binary first on PATH so npm, the pack test's install and the guest's `node` use it too.
// Other flags go to test.mjs unchanged (`--no-pack`, `--host-only`, `--kernel 6.1`, …).
// Prints each version's totals, then one line of totals over everything.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const listAt = argv.findIndex((a) => /^v?\d+(\.\d+){0,2}(,v?\d+(\.\d+){0,2})*$/.test(a));
const list = listAt >= 0 ? argv.splice(listAt, 1)[0] : '22,24,26';
const passOn = argv.filter((a) => a !== '--no-build');

const built = spawnSync(process.execPath, [join(root, 'scripts', 'test.mjs'), '--build-only'], { cwd: root, stdio: 'inherit' });
if (built.status !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
// After the build: node-versions.mjs reads the cache location from dist/.
const { fetchNode, parseNodeVersions } = await import('./node-versions.mjs');

function runSuite(node) {
  return new Promise((resolve) => {
    const child = spawn(node, [join(root, 'scripts', 'test.mjs'), '--no-build', ...passOn], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? ''}` },
    });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk).slice(-4096);
    });
    child.on('close', (code) => {
      const m = /^(\d+) passed, (\d+) failed/m.exec(tail.split('\n').filter((l) => /^\d+ passed, \d+ failed/.test(l)).at(-1) ?? '');
      resolve(m ? { passed: Number(m[1]), failed: Number(m[2]) } : { passed: 0, failed: code === 0 ? 0 : 1 });
    });
  });
}

const results = [];
for (const spec of parseNodeVersions(list)) {
  const started = Date.now();
  let node;
  try {
    node = fetchNode(spec);
  } catch (err) {
    console.log(`Node ${spec}: cannot get a binary: ${err.message.split('\n')[0]}`);
    results.push({ spec, version: '?', passed: 0, failed: 1, seconds: 0 });
    continue;
  }
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  process.stderr.write(`\n=== Node ${version} (${node})\n`);
  const r = await runSuite(node);
  results.push({ spec, version, ...r, seconds: (Date.now() - started) / 1000 });
}

console.log('');
for (const r of results) console.log(`Node ${r.version}: ${r.passed} passed, ${r.failed} failed in ${r.seconds.toFixed(0)} s`);
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
