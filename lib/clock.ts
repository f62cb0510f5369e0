/**
 * The one clock of every syncobj timeout: CLOCK_MONOTONIC, in bigint nanoseconds.
 * @module
 */
import { nativeFamily } from './native';

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
