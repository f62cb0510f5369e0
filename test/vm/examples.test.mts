// The scripts in examples/ run as a user would run them (`node examples/<name>.mjs`, from the
// package root so that `import 'explicit-sync'` resolves to this package), exit 0 and say what
// they are expected to say.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

function runExample(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`examples/${name}`], { cwd: root, timeout: 150_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

describeWith(['timeline'], 'examples/', function () {
  this.timeout(180_000); // a child Node under TCG takes seconds to start

  it('bridge.mjs: implicit → explicit → implicit on one vgem buffer', async () => {
    const r = await runExample('bridge.mjs');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('exported a sync_file: signalled=false, fences from vgem');
    expect(r.stdout).to.match(/the render fence signalled after \d+ ms/);
    expect(r.stdout).to.contain('after importSyncFile the buffer is busy: signalled=false');
    expect(r.stdout).to.contain('bridge: ok');
  });

  it('compositor.mjs: composes every frame of the good client, drops the one that never submits', async () => {
    const r = await runExample('compositor.mjs');
    expect(r.code, r.stderr).to.equal(0);
    for (const n of [1, 2, 3]) expect(r.stdout).to.contain(`frame ${n}: good-client shows its frame ${n}`);
    expect(r.stdout).to.match(/frame 1: dropping rogue-client \(unsubmitted\): ETIME/);
    expect(r.stdout).to.not.match(/frame [23]: .*rogue-client/);
    expect(r.stdout).to.match(/compositor: 3 frames in \d+ ms; dropped: rogue-client/);
  });

  it('share-timeline.mjs: two processes that meet on a socket path share a timeline sent over it', async () => {
    const r = await runExample('share-timeline.mjs');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/server: listening on .*timeline\.sock/);
    expect(r.stdout).to.contain('client: created a timeline and sent it');
    expect(r.stdout).to.match(/server: imported the timeline of pid \d+, at point [01]\n/);
    expect(r.stdout).to.contain('server: the client signalled point 1; signalling point 2');
    expect(r.stdout).to.contain('client: saw point 2, exiting');
    expect(r.stdout).to.contain('server: the client hung up; timeline at 2');
    expect(r.stdout).to.contain('server: the client exited with status 0');
  });
}, () => expectNoDeviceWith('timeline'));
