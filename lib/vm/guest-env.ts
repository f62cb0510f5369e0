/**
 * What the guest command sees: its environment and the per-run script that starts it. Pure.
 */

/** Writable tmpfs home inside the guest (the host tree is read-only there). */
export const GUEST_HOME = '/tmp/home';

/** Guest directory (on its /tmp tmpfs) where /init puts the per-run files. */
export const GUEST_RUN_DIR = '/tmp/explicit-sync';

/** PATH in the guest: node lives in /usr/local/bin or /usr/bin depending on how it was installed. */
export const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Host variables forwarded by name, besides every `EXPLICIT_SYNC_*` one. */
export const FORWARDED_NAMES: readonly string[] = ['CI', 'TERM', 'NO_COLOR', 'FORCE_COLOR', 'NODE_OPTIONS'];

const FORWARDED_PREFIX = 'EXPLICIT_SYNC_';

/** The guest variable listing the drivers that loaded (vgem,virtio_gpu,…), set by the guest's /init. */
export const GUEST_DRIVERS_ENV = 'EXPLICIT_SYNC_VM_DRIVERS';

/**
 * Turns `--env` specs into variables: `NAME=VALUE` sets it; `NAME` copies the host's value and is
 * skipped when the host does not have it. Later specs win.
 */
export function resolveEnvSpecs(
  hostEnv: Readonly<Record<string, string | undefined>>,
  specs: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq !== -1) {
      env[spec.slice(0, eq)] = spec.slice(eq + 1);
    } else {
      const value = hostEnv[spec];
      if (value !== undefined) env[spec] = value;
    }
  }
  return env;
}

/**
 * The guest command's complete environment (it starts from an empty one).
 * Precedence, lowest first: guest defaults (PATH, HOME, npm cache and offline mode),
 * automatically forwarded host variables, `extra` (explicit --env or API variables), and finally
 * `EXPLICIT_SYNC_IN_VM=1`.
 */
export function selectGuestEnv(
  hostEnv: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: GUEST_PATH,
    HOME: GUEST_HOME,
    npm_config_cache: `${GUEST_HOME}/.npm`,
    // The guest has no network: npm/npx would otherwise retry the registry for about a minute.
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
  };
  for (const [name, value] of Object.entries(hostEnv)) {
    if (value === undefined) continue;
    if (name.startsWith(FORWARDED_PREFIX) || FORWARDED_NAMES.includes(name)) env[name] = value;
  }
  // Set by the guest's /init from what actually loaded; a host value must not mask it.
  delete env[GUEST_DRIVERS_ENV];
  Object.assign(env, extra);
  env['EXPLICIT_SYNC_IN_VM'] = '1';
  return env;
}

/** Quotes one word for a POSIX shell: single quotes, with each `'` written as `'\''`. */
export function shQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Input of renderRunScript(). */
export interface RunScriptSpec {
  command: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  /**
   * Whether the command's stdout/stderr is the guest console (a tty). When false the output goes
   * through a pipe, so the command sees what it would on a non-tty host (no colours, no spinners).
   */
  tty: boolean;
  /** The host terminal's size, given to the guest console in tty mode (it starts at 0x0). */
  size?: { columns: number; rows: number };
}

/**
 * The script the guest's /init runs with the host's /bin/sh, chrooted into the host tree.
 * It runs the command exactly as given (each argv word quoted), in `cwd`, with stdin from
 * /dev/null, stderr merged into stdout, and exits with the command's status.
 */
export function renderRunScript(spec: RunScriptSpec): string {
  const lines = ['# explicit-sync vm: per-run script (generated)'];
  for (const name of Object.keys(spec.env).sort()) {
    lines.push(`export ${name}=${shQuote(spec.env[name] as string)}`);
  }
  lines.push(`mkdir -p "$HOME"`);
  lines.push(`cd ${shQuote(spec.cwd)} || exit 126`);
  const command = spec.command.map(shQuote).join(' ');
  if (spec.tty) {
    if (spec.size) lines.push(`stty rows ${spec.size.rows | 0} cols ${spec.size.columns | 0} 2>/dev/null`);
    lines.push(`${command} </dev/null 2>&1`);
    lines.push('exit $?');
  } else {
    // dash has no pipefail: the status travels through a file.
    const statusFile = `${GUEST_RUN_DIR}/status`;
    lines.push(`echo 127 >${statusFile}`);
    lines.push(`{ ${command} </dev/null; echo $? >${statusFile}; } 2>&1 | cat`);
    lines.push(`read -r status <${statusFile}`);
    lines.push('exit "$status"');
  }
  return `${lines.join('\n')}\n`;
}
