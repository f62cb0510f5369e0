#!/usr/bin/env node
// `npm run bench`: the bindings against raw C, side by side, in one VM boot.
//
//   node bench/run.mjs [--iterations N] [--batches B] [--wake N] [--scale 1000,10000,100000]
//                      [--cycles N] [--pending N] [--rounds R] [--timeout S] [--no-build]
//
// 1. builds the library (node-gyp + tsc, as `npm test` does; --no-build skips it) and compiles
//    bench/baseline.c on the host with `gcc -O2 -static` into build/bench/ (git-ignored);
// 2. boots the VM once through the project's runner (`explicit-sync vm`) and, in that one guest
//    session, runs the per-op costs and wake latencies of the C baseline and of the JS bench
//    (bench/bench.mjs, public API only) batch by batch, C then JS (the baseline runs as a
//    coprocess of the JS bench, so that both sides see the same load), then the scale tests, C
//    then JS;
// 3. prints a table, then ONE final line of JSON:
//    {"ops": {name: {"js_ns", "c_ns", "ratio", "koffi_ns", "ratio_koffi", …}}, "wake": {name: {…,
//    "floor_ns", "ratio_floor", "koffi_ns", "ratio_koffi"}}, "scale": {...}, "meta": {...}}.
//
// The peers (issue 15): per op, the koffi FFI calling libc's ioctl() on hand-laid structs
// (bench/koffi.mjs); per wake, the floor (a uv_poll kept armed on an eventfd, delivering into JS)
// in the same loop state, and koffi's blocking wait on libuv's pool. ratio_koffi = JS / koffi,
// ratio_floor = JS / floor.
//
// Per op, each side's figure is its fastest batch (of B, after warm-up); a wake figure is the
// median round trip. With --rounds R the ops/wake run is repeated and each side keeps its best.
// Timing under TCG is noisy: compare ratios, not absolute figures, and only within one run.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'build', 'bench');
const baselineBin = join(outDir, 'baseline');
const MARKER = /@@explicit-sync-bench:(c|js)@@ (\{.*\})\s*$/;

const TARGETS = { opRatio: 1.25, koffiRatio: 1, floorRatio: 1.25, wakeRatio: 2, scaleFds: 2, scaleRssBytes: 64 * 1024 * 1024 };

// ---------------------------------------------------------------------------------------------
// Options

const opts = { rounds: 1, iterations: 20000, batches: 10, wake: 200, scale: '1000,10000,100000', cycles: 1000000, pending: 10000, timeout: 900, build: true };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--no-build') opts.build = false;
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(
        'Usage: node bench/run.mjs [--iterations N] [--batches B] [--wake N] [--scale 1000,10000,100000] [--cycles N] [--pending N] [--rounds R] [--timeout S] [--no-build]\n',
      );
      process.exit(0);
    } else {
      const key = arg.replace(/^--/, '');
      const value = argv[++i];
      if (!(key in opts) || key === 'build' || value === undefined) usage(`unknown option or missing value: ${arg}`);
      if (key === 'scale') {
        if (!/^\d+(,\d+)*$/.test(value)) usage(`--scale takes a comma-separated list of counts, got ${value}`);
        opts.scale = value;
      } else {
        const n = Number(value);
        if (!Number.isInteger(n) || n < (key === 'cycles' || key === 'pending' ? 0 : 1)) usage(`--${key} takes a positive integer, got ${value}`);
        opts[key] = n;
      }
    }
  }
}

