// Sharing a timeline between two processes over a Unix socket.
//
// A timeline (DRM syncobj) is a kernel object: timeline.exportFd() gives an fd for it, which a
// UnixSocket sends to another process (SCM_RIGHTS, as a Wayland client sends its timelines to the
// compositor); there, device.importTimeline(fd) makes a handle of its own. Both processes then
// signal and wait on the same points. Nothing is inherited: the processes meet on a socket path.
//
// Two roles. The server listens and waits for point 1. The client connects, creates a timeline,
// sends it, signals point 1 and waits for point 2, which the server signals once it saw point 1.
//   npx explicit-sync vm -- node examples/share-timeline.mjs        (the server starts a client)
//   node examples/share-timeline.mjs server /tmp/s.sock   and, elsewhere,
//   node examples/share-timeline.mjs client /tmp/s.sock
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Device, ExplicitSyncError, UnixServer, UnixSocket } from 'explicit-sync';

const WAIT_MS = 60_000; // generous: a Node takes seconds to start in an emulated VM
const [role = 'both', path] = process.argv.slice(2);

/** Connects, retrying while nobody listens yet (the server may start after the client). */
async function connect(socketPath) {
  for (let tries = 0; ; tries++) {
    try {
      return UnixSocket.connect(socketPath);
    } catch (err) {
      const notYet = err instanceof ExplicitSyncError && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED');
      if (!notYet || tries * 100 > WAIT_MS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function client(socketPath) {
  const device = Device.open({ require: ['timeline'] });
  const timeline = device.createTimeline();
  let socket;
  try {
    socket = await connect(socketPath);
    const fd = timeline.exportFd(); // yours: the peer gets a duplicate, so close it once sent
    try {
      await socket.send('timeline', [fd]);
    } finally {
      closeSync(fd);
    }
    console.log('client: created a timeline and sent it');
    timeline.signal(1); // "my part is done"
    console.log('client: signalled point 1');
    await timeline.wait(2, { timeoutMs: WAIT_MS });
    console.log('client: saw point 2, exiting');
  } finally {
    socket?.close();
    timeline.close();
    device.close();
  }
}

async function server(socketPath, startClient) {
  const device = Device.open({ require: ['timeline'] });
  const listener = UnixServer.listen(socketPath);
  let socket;
  let timeline;
  try {
    console.log(`server: listening on ${socketPath}`);
    const child = startClient?.();
    socket = await listener.accept({ timeoutMs: WAIT_MS });
    const message = await socket.receive({ timeoutMs: WAIT_MS });
    if (message === null) throw new Error('the client hung up before sending its timeline');
    try {
      // A handle of its own: the received fd stays the message's, and is closed with it.
      timeline = device.importTimeline(message.fds[0].fd);
    } finally {
      message.close();
    }
    console.log(`server: imported the timeline of pid ${socket.peerCredentials().pid}, at point ${timeline.query()}`);
    await timeline.wait(1, { timeoutMs: WAIT_MS });
    console.log('server: the client signalled point 1; signalling point 2');
    timeline.signal(2);
    // The client closes its end when it is done: receive() resolves null then.
    if ((await socket.receive({ timeoutMs: WAIT_MS })) === null) console.log(`server: the client hung up; timeline at ${timeline.query()}`);
    if (child !== undefined) {
      const code = child.exitCode ?? (await new Promise((resolve) => child.on('exit', resolve)));
      console.log(`server: the client exited with status ${code}`);
      if (code !== 0) process.exitCode = 1;
    }
  } finally {
    timeline?.close();
    socket?.close();
    listener.close(); // also removes the socket file
    device.close();
  }
}

if (role === 'client') await client(path);
else if (role === 'server') await server(path);
else {
  // Both roles: the client is a separate process that gets nothing but the socket's path.
  const dir = mkdtempSync(join(tmpdir(), 'share-timeline-'));
  const socketPath = join(dir, 'timeline.sock');
  try {
    await server(socketPath, () =>
      spawn(process.execPath, [fileURLToPath(import.meta.url), 'client', socketPath], { stdio: ['ignore', 'inherit', 'inherit'] }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
