/**
 * The garbage-collector backstops' one voice: objects collected without close() are reported with
 * process warnings of code 'EXPLICIT_SYNC_LEAK', rate-limited so that a loop that drops 1,000
 * objects gives two warnings, not 1,000. The first leak is reported at once, with what leaked;
 * later ones are counted and summed up at most once per {@link LEAK_REPORT_INTERVAL_MS}
 * ("999 more objects … since …", by kind). Each warning is an Error whose `count` says how many
 * objects it reports and `kinds` how many of each kind.
 *
 * Where the objects were created is only known with `EXPLICIT_SYNC_TRACE_LEAKS=1` in the
 * environment (read once, when the library loads): capturing a stack for every object costs
 * (a few microseconds each), so it is off by default.
 * @module
 * @internal
 */
import { sep } from 'node:path';
import { objectChannel, publishGc } from './trace/channels';

/** At most one summary warning per this many milliseconds. */
export const LEAK_REPORT_INTERVAL_MS = 1000;

/** Whether creation stacks are captured: EXPLICIT_SYNC_TRACE_LEAKS=1 (or 'true'). */
export const traceLeaks = /^(1|true|yes|on)$/i.test(process.env['EXPLICIT_SYNC_TRACE_LEAKS'] ?? '');

/** Where an object was created: a formatted stack. */
export interface CreationSite {
  stack?: string;
}

/** Captures where an object is being created, when tracing is on (undefined otherwise: free). */
export function creationSite(): CreationSite | undefined {
  if (!traceLeaks) return undefined;
  const site: CreationSite = {};
  Error.captureStackTrace(site, creationSite);
  // Formatted now: an unformatted capture keeps its frames' receivers alive, among them the very
  // object being created, which then could never be collected.
  return { stack: site.stack ?? '' };
}

/** This library's own folder: its frames are left out of creation stacks. */
const ownDir = `${__dirname}${sep}`;

/** The stack's frames outside this library, one per line, indented; '' without a site. */
export function formatSite(site: CreationSite | undefined): string {
  const frames = (site?.stack ?? '').split('\n').slice(1).map((l) => l.trim());
  const outside = frames.filter((f) => !f.includes(ownDir));
  return outside.length > 0 ? outside.map((f) => `\n    ${f}`).join('') : '';
}

/** The first frame outside this library ('at main (/app/x.js:12:5)'), or 'unknown'. */
function firstFrame(site: CreationSite | undefined): string {
  const first = formatSite(site).split('\n')[1];
  return first !== undefined ? first.trim() : 'unknown';
}

/** A leak warning: an Error with the code, and how many objects of which kinds it reports. */
export interface LeakWarning extends Error {
  code: 'EXPLICIT_SYNC_LEAK';
  count: number;
  kinds: Record<string, number>;
}

function emit(message: string, kinds: Map<string, number>): void {
  const warning = new Error(message) as LeakWarning;
  warning.name = 'Warning';
  warning.code = 'EXPLICIT_SYNC_LEAK';
  warning.kinds = Object.fromEntries(kinds);
  warning.count = [...kinds.values()].reduce((a, b) => a + b, 0);
  process.emitWarning(warning);
}

const HINT = ' Set EXPLICIT_SYNC_TRACE_LEAKS=1 to see where leaked objects are created.';

/** Leaks reported since the last warning, waiting for the window to end. */
let pending: { since: Date; kinds: Map<string, number>; sites: Map<string, number> } | null = null;
let timer: NodeJS.Timeout | null = null;
/** When the last warning went out (ms, performance.now()); -Infinity before the first. */
let last = -Infinity;

