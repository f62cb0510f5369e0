/**
 * The one clock of every syncobj timeout: CLOCK_MONOTONIC, in bigint nanoseconds.
 * @module
 */
import { nativeFamily } from './native';
import { I64_MAX, InvalidArgTypeError, OutOfRangeError, toU64 } from './validate';

const native = nativeFamily<{ clockMonotonic(): bigint }>();

/**
 * Now, as bigint nanoseconds of CLOCK_MONOTONIC (clock_gettime(2)): the clock the kernel uses for
 * DRM syncobj timeouts and fence deadlines. Build absolute `deadline`s from it:
 * `monotonicNow() + 16_000_000n` is 16 ms from now. Same clock as `process.hrtime.bigint()` on Linux
 * (libuv reads CLOCK_MONOTONIC), read directly so the two can never drift apart.
 */
export function monotonicNow(): bigint {
  return native.clockMonotonic();
}

/**
 * How far ahead of {@link monotonicNow} an absolute deadline may lie: 10 years. CLOCK_MONOTONIC
 * counts from boot, so a real deadline is "now plus a little"; a value beyond this is almost
 * certainly a wall-clock time (`BigInt(Date.now()) * 1_000_000n` is about 1.7e18 ns, i.e. ~56
 * years of uptime) or a unit mix-up, which would otherwise wait for decades.
 */
export const MAX_DEADLINE_AHEAD_NS = 10n * 31_557_600n * 1_000_000_000n;

/** The same bound in milliseconds, for the relative (number) forms of deadlines. */
export const MAX_DEADLINE_AHEAD_MS = Number(MAX_DEADLINE_AHEAD_NS / 1_000_000n);

/**
 * An absolute CLOCK_MONOTONIC deadline in nanoseconds (`deadline`, `fenceDeadline`,
 * `setDeadline(bigint)`): a bigint in [0, 2^63 - 1] (the kernel's signed ktime_t), at most
 * {@link MAX_DEADLINE_AHEAD_NS} (10 years) after now. 2^63 - 1 itself, the kernel's "no limit",
 * is always accepted. TypeError for a non-bigint, RangeError (ERR_OUT_OF_RANGE) otherwise; the
 * message for a far-future one says deadlines are CLOCK_MONOTONIC and how to build one.
 * `ns` is the value to check when it was computed from `value` (a relative form).
 */
export function toDeadline(value: unknown, name: string, ns?: bigint): bigint {
  if (ns === undefined) {
    if (typeof value !== 'bigint') throw new InvalidArgTypeError(name, 'of type bigint (CLOCK_MONOTONIC ns)', value);
    ns = toU64(value, name);
  }
  // The kernel reads it as a signed ktime_t: beyond 2^63 - 1 it would be a time in the past.
  if (ns > I64_MAX) throw new OutOfRangeError(name, 'at most 2^63 - 1 ns of CLOCK_MONOTONIC (a ktime_t)', value);
  if (ns !== I64_MAX && ns - monotonicNow() > MAX_DEADLINE_AHEAD_NS)
    throw new OutOfRangeError(
      name,
      'a CLOCK_MONOTONIC time in nanoseconds (time since boot) at most 10 years from now; this looks like ' +
        'a wall-clock time. Build deadlines as monotonicNow() + ms * 1_000_000n, or pass timeoutMs',
      value,
    );
  return ns;
}
