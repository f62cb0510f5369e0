// Two unrelated processes that meet on a socket path and share DRM objects through it
// (unix-socket.test.mts). Each prints READY / FLOODING lines as it goes and one RESULT line.
//   compositor <path>  listens; from the one client it accepts, receives a timeline, a vgem
//                      dma-buf and an acquire sync_file; adopts them (importTimeline,
//                      DmaBuf.fromFd, SyncFile.fromFd); sees the client's fence on the buffer;
//                      answers 'waiting'; waits for point 1, the acquire fence and the buffer's
//                      implicit fence; signals release point 2.
//   client <path>      creates those objects, sends them, and once the compositor waits, signals
//                      the vgem fence and point 1; then waits for point 2.
//   sink <path>        listens, sends one message the other end never reads (WELCOMED), then receives
//                      messages of a dma-buf and a timeline until the stream ends or fails,
//                      adopting and closing each. RESULT: count, error, fds left open.
//   flood <path>       connects and sends such messages as fast as the sink takes them, printing
//                      FLOODING once the socket buffer is full; runs until killed.
import { closeSync } from 'node:fs';
import { Device, DmaBuf, ExplicitSyncError, SyncFile, UnixServer, UnixSocket, VgemDevice } from 'explicit-sync';
import { openFds } from '../../helpers.mjs';

const WAIT_MS = 60_000;
const [role, path] = process.argv.slice(2) as [string, string];

/** Connects, retrying while the listener is not there yet (a Node under TCG takes seconds to start). */
async function connect(): Promise<UnixSocket> {
  for (let i = 0; ; i++) {
    try {
      return UnixSocket.connect(path);
    } catch (err) {
      if (i > 1200 || !(err instanceof ExplicitSyncError) || !['ENOENT', 'ECONNREFUSED'].includes(err.code)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function result(r: object): void {
  console.log(`RESULT ${JSON.stringify(r)}`);
}

console.log(`${role}: started`);
const before = openFds();

if (role === 'compositor') {
  using dev = Device.open({ require: ['timeline'] });
  const server = UnixServer.listen(path);
  console.log('READY');
  using socket = await server.accept({ timeoutMs: WAIT_MS });
  server.close();
  const m = (await socket.receive({ timeoutMs: WAIT_MS }))!;
  const [tfd, bfd, sfd] = m.fds as [(typeof m.fds)[0], (typeof m.fds)[0], (typeof m.fds)[0]];
  using timeline = dev.importTimeline(tfd.fd); // a handle of its own: the fd stays the message's
  using buffer = DmaBuf.fromFd(bfd.fd); // takes the fd over
  using acquire = SyncFile.fromFd(sfd.fd);
  const handedOver = { timeline: tfd.closed, buffer: bfd.closed, syncFile: sfd.closed };
  m.close();
  using implicit = buffer.exportSyncFile('read'); // the client's write fence, seen through the buffer
  const seen = { data: m.data.toString(), implicitSignaled: implicit.isSignaled(), acquireDriver: acquire.info().fences[0]?.driver };
  await socket.send('waiting');
  await Promise.all([timeline.wait(1, { timeoutMs: WAIT_MS }), acquire.wait({ timeoutMs: WAIT_MS }), implicit.wait({ timeoutMs: WAIT_MS })]);
  timeline.signal(2);
  console.log('compositor: point 1 and both fences signalled; released point 2');
  const end = await socket.receive({ timeoutMs: WAIT_MS });
  result({ handedOver, seen, end, query: timeline.query().toString() });
} else if (role === 'client') {
  using dev = Device.open({ require: ['timeline'] });
  using vgem = VgemDevice.open();
  using buf = vgem.createBuffer({ width: 64, height: 64 });
  const fence = buf.attachFence({ write: true });
  using dmabuf = buf.exportDmaBuf();
  using acquire = dmabuf.exportSyncFile('readwrite');
  using timeline = dev.createTimeline();
  using socket = await connect();
  const tfd = timeline.exportFd();
  await socket.send('frame 1', [tfd, dmabuf, acquire]);
  closeSync(tfd);
  const reply = await socket.receive({ timeoutMs: WAIT_MS });
  const said = reply?.data.toString();
  reply?.close();
  fence.signal();
  timeline.signal(1);
  await timeline.wait(2, { timeoutMs: WAIT_MS });
  console.log('client: released');
  result({ said });
} else if (role === 'sink') {
  const dev = Device.open({ require: ['timeline'] });
  const server = UnixServer.listen(path);
  console.log('READY');
  const socket = await server.accept({ timeoutMs: WAIT_MS });
  server.close();
  await socket.send('welcome'); // never read: a peer that dies makes this end ECONNRESET
  console.log('WELCOMED');
  let messages = 0;
  let error: string | undefined;
  try {
    for await (const m of socket) {
      messages++;
      DmaBuf.fromFd(m.fds[0]!.fd).close();
      dev.importTimeline(m.fds[1]!.fd).close();
      m.close();
    }
  } catch (err) {
    error = err instanceof ExplicitSyncError ? `${err.code} ${err.syscall}` : String(err);
  }
  socket.close();
  dev.close();
  result({ messages, error, left: openFds().filter((fd) => !before.includes(fd)) });
} else if (role === 'flood') {
  const dev = Device.open({ require: ['timeline'] });
  const vgem = VgemDevice.open();
  const buf = vgem.createBuffer({ width: 64, height: 64 });
  const dmabuf = buf.exportDmaBuf();
  const timeline = dev.createTimeline();
  const tfd = timeline.exportFd();
  const socket = await connect();
  let flooding = false;
  for (let i = 0; ; i++) {
    const sent = socket.send(Buffer.alloc(16 * 1024, i), [dmabuf, tfd]);
    // The socket buffer fills at once unless the reader keeps up (then a message count does).
    if (!flooding && (socket.queuedSends > 0 || i === 2000)) {
      flooding = true;
      console.log('FLOODING');
    }
    await sent;
  }
}
