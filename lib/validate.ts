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

/** A plain options object or undefined (→ {}). */
export function toOptions<T extends object>(value: T | undefined, name = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw new InvalidArgTypeError(name, 'of type object', value);
  return value;
}

/** One of a fixed set of strings. */
export function toEnum<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new InvalidArgValueError(name, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as T;
}
