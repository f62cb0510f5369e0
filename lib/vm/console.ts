/**
 * Parser of the guest's serial console. Pure: it is fed decoded text and says what to stream.
 *
 * The guest's /init prints, each on its own line:
 *   INIT_MARKER           first thing, before any setup (the KVM handshake waits for it);
 *   READY_MARKER          just before the command starts;
 *   exitMarker(nonce, n)  after the command ended with status n; `nonce` is per run, so output
 *                         of the command that happens to contain a marker is not mistaken for it.
 * Everything before READY (kernel messages, /init's own diagnostics) is held in `bootLog` and only
 * shown when the run fails. Everything between READY and the exit marker is the command's output.
 */

/** Protocol markers (see above) and the kernel's panic message. */
export const INIT_MARKER = '@@EXPLICIT-SYNC-INIT@@';
export const READY_MARKER = '@@EXPLICIT-SYNC-READY@@';
const EXIT_PREFIX = '@@EXPLICIT-SYNC-EXIT-';
export const PANIC_TEXT = 'Kernel panic - not syncing';

/** The exit-status line /init prints (without its newline); also used with shell expansions. */
export function exitMarker(nonce: string, status: number | string): string {
  return `${EXIT_PREFIX}${nonce}=${status}@@`;
}

/** Where the guest is: before /init, in /init's setup, running the command, finished. */
export type ConsolePhase = 'boot' | 'init' | 'run' | 'done';
export type ConsoleEvent = 'init' | 'ready' | 'exit' | 'panic';

/** What one push() yields. */
export interface ConsoleUpdate {
  /** Command output to stream now (the markers removed, CRLF turned into LF). */
  output: string;
  /** Phases reached and conditions seen by this push, in order. */
  events: ConsoleEvent[];
}

/** Splits one boot's console stream into boot log, command output and status. */
export class ConsoleParser {
  phase: ConsolePhase = 'boot';
  /** The command's exit status, once the exit marker was seen. */
  exitCode: number | undefined;
  /** Whether the kernel's panic message was seen (the run then normally ends without a marker). */
  panicked = false;

  readonly #exitHead: string;
  readonly #exitLine: RegExp;
  /** A trailing '\r' kept until we know whether '\n' follows it. */
  #pendingCr = false;
  /** Console text before READY, while in the boot and init phases. */
  #pre = '';
  /** The same text, kept once READY was seen. */
  #bootLog = '';
  /** Run-phase text that might be the start of the exit marker, not yet streamed. */
  #held = '';
  /** The last few characters seen, so the panic text is found across chunk boundaries. */
  #tail = '';

  constructor(nonce: string) {
    if (!/^[0-9a-z]+$/.test(nonce)) throw new RangeError(`invalid nonce ${JSON.stringify(nonce)}`);
    this.#exitHead = `${EXIT_PREFIX}${nonce}=`;
    this.#exitLine = new RegExp(`${EXIT_PREFIX}${nonce}=(\\d{1,3})@@\\n?`);
  }

  /** Console text before READY: what to show when the guest failed before running the command. */
  get bootLog(): string {
    return this.phase === 'boot' || this.phase === 'init' ? this.#pre : this.#bootLog;
  }

  push(chunk: string): ConsoleUpdate {
    let text = (this.#pendingCr ? '\r' : '') + chunk;
    this.#pendingCr = text.endsWith('\r');
    if (this.#pendingCr) text = text.slice(0, -1);
    text = text.replace(/\r\n/g, '\n');

    const events: ConsoleEvent[] = [];
    if (!this.panicked && (this.#tail + text).includes(PANIC_TEXT)) {
      this.panicked = true;
      events.push('panic');
    }
    this.#tail = (this.#tail + text).slice(-PANIC_TEXT.length);

    let output = '';
    if (this.phase === 'boot' || this.phase === 'init') {
      this.#pre += text;
      if (this.phase === 'boot' && this.#pre.includes(`${INIT_MARKER}\n`)) {
        this.phase = 'init';
        events.push('init');
      }
      const ready = this.#pre.indexOf(`${READY_MARKER}\n`);
      if (this.phase === 'init' && ready !== -1) {
        this.phase = 'run';
        events.push('ready');
        this.#bootLog = this.#pre.slice(0, ready);
        text = this.#pre.slice(ready + READY_MARKER.length + 1);
        this.#pre = '';
      }
    }
    if (this.phase === 'run') {
      output = this.#runText(text);
      if (this.exitCode !== undefined) events.push('exit');
    }
    return { output, events };
  }

  /** Called when the console closed: returns any output still held back. */
  end(): string {
    const rest = this.#held + (this.#pendingCr && this.phase === 'run' ? '\r' : '');
    this.#held = '';
    this.#pendingCr = false;
    return this.phase === 'run' ? rest : '';
  }

  #runText(text: string): string {
    const buffer = this.#held + text;
    this.#held = '';
    const match = this.#exitLine.exec(buffer);
    if (match) {
      this.phase = 'done';
      this.exitCode = Number(match[1]);
      return buffer.slice(0, match.index);
    }
    const keep = this.#markerPrefixLength(buffer);
    this.#held = buffer.slice(buffer.length - keep);
    return buffer.slice(0, buffer.length - keep);
  }

  /** Length of the longest suffix of `buffer` that could still grow into the exit marker. */
  #markerPrefixLength(buffer: string): number {
    const longest = this.#exitHead.length + 4; // head + up to three digits + '@'
    for (let start = Math.max(0, buffer.length - longest); start < buffer.length; start++) {
      const suffix = buffer.slice(start);
      const head = suffix.slice(0, this.#exitHead.length);
      const rest = suffix.slice(this.#exitHead.length);
      if (this.#exitHead.startsWith(head) && (rest === '' || /^\d{1,3}@?$/.test(rest))) return suffix.length;
    }
    return 0;
  }
}
