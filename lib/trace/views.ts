/**
 * `util.inspect.custom` for every public object: `console.log(timeline)` prints what matters
 * (kind, event id, label, fd or handle, last signalled / submitted points, pending waits, …)
 * rather than an opaque class dump. Installed on the classes' prototypes by lib/index.ts, so that
 * none of the classes' files grows; the fields are read through the public API (and the
 * pending-wait counters), with zero-timeout kernel queries for the live state.
 * @module
 */
import { inspect as utilInspect, InspectOptionsStylized } from 'node:util';
import { objectId } from './channels';
import { kPendingWaits } from './inspect';

/** What the objects may have; every read is guarded. */
interface Viewable {
  label?: string;
  fd?: unknown;
  handle?: unknown;
  closed?: boolean;
  path?: unknown;
  driver?: unknown;
  size?: unknown;
  id?: unknown;
  point?: unknown;
  state?: unknown;
  pending?: unknown;
  timeline?: Viewable;
  width?: unknown;
  height?: unknown;
  type?: unknown;
  current?: { seq: number } | null;
  queued?: readonly unknown[];
  failed?: unknown;
  released?: unknown;
  seq?: unknown;
  status?: unknown;
  blobs?: readonly number[];
  query?(o?: { lastSubmitted?: boolean }): bigint;
  isSignaled?(): boolean;
  hasFence?(): boolean;
  info?(): { status: string; fences: Array<{ driver: string; timeline: string; status: string }> };
  [kPendingWaits]?: number;
}

/** Reads `fn`, or leaves the field out when it throws (a closed device, a gone fd). */
function tryRead<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** The fields shown for `obj`. */
export function viewFields(obj: object): Record<string, unknown> {
  const o = obj as Viewable;
  const kind = obj.constructor.name;
  const out: Record<string, unknown> = { id: objectId(obj) };
  if (typeof o.label === 'string') out['label'] = o.label;
  if (typeof o.fd === 'number') out['fd'] = o.fd;
  if (typeof o.handle === 'number') out['handle'] = o.handle;
  if (typeof o.path === 'string') out['path'] = o.path;
  if (typeof o.driver === 'string') out['driver'] = o.driver;
  else if (typeof (o.driver as { name?: unknown } | undefined)?.name === 'string') out['driver'] = (o.driver as { name: string }).name;
  if (typeof o.size === 'number') out['size'] = o.size;
  if (o.closed === true) {
    out['closed'] = true;
    return out;
  }
  if (kind === 'Timeline' && typeof o.query === 'function') {
    out['lastSignaled'] = tryRead(() => o.query!());
    out['lastSubmitted'] = tryRead(() => o.query!({ lastSubmitted: true }));
  } else if (kind === 'Syncobj') {
    out['fence'] = tryRead(() => (!o.hasFence!() ? 'none' : o.isSignaled!() ? 'signaled' : 'unsignaled'));
  } else if (kind === 'SyncFile' && typeof o.info === 'function') {
    const info = tryRead(() => o.info!());
    if (info !== undefined) {
      out['status'] = info.status;
      out['fences'] = info.fences.map((f) => `${f.driver}:${f.timeline} ${f.status}`);
    }
  } else if (kind === 'ReleasePoint') {
    out['timeline'] = o.timeline !== undefined ? utilInspect(o.timeline, { depth: -1 }) : undefined;
    out['point'] = o.point;
    out['state'] = o.state;
    out['pending'] = o.pending;
  } else if (kind === 'ReleaseHold') {
    out['released'] = o.released;
  } else if (kind === 'SurfaceSync') {
    out['current'] = o.current?.seq ?? null;
    out['queued'] = o.queued?.length;
    if (o.failed !== null && o.failed !== undefined) out['failed'] = String((o.failed as Error).message);
  } else if (kind === 'SurfaceCommit') {
    out['seq'] = o.seq;
    out['status'] = o.status;
  } else if (kind === 'KmsFramebuffer' || kind.startsWith('Kms') && o.id !== undefined && kind !== 'KmsDevice') {
    if (o.id !== undefined) out['kmsId'] = o.id;
    if (o.width !== undefined) out['size'] = `${String(o.width)}x${String(o.height)}`;
    if (o.type !== undefined) out['type'] = o.type;
  }
  if (kind === 'KmsAtomicRequest' && o.blobs !== undefined) out['blobs'] = o.blobs.length;
  const pending = o[kPendingWaits];
  if (typeof pending === 'number') out[kind === 'KmsDevice' ? 'pendingFlips' : 'pendingWaits'] = pending;
  return out;
}

/** The `util.inspect.custom` method installed on the classes. */
function custom(this: object, depth: number, options: InspectOptionsStylized, inspect: typeof utilInspect): string {
  const fields = viewFields(this);
  const label = typeof fields['label'] === 'string' ? ` '${fields['label']}'` : '';
  if (depth < 0) return options.stylize(`[${this.constructor.name}${label}]`, 'special');
  return `${this.constructor.name} ${inspect(fields, { ...options, depth: options.depth === null ? null : (options.depth ?? 2) - 1 })}`;
}

/** Installs the view on each class's prototype (idempotent). */
export function installViews(classes: ReadonlyArray<{ prototype: object }>): void {
  for (const c of classes)
    Object.defineProperty(c.prototype, utilInspect.custom, { value: custom, configurable: true, writable: true, enumerable: false });
}
