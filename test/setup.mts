// Mocha root hooks (loaded with --require): every suite must leave no fd open and no object
// garbage-collected without close() (the library's EXPLICIT_SYNC_LEAK warning fails the run).
import { expect } from 'chai';
import { openFds } from './helpers.mjs';

let before: string[] = [];
const leaks: string[] = [];

process.on('warning', (w: Error & { code?: string }) => {
  if (w.code === 'EXPLICIT_SYNC_LEAK') leaks.push(w.message);
});

export const mochaHooks = {
  beforeAll(): void {
    before = openFds();
  },
  async afterAll(): Promise<void> {
    // Let close callbacks and finalizers that are already due run first.
    await new Promise((r) => setImmediate(r));
    const after = openFds();
    const opened = after.filter((fd) => !before.includes(fd));
    expect(opened, 'fds left open after the suite').to.deep.equal([]);
    expect(leaks, 'objects garbage-collected without close()').to.deep.equal([]);
  },
};
