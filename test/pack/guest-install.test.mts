// The npm tarball installed in the arm64 guest (`npm run test:arm64`'s package step): the guest has
// no compiler and no network, so the install must take the linux-arm64 prebuild, with the
// dependencies supplied as tarballs packed on the host from this checkout's node_modules
// (`npm install --offline`). scripts/test.mjs packs them into $EXPLICIT_SYNC_PACK_DIR and runs this
// file in the guest; anywhere else (the x64 pack step's glob) it skips, saying why.
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const packDir = process.env['EXPLICIT_SYNC_PACK_DIR'];

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('npm tarball → npm install --offline in the guest (no compiler) → require / import', function () {
  this.timeout(1_800_000);
  let tmp: string | undefined;
  after(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it(`installs the prebuild for ${process.platform}-${process.arch} and loads it`, async function () {
    if (packDir === undefined || process.env['EXPLICIT_SYNC_IN_VM'] !== '1') {
      console.log('      skipped: runs in the arm64 guest from `npm run test:arm64` (EXPLICIT_SYNC_PACK_DIR names the packed tarballs)');
      this.skip();
    }
    const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz')).map((f) => join(packDir, f));
    expect(tarballs.some((f) => /\/explicit-sync-[^/]+\.tgz$/.test(f)), 'the package tarball').to.equal(true);
    for (const tool of ['gcc', 'g++', 'cc', 'make', 'python3']) {
      expect(spawnSync('/bin/sh', ['-c', `command -v ${tool}`]).status, `no ${tool} in the guest`).to.not.equal(0);
    }
    tmp = mkdtempSync(join(tmpdir(), 'explicit-sync-guest-pack-'));
    const app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const log = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', ...tarballs], app);
    expect(log).to.contain(`using the prebuilt addon for ${process.platform}-${process.arch}`);
    expect(existsSync(join(app, 'node_modules', 'explicit-sync', 'build')), 'nothing compiled').to.equal(false);
    writeFileSync(join(app, 'cjs.cjs'), "const es = require('explicit-sync'); const list = es.Device.list(); console.log('require ok', list.length > 0, typeof es.monotonicNow());\n");
    writeFileSync(join(app, 'esm.mjs'), "import { Device, monotonicNow } from 'explicit-sync'; console.log('import ok', Device.list().length > 0, typeof monotonicNow());\n");
    // The guest has DRM devices: the installed package lists them through the prebuilt addon.
    expect(await run(process.execPath, ['cjs.cjs'], app)).to.match(/^require ok true bigint/);
    expect(await run(process.execPath, ['esm.mjs'], app)).to.match(/^import ok true bigint/);
  });
});
