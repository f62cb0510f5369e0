// Shared test helpers: fd accounting, typed rejection checks, device lookup.
import { execFileSync, spawn } from 'node:child_process';
import { fstatSync, openSync, readFileSync, readdirSync, readlinkSync, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { join } from 'node:path';
import { expect } from 'chai';
import { fdWaitSetFd } from '../dist/fd-poller.js';

/** The open fds of this process, as "fd -> target". */
export function openFds(): string[] {
  const out: string[] = [];
  // The library's epoll set for fd waits, kept for the thread's life from its first fd wait on
  // (lib/fd-poller.ts): not a leak, whenever a test happens to make it.
  const waitSet = String(fdWaitSetFd());
  for (const fd of readdirSync('/proc/self/fd')) {
    if (fd === waitSet) continue;
    try {
      out.push(`${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // the fd readdir itself used, already closed
    }
  }
  return out;
}

/**
 * The entries of the library's epoll set for fd waits, as the kernel lists them in the set's
 * /proc/self/fdinfo (`tfd:` lines: the fd number an entry was added with, which may be closed
 * by now). Empty before the thread's first fd wait.
 */
export function waitSetEntries(): number[] {
  const fd = fdWaitSetFd();
  if (fd < 0) return [];
  const out: number[] = [];
  for (const line of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const m = /^tfd:\s+(\d+)/.exec(line);
    if (m !== null) out.push(Number(m[1]));
  }
  return out;
}

/** Whether `fd` is an open fd of this process. */
export function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

type Ctor<T> = abstract new (...args: never[]) => T;

/** Awaits `p`, expects it to reject with an instance of `cls`, returns the error. */
export async function shouldReject<T extends Error>(p: Promise<unknown>, cls: Ctor<T>): Promise<T> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(cls);
    return err as T;
  }
  throw new Error(`expected a rejection with ${cls.name}, but it resolved`);
}

/** Calls `fn`, expects it to throw an instance of `cls`, returns the error. */
export function shouldThrow<T extends Error>(fn: () => unknown, cls: Ctor<T>): T {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(cls);
    return err as T;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

/** Resolves after `ms` (unref'd timers would let mocha exit early: this one is ref'd). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether the promise settles within `ms` (without consuming its rejection). */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  const settled = p.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, t]);
  } finally {
    clearTimeout(timer);
  }
}

let fifoCount = 0;

/**
 * A FIFO in `dir`, opened read-write and non-blocking: a pipe fd without a peer process. The host
 * tests' stand-in fence: it polls readable ("signalled") once a byte is written into it.
 */
export function openFifo(dir: string): number {
  const path = join(dir, `fifo${process.pid}-${fifoCount++}`);
  execFileSync('mkfifo', [path]);
  return openSync(path, fsc.O_RDWR | fsc.O_NONBLOCK);
}

let provisioned: Promise<void> | undefined;

/**
 * Host tests that boot the VM (the runner's own behaviour: orphans, re-boots) time boots, not the
 * first provisioning of a fresh cache (kernel packages, apt lists, out-of-tree modules: minutes).
 * Call from a `before` hook with a long timeout: it boots `vm --no-vkms -- true` once per process.
 */
export function provisionVm(root: string): Promise<void> {
  provisioned ??= new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'explicit-sync.js'), 'vm', '-q', '--no-vkms', '--timeout', '1500', '--', 'true'], {
      cwd: root, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`provisioning the VM failed (status ${code}): ${err}`))));
  });
  return provisioned;
}
