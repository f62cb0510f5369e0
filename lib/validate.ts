/**
 * Argument validation with Node-style errors (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE,
 * ERR_INVALID_ARG_VALUE). Everything the user passes is checked here before any ioctl.
 * @module
 */

/** Largest u64. */
export const U64_MAX = (1n << 64n) - 1n;
/** Largest i64 (the kernel's clamp for absolute timeouts). */
export const I64_MAX = (1n << 63n) - 1n;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `type bigint (${value}n)`;
  if (typeof value === 'number') return `type number (${value})`;
  if (typeof value === 'string') return `type string ('${value.length > 28 ? value.slice(0, 25) + '...' : value}')`;
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  return `type ${typeof value}`;
}

/** TypeError with code 'ERR_INVALID_ARG_TYPE'. */
export class InvalidArgTypeError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_TYPE';
  constructor(name: string, expected: string, value: unknown) {
    super(`The "${name}" argument must be ${expected}. Received ${describe(value)}`);
  }
}

/** RangeError with code 'ERR_OUT_OF_RANGE'. */
export class OutOfRangeError extends RangeError {
  readonly code = 'ERR_OUT_OF_RANGE';
  constructor(name: string, range: string, value: unknown) {
    super(`The value of "${name}" is out of range. It must be ${range}. Received ${describe(value)}`);
  }
}

/** TypeError with code 'ERR_INVALID_ARG_VALUE'. */
export class InvalidArgValueError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_VALUE';
  constructor(name: string, reason: string, value: unknown) {
    super(`The argument '${name}' ${reason}. Received ${describe(value)}`);
  }
}

/** A u64 value (timeline point, nanoseconds): a bigint in [0, 2^64), or a safe non-negative integer number. */
export function toU64(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw new OutOfRangeError(name, '>= 0 and <= 2^64 - 1', value);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new OutOfRangeError(name, 'an integer', value);
    if (value < 0 || !Number.isSafeInteger(value))
      throw new OutOfRangeError(name, '>= 0 and <= 2^53 - 1 (use a bigint beyond)', value);
    return BigInt(value);
  }
  throw new InvalidArgTypeError(name, 'of type bigint or number', value);
}

/** An integer number in [min, max]. */
export function toInt(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new InvalidArgTypeError(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new OutOfRangeError(name, `an integer >= ${min} and <= ${max}`, value);
  return value;
}

/** An fd number: an integer in [0, 2^31). */
export function toFd(value: unknown, name = 'fd'): number {
  return toInt(value, name, 0, 0x7fffffff);
}

/**
 * A filesystem path: a non-empty string without NUL bytes (the kernel would stop at the first NUL
 * and open another path), like Node's fs.
 */
export function toPath(value: unknown, name = 'path'): string {
  if (typeof value !== 'string') throw new InvalidArgTypeError(name, 'of type string', value);
  if (value.length === 0) throw new InvalidArgValueError(name, 'must not be empty', value);
  if (value.includes('\0')) throw new InvalidArgValueError(name, 'must be a string without null bytes', value);
  return value;
}

/**
 * Longest timeout the library schedules, in milliseconds (about 31,700 years): longer finite
 * timeouts are waited as this long, so that ms → ns conversions never overflow.
 */
export const MAX_TIMEOUT_MS = 1e15;

/** A timeout in milliseconds: a finite number >= 0, or Infinity for "no timeout" (returned as undefined). */
export function toTimeoutMs(value: unknown, name = 'timeoutMs'): number | undefined {
  if (value === undefined || value === Infinity) return undefined;
  if (typeof value !== 'number') throw new InvalidArgTypeError(name, 'of type number', value);
  if (Number.isNaN(value) || value < 0) throw new OutOfRangeError(name, '>= 0 (or Infinity)', value);
  return value;
}

/** An AbortSignal or undefined. */
export function toAbortSignal(value: unknown, name = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new InvalidArgTypeError(name, 'an instance of AbortSignal', value);
  return value;
}

/** toOptions' answer for undefined: shared and frozen, so that a call without options allocates nothing. */
const NO_OPTIONS: Readonly<Record<string, never>> = Object.freeze({});

/**
 * A plain options object or undefined (→ an empty, frozen object), with no keys but those in `keys`
 * (see {@link checkOptionKeys}): TypeError for a non-object, ERR_INVALID_ARG_VALUE for an unknown key.
 */
export function toOptions<T extends object>(value: T | undefined, keys: OptionKeys<T>, name = 'options'): Partial<T> {
  if (value === undefined) return NO_OPTIONS as Partial<T>;
  if (value === null || typeof value !== 'object') throw new InvalidArgTypeError(name, 'of type object', value);
  checkOptionKeys(value, keys, name);
  return value;
}

/** One of a fixed set of strings. */
export function toEnum<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new InvalidArgValueError(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as T;
}

/**
 * The keys an options type allows, as a record so that the compiler checks the list against the
 * type both ways (a key missing here, or one the type lacks, does not compile).
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true };

/** Edit distance (Levenshtein) between two short strings. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The allowed key closest to `key`: one equal to it but for case first, then the nearest by edit
 * distance (ignoring case) when that is at most a third of the longer name's length (at least 2).
 * Undefined when none is close.
 */
export function nearestKey(key: string, allowed: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameCase = allowed.find((k) => k.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of allowed) {
    const d = editDistance(lower, k.toLowerCase());
    if (d <= Math.max(2, Math.floor(Math.max(key.length, k.length) / 3)) && d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/**
 * Throws InvalidArgValueError (code 'ERR_INVALID_ARG_VALUE') for the first own enumerable key of
 * `options` that `allowed` lacks, naming the nearest allowed key ("Did you mean 'timeoutMs'?"):
 * a misspelt option is an error, never silently ignored.
 */
export function checkOptionKeys(options: object, allowed: OptionKeys<object>, name = 'options'): void {
  for (const key in options) {
    if (!Object.hasOwn(options, key) || Object.hasOwn(allowed, key)) continue;
    // Only a refused key pays for the list (every wait and query passes through here).
    const list = Object.keys(allowed);
    const near = nearestKey(key, list);
    const taken = list.length === 0 ? 'none are taken here' : `known: ${list.map((k) => `'${k}'`).join(', ')}`;
    throw new InvalidArgValueError(
      `${name}.${key}`,
      `is not a known option.${near !== undefined ? ` Did you mean '${near}'?` : ''} (${taken})`,
      (options as Record<string, unknown>)[key],
    );
  }
}

const warned = new Set<string>();

/**
 * Emits a DeprecationWarning once per process for `code` (an EXPLICIT_SYNC_DEP_* code): an old
 * call shape still works, and says once what replaces it.
 */
export function warnDeprecated(code: string, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  process.emitWarning(message, { type: 'DeprecationWarning', code });
}
