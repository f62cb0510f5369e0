import { expect } from 'chai';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as esm from 'explicit-sync';

const require = createRequire(import.meta.url);

describe('the package', () => {
  it('loads from require() and import, with the same classes', () => {
    const cjs = require('explicit-sync') as typeof esm;
    expect(cjs.Device).to.equal(esm.Device);
    expect(cjs.ExplicitSyncError).to.equal(esm.ExplicitSyncError);
  });
  it('loads in several worker_threads at once (context-aware addon)', async () => {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const es = require(${JSON.stringify(require.resolve('explicit-sync'))});
      parentPort.postMessage(Array.isArray(es.Device.list()));`;
    const results = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise((resolve, reject) => {
            const w = new Worker(code, { eval: true });
            let answer: unknown;
            w.once('message', (m) => (answer = m));
            w.once('error', reject);
            w.once('exit', (status) => (status === 0 ? resolve(answer) : reject(new Error(`worker exit ${status}`))));
          }),
      ),
    );
    expect(results).to.deep.equal([true, true, true]);
  });
});
