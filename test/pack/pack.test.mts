// The npm path a user takes: `npm pack` makes a tarball with what a consumer needs and nothing
// else; `npm install ./explicit-sync-<version>.tgz` in a fresh project compiles the addon; the
// package then works from `require`, from `import`, from its `explicit-sync` bin, and a
// TypeScript consumer type-checks against the shipped .d.ts. Slow (it compiles the addon): one
// test, run by `npm test` as its own step (`npm run test:pack` alone). Needs the npm registry for
// the package's two dependencies (or npm's cache), no DRM.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 480_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const CJS_CONSUMER = `
const es = require('explicit-sync');
const names = ['Device', 'SyncFile', 'DmaBuf', 'Timeline', 'Syncobj', 'VgemDevice', 'ExplicitSyncError', 'TimeoutError'];
for (const n of names) if (typeof es[n] !== 'function') throw new Error('require: missing ' + n);
console.log('require ok', Array.isArray(es.Device.list()), typeof es.monotonicNow());
`;

const ESM_CONSUMER = `
import { Device, SyncFile, Timeline, TimeoutError, monotonicNow } from 'explicit-sync';
import * as ns from 'explicit-sync';
for (const f of [Device, SyncFile, Timeline, TimeoutError]) if (typeof f !== 'function') throw new Error('import: missing export');
if (ns.default === undefined || ns.default.Device !== Device) throw new Error('import: default is not module.exports');
console.log('import ok', Array.isArray(Device.list()), typeof monotonicNow());
`;

// Uses the public types the way a compositor would; the @ts-expect-error lines make sure the
// types are real (an \`any\` package would let them through and fail the check).
const TS_CONSUMER = `
import { Device, DmaBuf, ExplicitSyncError, SyncFile, Timeline, TimelineTimeoutError, type DeviceInfo, type SyncobjFeatures } from 'explicit-sync';

export async function frame(acquire: Timeline, point: bigint): Promise<'ok' | 'dropped'> {
  try {
    await acquire.wait(point, { until: 'available', timeoutMs: 100 });
    await acquire.wait(point, { timeoutMs: 1000, signal: AbortSignal.timeout(2000) });
    return 'ok';
  } catch (err) {
    if (err instanceof TimelineTimeoutError && err.reason === 'unsubmitted') return 'dropped';
    throw err;
  }
}

export function nodes(): string[] {
  const list: DeviceInfo[] = Device.list();
  return list.filter((d) => d.caps.timeline).map((d) => d.path);
}

export function bridge(buf: DmaBuf): SyncFile {
  const sf = buf.exportSyncFile('read');
  buf.importSyncFile(sf, 'write');
  return sf;
}

export function features(dev: Device): SyncobjFeatures {
  using tl = dev.createTimeline();
  tl.signal(1n);
  const q: bigint = tl.query();
  void q;
  return dev.features;
}

export function code(err: unknown): string | undefined {
  return err instanceof ExplicitSyncError ? err.code : undefined;
}

// @ts-expect-error a path is a string
Device.open(42);
// @ts-expect-error no such access mode
export const bad = (b: DmaBuf) => b.exportSyncFile('sideways');
`;

describe('npm pack → npm install → require / import / bin / tsc', function () {
  this.timeout(600_000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'explicit-sync-pack-'));
  });
  after(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('packs dist/, native/, binding.gyp and package.json but no tests; installs, builds, loads and type-checks', async () => {
    // npm pack (runs `prepare`, i.e. tsc, as publishing would).
    const packed = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', tmp], root)) as {
      filename: string;
      files: { path: string }[];
    }[];
    const tarball = packed[0]!.filename;
    expect(tarball).to.equal(`${pkg.name}-${pkg.version}.tgz`);
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'native/addon.cc', 'bin/explicit-sync.js'])
      expect(files, f).to.include(f);
    expect(files.some((f) => f.startsWith('native/uapi/')), 'native/uapi/').to.equal(true);
    const unwanted = files.filter((f) => /^(test|dist-test|build|scripts|examples|node_modules|\.ci)\//.test(f) || /\.test\.|\.node$|\.tgz$/.test(f));
    expect(unwanted, 'files that must not ship').to.deep.equal([]);

    // A fresh project installs the tarball: npm runs the package's install script (node-gyp rebuild).
    const app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    await run('npm', ['install', '--no-audit', '--no-fund', join(tmp, tarball)], app);
    const installed = join(app, 'node_modules', pkg.name);
    expect(readFileSync(join(installed, 'build', 'Release', 'explicit_sync.node')).length).to.be.greaterThan(0);

    writeFileSync(join(app, 'cjs.cjs'), CJS_CONSUMER);
    writeFileSync(join(app, 'esm.mjs'), ESM_CONSUMER);
    expect(await run(process.execPath, ['cjs.cjs'], app)).to.match(/^require ok true bigint/);
    expect(await run(process.execPath, ['esm.mjs'], app)).to.match(/^import ok true bigint/);

    // The bin: npx finds it in the consumer's node_modules/.bin.
    expect(await run('npx', ['--no-install', 'explicit-sync', 'help'], app)).to.match(/^\s+doctor\s/m);
    if (!existsSync('/dev/dri')) {
      // Installed, the doctor's hint is the npx form (which finds node_modules/.bin in the VM too).
      const doctor = await run('npx', ['--no-install', 'explicit-sync', 'doctor'], app).then(
        () => '',
        (err: Error) => err.message,
      );
      expect(doctor).to.contain('npx explicit-sync vm -- npx explicit-sync doctor');
    }

    // A TypeScript consumer: strict, node16 modules, the package's own .d.ts checked too
    // (skipLibCheck off). Node's types come from this repository's @types.
    writeFileSync(join(app, 'consumer.ts'), TS_CONSUMER);
    writeFileSync(join(app, 'consumer-esm.mts'), `import { Device } from 'explicit-sync';\nexport const n: number = Device.list().length;\n`);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2022', 'ESNext.Disposable'],
          module: 'node16',
          moduleResolution: 'node16',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          typeRoots: [join(root, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['consumer.ts', 'consumer-esm.mts'],
      }),
    );
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
  });
});