function usage(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const log = (message) => process.stderr.write(`[bench] ${message}\n`);

// ---------------------------------------------------------------------------------------------
// Build

function runTool(cmd, argv) {
  // Build output goes to stderr: stdout carries only the table and the JSON line.
  const r = spawnSync(cmd, argv, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) {
    log(`${[cmd, ...argv].join(' ')} failed (${r.error?.message ?? `status ${r.status}`})`);
    process.exit(1);
  }
}

function build() {
  if (opts.build) {
    log('building the library (node-gyp, tsc)');
    const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    runTool(process.execPath, [gyp, existsSync(join(root, 'build', 'Makefile')) ? 'build' : 'rebuild']);
    runTool(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  }
  mkdirSync(outDir, { recursive: true });
  log(`compiling bench/baseline.c -> ${relative(root, baselineBin)} (gcc -O2 -static -pthread)`);
  runTool('gcc', ['-O2', '-static', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', baselineBin, join(root, 'bench', 'baseline.c')]);
}

// ---------------------------------------------------------------------------------------------
// The guest session

function guestScript() {
  const c = relative(root, baselineBin);
  const common = `--iterations ${opts.iterations} --batches ${opts.batches} --wake ${opts.wake}`;
  const lines = ['set -e', 'echo "guest: $(uname -r), $(nproc) CPUs"'];
  for (let r = 1; r <= opts.rounds; r++) {
    lines.push(`echo "ops and wake, C and JS interleaved (round ${r}/${opts.rounds})"`);
    lines.push(`node bench/bench.mjs --baseline ${c} --only ops,wake ${common}`);
  }
  const scale = `--only scale --scale ${opts.scale} --cycles ${opts.cycles}`;
  // --expose-gc: the JS side collects garbage before each baseline reading of RSS (see bench.mjs).
  lines.push('echo "scale: C"', `${c} ${scale}`, 'echo "scale: JS"', `node --expose-gc bench/bench.mjs ${scale} --pending ${opts.pending}`);
  return lines.join('\n');
}

/** Boots the VM once; resolves to { code, blobs: { c: [...], js: [...] } }. */
function runGuest() {
  return new Promise((resolve, reject) => {
    const cli = join(root, 'bin', 'explicit-sync.js');
    const child = spawn(process.execPath, [cli, 'vm', '--timeout', String(opts.timeout), '--', 'sh', '-c', guestScript()], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const blobs = { c: [], js: [] };
    let pending = '';
    const onLine = (raw) => {
      const line = raw.replace(/\r/g, '');
      const m = MARKER.exec(line);
      const guest = /^guest: (.*)$/.exec(line);
      if (guest !== null) blobs.guest = guest[1];
      if (m === null) {
        if (line.trim()) process.stderr.write(`  | ${line}\n`);
        return;
      }
      try {
        blobs[m[1]].push(JSON.parse(m[2]));
      } catch (err) {
        process.stderr.write(`  | (unparsable ${m[1]} result: ${err.message})\n`);
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (pending) onLine(pending);
      resolve({ code: code ?? (signal ? 128 : 1), blobs });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Results

/** The fastest round of each named figure: { name: best } over rounds' `section` objects. */
function best(blobs, section) {
  const out = {};
  for (const blob of blobs) {
    for (const [name, v] of Object.entries(blob[section] ?? {})) {
      if (out[name] === undefined || v.ns < out[name].ns) out[name] = v;
    }
  }
  return out;
}

const ratio = (js, c) => (c > 0 ? Math.round((js / c) * 100) / 100 : null);

function combine(c, js) {
  const cOps = best(c, 'ops');
  const jsOps = best(js, 'ops');
  const koffiOps = best(js.map((b) => b.koffi ?? {}), 'ops');
  const ops = {};
  for (const name of Object.keys(cOps)) {
    if (jsOps[name] === undefined) continue;
    const k = koffiOps[name];
    ops[name] = {
      js_ns: jsOps[name].ns,
      c_ns: cOps[name].ns,
      ratio: ratio(jsOps[name].ns, cOps[name].ns),
      js_median_ns: jsOps[name].median_ns,
      c_median_ns: cOps[name].median_ns,
      median_ratio: ratio(jsOps[name].median_ns, cOps[name].median_ns),
      koffi_ns: k?.ns ?? null,
      ratio_koffi: k ? ratio(jsOps[name].ns, k.ns) : null,
      koffi_median_ns: k?.median_ns ?? null,
      median_ratio_koffi: k ? ratio(jsOps[name].median_ns, k.median_ns) : null,
    };
  }
  const cWake = best(c, 'wake');
  const jsWake = best(js, 'wake');
  const koffiWake = best(js.map((b) => b.koffi ?? {}), 'wake');
  // The floor measured alongside each kind (bench/wake.mjs); the standalone floor for older blobs.
  const pairedFloor = best(js.map((b) => b.floor ?? {}), 'wake');
  const wake = {};
  for (const name of Object.keys(jsWake)) {
    const j = jsWake[name];
    const cw = cWake[name];
    const k = koffiWake[name];
    const floor =
      name === 'floor' || name === 'floor_asleep' || name === 'set_immediate'
        ? undefined
        : pairedFloor[name] ?? jsWake[name.endsWith('_asleep') ? 'floor_asleep' : 'floor'];
    wake[name] = {
      js_ns: j.ns,
      c_ns: cw?.ns ?? null,
      ratio: cw ? ratio(j.ns, cw.ns) : null,
      js_p90_ns: j.p90_ns,
      c_p90_ns: cw?.p90_ns ?? null,
      floor_ns: floor?.ns ?? null,
      ratio_floor: floor ? ratio(j.ns, floor.ns) : null,
      koffi_ns: k?.ns ?? null,
      koffi_p90_ns: k?.p90_ns ?? null,
      ratio_koffi: k ? ratio(j.ns, k.ns) : null,
    };
  }
  const cScale = c.find((b) => b.scale)?.scale ?? {};
  const jsScale = js.find((b) => b.scale)?.scale ?? {};
  const waits = {};
  for (const n of Object.keys(jsScale.waits ?? {})) {
    const j = jsScale.waits[n];
    const k = cScale.waits?.[n];
    waits[n] = {
      js_fds: j.fds,
      js_rss_bytes: j.rss_bytes,
      js_heap_bytes: j.heap_bytes,
      js_total_ns: j.total_ns,
      js_setup_ns: j.setup_ns,
      js_resolve_ns: j.resolve_ns,
      c_fds: k?.fds ?? null,
      c_rss_bytes: k?.rss_bytes ?? null,
      c_total_ns: k?.total_ns ?? null,
      ratio: k ? ratio(j.total_ns, k.total_ns) : null,
    };
  }
  const scale = { waits };
  if (jsScale.pending) scale.pending = jsScale.pending;
  if (jsScale.cycles) scale.cycles = { js: jsScale.cycles, c: cScale.cycles ?? null };
  return { ops, wake, scale };
}

const fmtInt = (n) => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const fmtUs = (ns) => (ns === null || ns === undefined ? '-' : (ns / 1000).toFixed(ns < 10000 ? 2 : 1));
const fmtMs = (ns) => (ns === null || ns === undefined ? '-' : (ns / 1e6).toFixed(ns < 1e7 ? 2 : 0));
const fmtMiB = (b) => (b === null || b === undefined ? '-' : (b / 1048576).toFixed(1));
const verdict = (ok) => (ok ? 'ok' : 'MISS');

function table(result, meta) {
  const rows = [];
  const line = (cells, widths) => rows.push(cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  '));
  const rounds = meta.rounds > 1 ? `, best of ${meta.rounds} rounds per side` : '';
  rows.push(`explicit-sync benchmarks: ${meta.guest}, one boot; C and JS batches interleaved${rounds}`);
  rows.push('');
  const r2 = (x) => (x === null || x === undefined ? '-' : x.toFixed(2));
  let w = [31, 8, 8, 9, 7, 8, 9];
  line(['per-op cost (fastest batch)', 'C µs', 'JS µs', 'koffi µs', 'JS/C', 'JS/koffi', '≤ 1.0'], w);
  for (const [name, v] of Object.entries(result.ops))
    line([name, fmtUs(v.c_ns), fmtUs(v.js_ns), fmtUs(v.koffi_ns), r2(v.ratio), r2(v.ratio_koffi), verdict(v.ratio_koffi <= TARGETS.koffiRatio)], w);
  rows.push('  (JS/koffi ≤ 1.0: the target against the koffi FFI peer; JS/C is for reference)');
  rows.push('');
  w = [31, 8, 8, 9, 9, 8, 9, 8, 9];
  line(['wake: signal → resumed (median)', 'C µs', 'JS µs', 'JS p90', 'floor µs', 'JS/floor', 'koffi µs', 'JS/koffi', 'targets'], w);
  const wakeNames = {
    timeline: 'timeline point',
    binary: 'binary syncobj',
    sync_file: 'vgem sync_file',
    floor: 'floor: armed uv_poll (eventfd)',
    set_immediate: 'setImmediate round trip',
  };
  for (const state of ['busy', 'asleep']) {
    rows.push(state === 'busy' ? ' signalled from JS, loop busy:' : ' loop asleep, another process signals:');
    for (const [name, v] of Object.entries(result.wake)) {
      if (name.endsWith('_asleep') !== (state === 'asleep')) continue;
      const base = name.replace(/_asleep$/, '');
      const ok = v.ratio_floor === null ? '' : verdict(v.ratio_floor <= TARGETS.floorRatio && (v.ratio_koffi === null || v.ratio_koffi <= TARGETS.koffiRatio));
      line([`  ${wakeNames[base] ?? base}`, fmtUs(v.c_ns), fmtUs(v.js_ns), fmtUs(v.js_p90_ns), fmtUs(v.floor_ns), r2(v.ratio_floor), fmtUs(v.koffi_ns), r2(v.ratio_koffi), ok], w);
    }
  }
  rows.push('  (targets: JS/floor ≤ 1.25 and JS/koffi ≤ 1.0; a kind\'s floor is measured alongside it, chunk by chunk;');
  rows.push('   koffi waits block a thread of libuv\'s pool;');
  rows.push('   C: eventfd/sync_file polled by the signalling thread, or asleep while a helper thread signals)');
  rows.push('');
  w = [20, 6, 9, 9, 7, 10, 10, 10, 7];
  line(['N waits, one signal', 'C fds', 'C RSS+', 'C total', 'JS fds', 'JS RSS+', 'JS heap+', 'JS total', 'target'], w);
  for (const [n, v] of Object.entries(result.scale.waits)) {
    const ok = v.js_fds <= TARGETS.scaleFds && v.js_rss_bytes <= TARGETS.scaleRssBytes;
    line(
      [
        fmtInt(Number(n)),
        v.c_fds,
        `${fmtMiB(v.c_rss_bytes)} MiB`,
        `${fmtMs(v.c_total_ns)} ms`,
        v.js_fds,
        `${fmtMiB(v.js_rss_bytes)} MiB`,
        `${fmtMiB(v.js_heap_bytes)} MiB`,
        `${fmtMs(v.js_total_ns)} ms`,
        verdict(ok),
      ],
      w,
    );
  }
  rows.push('  (target: ≤ 2 fds and ≤ 64 MiB RSS growth while every wait is pending; RSS can shrink');
  rows.push('   meanwhile as V8 returns pages freed earlier, so small N may read ≤ 0; JS heap+ is V8 heapUsed growth)');
  const pd = result.scale.pending;
  if (pd) {
    rows.push('');
    rows.push(`${fmtInt(pd.library.count)} pending waits on one timeline, then one signal; an fs.stat() meanwhile`);
    w = [10, 10, 9, 12, 10];
    line(['', 'accepted', 'refused', 'fs.stat ms', 'total ms'], w);
    for (const [who, v] of [['library', pd.library], ['koffi', pd.koffi]])
      line([who, fmtInt(v.accepted), fmtInt(v.refused), `${v.fs_starved ? '> ' : ''}${fmtMs(v.fs_ns)}`, fmtMs(v.total_ns)], w);
    if (pd.koffi.refusal) rows.push(`  (koffi: "${pd.koffi.refusal}"; "> ": the fs call had not finished after 2 s, when the waits were signalled)`);
  }
  const cy = result.scale.cycles;
  if (cy) {
    rows.push('');
    const j = cy.js;
    rows.push(`${fmtInt(j.count)} createTimeline()/close() cycles`);
    w = [6, 9, 15, 26, 20];
    line(['', 'time', 'fds start→end', 'RSS MiB start→50%→end', 'live heap MiB'], w);
    const heap = j.heap_start === null ? '-' : `${fmtMiB(j.heap_start)} → ${fmtMiB(j.heap_end)}`;
    line(['JS', `${(j.ns / 1e9).toFixed(1)} s`, `${j.fds_start} → ${j.fds_end}`, `${fmtMiB(j.rss_start)} → ${fmtMiB(j.rss_half)} → ${fmtMiB(j.rss_end)}`, heap], w);
    if (cy.c) line(['C', `${(cy.c.ns / 1e9).toFixed(1)} s`, `${cy.c.fds_start} → ${cy.c.fds_end}`, `${fmtMiB(cy.c.rss_start)} → ${fmtMiB(cy.c.rss_end)}`, '-'], w);
    rows.push(`  (target: flat. JS ${cyclesFlat(j) ? 'ok' : 'MISS'}: same fds; live heap within 1 MiB; RSS grows ≤ 8 MiB in the second half)`);
  }
  return rows.join('\n');
}

/**
 * Flat: no fd left behind, the live JS heap (after a collection) back where it started, and RSS
 * no longer growing in the second half (V8 sizes its heap during the first part of the run).
 */
function cyclesFlat(j) {
  const MiB = 1024 * 1024;
  const heapOk = j.heap_start === null || j.heap_end - j.heap_start <= MiB;
  return j.fds_end === j.fds_start && heapOk && j.rss_end - j.rss_half <= 8 * MiB;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  build();
  log(`booting the VM (timeout ${opts.timeout} s): ops and wake (C and JS interleaved), then scale`);
  const { code, blobs } = await runGuest();
  const seconds = (Date.now() - started) / 1000;
  const expect = opts.rounds + 1;
  if (code !== 0 || blobs.c.length !== expect || blobs.js.length !== expect) {
    log(`the guest run failed (exit status ${code}; got ${blobs.c.length}/${expect} C and ${blobs.js.length}/${expect} JS results)`);
    process.exitCode = code || 1;
    return;
  }
  const result = combine(blobs.c, blobs.js);
  const meta = {
    guest: `QEMU guest (Linux ${blobs.guest ?? '6.12'}; virtio_gpu timelines, vgem)`,
    rounds: opts.rounds,
    iterations: opts.iterations,
    batches: opts.batches,
    wake_rounds: opts.wake,
    wall_s: Math.round(seconds),
  };
  process.stdout.write(`${table(result, meta)}\n\n`);
  process.stdout.write(`${JSON.stringify({ ...result, meta })}\n`);
}

main().catch((err) => {
  log(err?.stack ?? String(err));
  process.exitCode = 1;
});
