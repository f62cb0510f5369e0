// Sharing a timeline with another process through an fd.
//
// A timeline (DRM syncobj) is a kernel object: timeline.exportFd() gives an fd for it that can be
// passed to another process (here: a child's fd 3; a Wayland client sends it over its socket with
// SCM_RIGHTS) and imported there with device.importTimeline(fd). Both processes then signal and
// wait on the same points.
//
// The parent creates a timeline and starts a child with the fd; the child signals point 1 and
// waits for point 2; the parent's wait for point 1 resolves, and it signals point 2.
//   npx explicit-sync vm -- node examples/share-timeline.mjs
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Device } from 'explicit-sync';

const WAIT_MS = 60_000; // generous: a child Node takes seconds to start in an emulated VM

if (process.argv[2] === 'child') {
  // The child: fd 3 is the timeline; the device path comes on the command line.
  const device = Device.open(process.argv[3]);
  const timeline = device.importTimeline(3);
  closeSync(3); // importing made a handle of our own: the fd is no longer needed
  try {
    console.log(`child: imported the timeline, at point ${timeline.query()}`);
    timeline.signal(1); // "my part is done"
    await timeline.wait(2, { timeoutMs: WAIT_MS });
    console.log('child: saw point 2, exiting');
  } finally {
    timeline.close();
    device.close();
  }
} else {
  const device = Device.open({ require: ['timeline'] });
  const timeline = device.createTimeline();
  try {
    const fd = timeline.exportFd(); // O_CLOEXEC: only the child we hand it to gets it
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', device.path], {
      stdio: ['ignore', 'inherit', 'inherit', fd], // the timeline becomes the child's fd 3
    });
    closeSync(fd); // the child has its own copy
    const exited = once(child, 'exit');

    // Resolves when the child signals point 1; fails if the child dies first.
    await Promise.race([
      timeline.wait(1, { timeoutMs: WAIT_MS }),
      exited.then(([code]) => Promise.reject(new Error(`the child exited (${code}) before signalling`))),
    ]);
    console.log('parent: the child signalled point 1; signalling point 2');
    timeline.signal(2);
    const [code] = await exited;
    console.log(`parent: the child exited with status ${code}; timeline at ${timeline.query()}`);
    process.exitCode = code === 0 ? 0 : 1;
  } finally {
    timeline.close();
    device.close();
  }
}
