// A second process holding the same syncobj or timeline (inherited as fd 3): it imports it on its
// own Device and runs one command per stdin line, answering "ok" (or "error <code>") per line:
//   signal            binary: DRM_IOCTL_SYNCOBJ_SIGNAL
//   reset             binary: DRM_IOCTL_SYNCOBJ_RESET
//   tsignal <point>   timeline: DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL
//   after <ms> <command>   answers at once, runs the command later (while the parent blocks)
//   exit
// argv: <device path> <binary|timeline>
import { createInterface } from 'node:readline';
import { closeSync } from 'node:fs';
import { Device, ExplicitSyncError, type Syncobj, type Timeline } from 'explicit-sync';

const [path, kind] = process.argv.slice(2);
const dev = Device.open(path!);
const obj: Syncobj | Timeline = kind === 'binary' ? dev.importSyncobj(3) : dev.importTimeline(3);
closeSync(3);
process.stdout.write('ready\n');
function run(cmd: string | undefined, arg: string | undefined): void {
  if (cmd === 'signal') (obj as Syncobj).signal();
  else if (cmd === 'reset') (obj as Syncobj).reset();
  else if (cmd === 'tsignal') (obj as Timeline).signal(BigInt(arg!));
  else throw new Error(`unknown command ${cmd}`);
}
const later: Promise<void>[] = [];
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg, ...rest] = line.trim().split(/\s+/);
  try {
    if (cmd === 'exit') break;
    if (cmd === 'after') later.push(new Promise((r) => setTimeout(() => r(run(rest[0], rest[1])), Number(arg))));
    else run(cmd, arg);
    process.stdout.write('ok\n');
  } catch (err) {
    process.stdout.write(`error ${err instanceof ExplicitSyncError ? err.code : String(err)}\n`);
  }
}
await Promise.all(later);
obj.close();
dev.close();