function flush(): void {
  timer = null;
  const p = pending;
  pending = null;
  if (p === null) return;
  last = performance.now();
  const count = [...p.kinds.values()].reduce((a, b) => a + b, 0);
  const kinds = [...p.kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n.toLocaleString('en-US')} ${k}`);
  const sites = [...p.sites].sort((a, b) => b[1] - a[1]).slice(0, 5);
  const where = traceLeaks
    ? `; created at:${sites.map(([s, n]) => `\n    ${n.toLocaleString('en-US')} × ${s}`).join('')}`
    : `.${HINT}`;
  emit(
    `${count.toLocaleString('en-US')} more object${count === 1 ? ' was' : 's were'} garbage-collected without close() ` +
      `since ${p.since.toISOString()} (${kinds.join(', ')}); what they owned was released${where}`,
    p.kinds,
  );
}

/**
 * Reports one object collected without close(): `kind` is its class ('SyncFile'), `message` says
 * what was released. Called from FinalizationRegistry callbacks.
 */
export function reportLeak(kind: string, message: string, site: CreationSite | undefined): void {
  if (objectChannel.hasSubscribers) publishGc(kind, message);
  const now = performance.now();
  if (pending === null && now - last >= LEAK_REPORT_INTERVAL_MS) {
    last = now;
    emit(`${message}.${traceLeaks ? ` Created at:${formatSite(site)}` : HINT}`, new Map([[kind, 1]]));
    return;
  }
  pending ??= { since: new Date(), kinds: new Map(), sites: new Map() };
  pending.kinds.set(kind, (pending.kinds.get(kind) ?? 0) + 1);
  if (traceLeaks) {
    const frame = firstFrame(site);
    pending.sites.set(frame, (pending.sites.get(frame) ?? 0) + 1);
  }
  // Not ref'd: a pending summary never keeps the process alive.
  timer ??= setTimeout(flush, Math.max(0, LEAK_REPORT_INTERVAL_MS - (now - last))).unref();
}

/** What a {@link LeakBackstop} keeps per object: its `state` field is the backstop's. */
export interface BackstopRecord {
  /**
   * 0: registration pending (end of this tick); 1: registered; 2: let go (closed); 3: deferred
   * (rooted when its registration was due: registered once no longer rooted).
   */
  state?: 0 | 1 | 2 | 3;
  /** How many of the library's own tables root the object now (see {@link LeakBackstop.root}). */
  rooted?: number;
}

const PENDING = 0;
const REGISTERED = 1;
const RELEASED = 2;
const DEFERRED = 3;
/** Pending registrations (object, record pairs) that make a flush happen at once. */
const MAX_PENDING = 8192;
/** How long a registration due after a root ended waits at most for the next flush. */
const LATER_MS = 100;
const RESOLVED = Promise.resolve();

/**
 * The GC backstop of the fd and handle owners: a FinalizationRegistry whose registrations wait for
 * the end of the current tick (a microtask). A register + unregister pair costs V8 1-2 µs per
 * object, more than the ioctl that made it; objects closed in the tick that created them (a
 * sync_file exported and consumed in one frame handler, a create/close loop) never reach the
 * registry. Until the flush the pending list holds the object strongly, so none can be collected
 * unregistered: the backstop and its warning are unchanged for every object still open at the end
 * of its tick. The list stays short: closing the newest pending object pops it, and a long list is
 * flushed at once.
 *
 * An object the library itself roots when its registration is due (a SyncFile with a wait pending:
 * the epoll set's table holds it) cannot be collected then, so its registration waits until it is
 * let go ({@link root}/{@link unroot}): a sync_file waited on and closed once the wait resolves,
 * the common case, never reaches the registry either.
 */
export class LeakBackstop<H extends BackstopRecord> {
  readonly #registry: FinalizationRegistry<H>;
  /** Registrations due at the end of this tick (object, record pairs). */
  readonly #pending: Array<object | H> = [];
  /** Registrations due again after a root ended: with the next flush, or {@link LATER_MS} at most. */
  readonly #later: Array<object | H> = [];
  #scheduled = false;
  #laterTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #flush = (): void => {
    this.#scheduled = false;
    this.#registerAll(this.#pending);
    this.#registerAll(this.#later);
  };
  readonly #flushLater = (): void => {
    this.#laterTimer = undefined;
    this.#registerAll(this.#later);
  };

  #registerAll(p: Array<object | H>): void {
    for (let i = 0; i < p.length; i += 2) {
      const obj = p[i] as object;
      const held = p[i + 1] as H;
      if (held.state !== PENDING) continue;
      if (held.rooted !== undefined && held.rooted > 0) {
        held.state = DEFERRED; // unroot() brings it back
        continue;
      }
      this.#registry.register(obj, held, obj);
      held.state = REGISTERED;
    }
    p.length = 0;
  }

  /** `cleanup` runs for each object collected while registered (it must not reference the object). */
  constructor(cleanup: (held: H) => void) {
    this.#registry = new FinalizationRegistry(cleanup);
  }

  /** Watches `obj`, whose record is `held` (which must not reference `obj`). */
  register(obj: object, held: H): void {
    held.state = PENDING;
    this.#queue(obj, held);
  }

  /** The library roots `obj` from now until {@link unroot} (calls nest). */
  root(held: H): void {
    held.rooted = (held.rooted ?? 0) + 1;
  }

  /**
   * The library's root of `obj` ends. After the last one a deferred registration is due again:
   * with the next registration's flush, or within {@link LATER_MS} (an unref'd timer). Not a flush
   * of its own at the end of this tick: the code that awaited the wait usually closes the object,
   * and a flush per wait costs a microtask more than the registration it saves (~5 µs under
   * emulation). Until then `#later` holds the object strongly: none is collected unregistered.
   */
  unroot(obj: object, held: H): void {
    held.rooted = (held.rooted ?? 1) - 1;
    if (held.rooted !== 0 || held.state !== DEFERRED) return;
    held.state = PENDING;
    const l = this.#later;
    l.push(obj, held);
    if (l.length >= 2 * MAX_PENDING) this.#flushLater();
    else this.#laterTimer ??= setTimeout(this.#flushLater, LATER_MS).unref();
  }

  #queue(obj: object, held: H): void {
    const p = this.#pending;
    p.push(obj, held);
    if (p.length >= 2 * MAX_PENDING) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      void RESOLVED.then(this.#flush); // a microtask: lighter than queueMicrotask()'s async resource
    }
  }

  /** Stops watching `obj` (close()); idempotent. */
  unregister(obj: object, held: H): void {
    if (held.state === DEFERRED) held.state = RELEASED;
    else if (held.state === PENDING) {
      held.state = RELEASED;
      const p = this.#pending;
      const l = this.#later;
      if (p[p.length - 1] === held) p.length -= 2;
      else if (l[l.length - 1] === held) l.length -= 2;
    } else if (held.state === REGISTERED) {
      held.state = RELEASED;
      this.#registry.unregister(obj);
    }
  }
}
