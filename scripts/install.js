#!/usr/bin/env node
// The package's install step. Uses the prebuilt addon for this platform
// (prebuilds/<platform>-<arch>/explicit_sync.node, shipped in the npm tarball) when there is one
// and it loads here; otherwise compiles from source with node-gyp, as a package without an
// install script would. Forcing a source build: `npm install explicit-sync --build-from-source`
// or EXPLICIT_SYNC_BUILD_FROM_SOURCE=1. In a git checkout (no prebuilds/) it always compiles.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'explicit_sync.node');
const forced = process.env.npm_config_build_from_source === 'true' || process.env.EXPLICIT_SYNC_BUILD_FROM_SOURCE === '1';

function loads(file) {
  // In a child: a prebuild for another libc fails to load, and must not take this process down.
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? `status ${r.status}`);
}

if (!forced && existsSync(prebuilt)) {
  const why = loads(prebuilt);
  if (why === null) {
    console.log(`explicit-sync: using the prebuilt addon for ${process.platform}-${process.arch} (no compiler needed)`);
    process.exit(0);
  }
  console.log(`explicit-sync: the prebuilt addon does not load here (${why}); compiling from source`);
} else if (!forced) {
  console.log(`explicit-sync: no prebuilt addon for ${process.platform}-${process.arch}; compiling from source`);
}
const gyp = process.env.npm_config_node_gyp;
const r = gyp && existsSync(gyp)
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
