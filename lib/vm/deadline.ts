/**
 * Timeout arithmetic for the run. Pure: every function takes the current time as an argument.
 */

/** setTimeout fires at once for delays above this (2^31 - 1 ms, about 24.8 days); clamp to it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long KVM gets to reach the guest's INIT marker before it is declared broken. */
export const KVM_HANDSHAKE_MS = 15_000;

/** After the exit marker, how long the guest gets to power off before QEMU is killed. */
export const POWEROFF_GRACE_MS = 10_000;

/** Absolute deadline (ms since the epoch) of a run that starts at `startMs` and may last `timeoutSec`. */
export function deadlineAt(startMs: number, timeoutSec: number): number {
  return startMs + Math.round(timeoutSec * 1000);
}

/** Milliseconds left until `deadlineMs`, never negative. */
export function remainingMs(deadlineMs: number, nowMs: number): number {
  return Math.max(0, deadlineMs - nowMs);
}

/** A delay that is safe to give to setTimeout: an integer in [0, MAX_TIMER_MS]. */
export function timerDelay(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms)));
}

/**
 * The KVM handshake window: KVM_HANDSHAKE_MS, but never past the run's deadline. When it is the
 * deadline that cuts the window short, the run times out rather than falling back to TCG.
 */
export function handshakeMs(deadlineMs: number, nowMs: number): { ms: number; cutByDeadline: boolean } {
  const left = remainingMs(deadlineMs, nowMs);
  return left <= KVM_HANDSHAKE_MS ? { ms: left, cutByDeadline: true } : { ms: KVM_HANDSHAKE_MS, cutByDeadline: false };
}

/** "12.3 s" for progress messages. */
export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
