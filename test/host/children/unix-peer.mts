// Two unrelated processes on one socket path, with ordinary fds (unix-socket-fds.test.mts).
//   listen <path>          listens, prints READY, accepts one connection, sends it a welcome (which
//                          the sender never reads), and reads messages until the end of the stream
//                          or an error; for each message it reads, through
//                          each received fd, what the file holds. Prints RESULT with what it saw
//                          and the fds it had left open at the end (none expected).
//   send <path> <file> <n> connects (retrying until the listener is there), sends the file's fd
//                          with a first message, then floods: n messages of 32 KiB, each with the
//                          fd, printing FLOODING once the socket buffer is full; exits when done.
import { openSync, readSync } from 'node:fs';
import { ExplicitSyncError, UnixServer, UnixSocket } from 'explicit-sync';
import { openFds } from '../../helpers.mjs';

const [role, path, file, count] = process.argv.slice(2) as [string, string, string?, string?];

if (role === 'listen') {
  console.log('starting');
  const before = openFds();
  const server = UnixServer.listen(path);
  console.log('READY');
  const socket = await server.accept({ timeoutMs: 60_000 });
  server.close();
  await socket.send('welcome'); // left unread: a sender that dies makes this end ECONNRESET
  console.log('WELCOMED');
  const contents: string[] = [];
  let messages = 0;
  let error: string | undefined;
  try {
    for await (using m of socket) {
      messages++;
      const buf = Buffer.alloc(64);
      for (const f of m.fds) contents.push(buf.subarray(0, readSync(f.fd, buf, 0, 64, 0)).toString());
    }
  } catch (err) {
    error = err instanceof ExplicitSyncError ? `${err.code} ${err.syscall}` : String(err);
  }
  socket.close();
  const left = openFds().filter((fd) => !before.includes(fd));
  console.log(`RESULT ${JSON.stringify({ messages, first: contents[0], distinct: [...new Set(contents)], error, left })}`);
} else if (role === 'send') {
  let socket: UnixSocket | undefined;
  for (let i = 0; socket === undefined; i++) {
    try {
      socket = UnixSocket.connect(path);
    } catch (err) {
      if (i > 600 || !(err instanceof ExplicitSyncError) || !['ENOENT', 'ECONNREFUSED'].includes(err.code)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const fd = openSync(file!, 'r');
  await socket.send('hello', [fd]);
  const n = Number(count);
  let flooding = false;
  for (let i = 0; i < n; i++) {
    const sent = socket.send(Buffer.alloc(32 * 1024, i), [fd]);
    // The socket buffer fills at once unless the reader keeps up (then a message count does).
    if (!flooding && (socket.queuedSends > 0 || i === 2000)) {
      flooding = true;
      console.log('FLOODING');
    }
    await sent;
  }
  socket.close();
}
