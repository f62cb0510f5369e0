// The Vulkan peer of the interop tests: test/interop/vk-interop.c, built by scripts/interop.mjs
// against Mesa 25 (lavapipe) from bookworm-backports, driven over its stdin/stdout. fds it makes are
// copied into this process with pidfd_getfd(2); fds it consumes are given to it as extra stdio.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { native } from '../../dist/native.js';

/** build/interop/interop.json, written by scripts/interop.mjs. */
export interface InteropConfig {
  binary: string;
  mesa: { version: string; root: string; packages: string[]; downloadBytes: number; provisionMs: number };
  env: Record<string, string>;
  /** Debian's kmscube, unpacked with Mesa. */
  kmscube: string;
}

const CONFIG = fileURLToPath(new URL('../../build/interop/interop.json', import.meta.url));

/** The config, or an Error that says how to make it. */
export function interopConfig(): InteropConfig {
  if (!existsSync(CONFIG)) {
    throw new Error(
      `${CONFIG} is missing: the interop tests need Mesa 25 and test/interop/vk-interop.c built against it. ` +
        'Run `node scripts/interop.mjs` on the host (npm test does; it downloads about 23 MB from bookworm-backports into the cache, nothing is installed, ' +
        'and needs a C compiler: apt-get install --no-install-recommends gcc libc6-dev)',
    );
  }
  return JSON.parse(readFileSync(CONFIG, 'utf8')) as InteropConfig;
}

/** One running vk-interop. */
export class VkPeer {
  readonly child: ChildProcessByStdio<Writable, Readable, null>;
  /** The READY line: device name, driver info, missing extensions. */
  ready = '';
  #lines: string[] = [];
  #waiters: ((line: string | undefined) => void)[] = [];
  #ended = false;

  /** Starts the peer; `fds` become its fds 3, 4, … (they stay the caller's). */
  constructor(config: InteropConfig, fds: number[] = []) {
    this.child = spawn(config.binary, [], {
      stdio: ['pipe', 'pipe', 'inherit', ...fds],
      env: { ...process.env, ...config.env },
    }) as ChildProcessByStdio<Writable, Readable, null>;
    const rl = createInterface({ input: this.child.stdout });
    rl.on('line', (line) => {
      const w = this.#waiters.shift();
      if (w !== undefined) w(line);
      else this.#lines.push(line);
    });
    rl.on('close', () => {
      this.#ended = true;
      for (const w of this.#waiters.splice(0)) w(undefined);
    });
  }

  /** Waits for READY (lavapipe's start takes seconds under TCG). */
  async start(): Promise<this> {
    const line = await this.next(120_000);
    if (!line.startsWith('READY ')) throw new Error(`vk-interop did not start: ${line}`);
    this.ready = line.slice('READY '.length);
    return this;
  }

  /** The next line, or an Error after `timeoutMs` or at the peer's end. */
  next(timeoutMs = 60_000): Promise<string> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#ended) return Promise.reject(new Error('vk-interop ended'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`vk-interop said nothing for ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (line: string | undefined): void => {
        clearTimeout(timer);
        if (line === undefined) reject(new Error('vk-interop ended'));
        else resolve(line);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Whether a line arrived that nobody read yet. */
  get hasLine(): boolean {
    return this.#lines.length > 0;
  }

  /** Sends a command and returns its answer line. */
  async command(cmd: string, timeoutMs?: number): Promise<string> {
    this.child.stdin.write(`${cmd}\n`);
    return this.next(timeoutMs);
  }

  /** Sends a command that answers `FD <n>`, copies that fd here (O_CLOEXEC, ours) and closes the peer's. */
  async takeFd(cmd: string): Promise<number> {
    const line = await this.command(cmd);
    const m = /^FD (\d+)$/.exec(line);
    if (m === null) throw new Error(`${cmd}: ${line}`);
    const fd = native.pidfdGetfd(this.child.pid as number, Number(m[1]));
    const closed = await this.command(`close ${m[1]}`);
    if (closed !== 'OK') throw new Error(`close ${m[1]}: ${closed}`);
    return fd;
  }

  /** Sends a command that answers `DATA <hex>`, and returns the bytes. */
  async data(cmd: string): Promise<Buffer> {
    const line = await this.command(cmd);
    if (!line.startsWith('DATA ')) throw new Error(`${cmd}: ${line}`);
    return Buffer.from(line.slice('DATA '.length), 'hex');
  }

  /** Asks it to quit and waits for its exit status. */
  async quit(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdin.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
