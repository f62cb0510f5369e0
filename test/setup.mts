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
    // Node keeps a /dev/null fd of its own, opened at a moment that differs between versions (the
    // first spawn with an ignored stdio, the first warning on a piped stderr; on Node 26 later in
    // this suite than on Node 20). The library never opens /dev/null: such an fd is not its leak.
    const opened = after.filter((fd) => !before.includes(fd) && !fd.endsWith(' -> /dev/null'));
    expect(opened, 'fds left open after the suite').to.deep.equal([]);
    expect(leaks, 'objects garbage-collected without close()').to.deep.equal([]);
  },
};
