// A scripted wp_linux_drm_syncobj_v1 client for test/vm/compositor.test.mts: fd 3 is its acquire
// timeline, fd 4 its release timeline (both imported on its own Device), and it renders with its
// own vgem buffer. One command per stdin line; answers on stdout:
//   render <point> [delayMs]   a vgem job on the buffer becomes acquire point <point>; its fence
//                              signals after delayMs (default 0) → "ok"
//   late <point> <ms>          the same, submitted <ms> from now → "ok" (at once)
//   hang <point>               a vgem job whose fence is never signalled (by us) → "ok"
//   signal <point>             CPU-signals acquire point <point> → "ok"
//   watch <point>              waits (20 s bound) for release point <point>: later "released <p>"
//                              or "starved <p>"
//   exit                       cancels late submissions not made yet, waits for the watches, prints RESULT {released, starved}, exits
// argv: <device path> <vgem path>
import { createInterface } from 'node:readline';
import { closeSync } from 'node:fs';
import { Device, VgemDevice, type VgemFence } from 'explicit-sync';

const [path, vgemPath] = process.argv.slice(2);
const dev = Device.open(path!);
const acquire = dev.importTimeline(3);
const release = dev.importTimeline(4, { defaultTimeoutMs: 20_000 });
closeSync(3);
closeSync(4);
const vgem = VgemDevice.open(vgemPath);
const bo = vgem.createBuffer({ width: 64, height: 64 });
const buf = bo.exportDmaBuf();
const hung: VgemFence[] = [];
const released: number[] = [];
const starved: number[] = [];
const watches: Promise<void>[] = [];
const lates = new Set<NodeJS.Timeout>();
const out = (line: string): boolean => process.stdout.write(`${line}\n`);

function render(point: number, delayMs: number, hang = false): void {
  const job = bo.attachFence({ write: true });
  using done = buf.exportSyncFile('read');
  acquire.importSyncFile(point, done);
  if (hang) hung.push(job);
  else setTimeout(() => job.signal(), delayMs);
}

out('ready');
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, a, b] = line.trim().split(/\s+/);
  const n = Number(a);
  try {
    if (cmd === 'exit') break;
    if (cmd === 'render') render(n, Number(b ?? 0));
    else if (cmd === 'late') {
      const t = setTimeout(() => (lates.delete(t), render(n, 0)), Number(b));
      lates.add(t);
    }
    else if (cmd === 'hang') render(n, 0, true);
    else if (cmd === 'signal') acquire.signal(n);
    else if (cmd === 'watch') {
      watches.push(
        release.wait(n).then(
          () => void (released.push(n), out(`released ${n}`)),
          () => void (starved.push(n), out(`starved ${n}`)),
        ),
      );
    } else throw new Error(`unknown command ${cmd}`);
    out('ok');
  } catch (err) {
    out(`error ${(err as { code?: string }).code ?? String(err)}`);
  }
}
process.stdin.destroy(); // the parent's pipe must not keep this process alive
await Promise.all(watches);
for (const t of lates) clearTimeout(t); // a submission that never came
for (const j of hung) j.signal();
for (const o of [buf, bo, vgem, acquire, release, dev]) o.close();
out(`RESULT ${JSON.stringify({ released: released.sort(), starved })}`);
