// The README's snippets, run as written (scripts/readme-snippets.mjs extracts them at build time,
// with the setup and checks its HTML comments give): a snippet that no longer runs fails here.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { describeWith, expectNoDeviceWith, expectNoVkms, itWith, type KernelFeature } from './kernel-features.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = path.join(root, 'dist-test', 'readme');

interface Entry {
  line: number;
  section: string;
  skip: string | null;
  file: string | null;
}

const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as Entry[];

function runNode(file: string, timeoutMs: number): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

describeWith(['timeline'], 'README snippets (kernel)', function () {
  this.timeout(120_000);
  for (const e of index) {
    if (e.file === null) continue;
    const file = e.file;
    // The KMS snippets drive vkms: on a kernel without it, KmsDevice.open() is the documented NoDeviceError.
    const needs: KernelFeature[] = /KMS|compositor's frame/.test(e.section) ? ['vkms'] : [];
    itWith(needs, `README.md line ${e.line} (${e.section}) runs as written`, async () => {
      const r = await runNode(path.join(dir, file), 100_000);
      expect(r, `${file} ended with ${r.signal ?? r.code}:\n${r.output}`).to.include({ code: 0 });
      // A snippet that leaks an object would teach leaking: `using` must close what it opens.
      expect(r.output).not.to.include('EXPLICIT_SYNC_LEAK');
    }, expectNoVkms);
  }
}, () => expectNoDeviceWith('timeline'));
