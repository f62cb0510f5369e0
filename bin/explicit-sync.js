#!/usr/bin/env node
'use strict';
// Thin launcher: all logic lives in the compiled CLI (lib/cli.ts → dist/cli.js).
const { main } = require('../dist/cli.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`explicit-sync: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
