/**
 * The provisioning cache: where it lives, its lock, and atomic publication into it.
 *
 * Invariant: every entry (a kernel tree, an initramfs, a KVM verdict) appears under its final
 * name only complete, by rename(2) from a temporary sibling. The lock only stops concurrent runs
 * from downloading and building the same thing twice; correctness never depends on it.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** `$EXPLICIT_SYNC_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/explicit-sync`. */
export function cacheRoot(env: Readonly<Record<string, string | undefined>>, home: string): string {
  const explicit = env['EXPLICIT_SYNC_CACHE'];
  if (explicit) return path.resolve(explicit);
  const xdg = env['XDG_CACHE_HOME'];
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache'), 'explicit-sync');
}

/** cacheRoot() for this process. */
export function defaultCacheRoot(): string {
  return cacheRoot(process.env, os.homedir());
}

/** A fresh, empty temporary directory inside `root` (same filesystem, so rename is atomic). */
export async function makeTempDir(root: string): Promise<string> {
  await fs.promises.mkdir(root, { recursive: true });
  return fs.promises.mkdtemp(path.join(root, '.tmp-'));
}

/**
 * Renames `from` to `target`. If another run published `target` first, ours is discarded and
 * theirs kept (both are complete and equivalent).
 */
export async function publish(from: string, target: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  try {
    await fs.promises.rename(from, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && fs.existsSync(target)) {
      await fs.promises.rm(from, { recursive: true, force: true });
      return;
    }
    throw err;
  }
}

/** Whether process `pid` exists on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const LOCK_POLL_MS = 200;
/** A lock directory without an owner file this old is a leftover of a crash between mkdir and write. */
const OWNERLESS_STALE_MS = 60_000;

/**
 * Runs `fn` holding the cache's provisioning lock: a directory `<root>/lock` holding the owner's
 * pid. A lock whose owner is gone is stale and taken over. `onWait` is called once if we must wait.
 */
export async function withCacheLock<T>(root: string, signal: AbortSignal, onWait: () => void, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(root, 'lock');
  await fs.promises.mkdir(root, { recursive: true });
  let waited = false;
  for (;;) {
    signal.throwIfAborted();
    try {
      await fs.promises.mkdir(lock);
      await fs.promises.writeFile(path.join(lock, 'owner'), `${process.pid}\n`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (lockIsStale(lock)) {
      const aside = `${lock}.stale-${randomBytes(4).toString('hex')}`;
      await fs.promises.rename(lock, aside).catch(() => undefined);
      await fs.promises.rm(aside, { recursive: true, force: true });
      continue;
    }
    if (!waited) onWait();
    waited = true;
    await sleep(LOCK_POLL_MS, undefined, { signal });
  }
  try {
    return await fn();
  } finally {
    await fs.promises.rm(lock, { recursive: true, force: true });
  }
}

function lockIsStale(lock: string): boolean {
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(lock, 'owner'), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && !processAlive(pid);
  } catch {
    try {
      return Date.now() - fs.statSync(lock).mtimeMs > OWNERLESS_STALE_MS;
    } catch {
      return false; // the lock vanished: just retry
    }
  }
}
