/**
 * The runner's own apt configuration: a sources list, package lists and an archive cache of its
 * own under <cache>/apt, so kernels from other Debian suites (bookworm-security for 6.1 and 6.12,
 * trixie-backports for the newest kernel) can be listed and downloaded without touching the
 * machine's apt sources. The archive hosts are the ones the machine's own sources name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runTool, type ToolOptions } from './tools';

/** The keyring that signs Debian's archive (package debian-archive-keyring). */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** A suite a runner sources list names, and in which archive it lives. */
export interface RunnerSuite {
  suite: string;
  archive: 'main' | 'security';
}

/** Suites the runner's sources list names, and in which archive each one lives. */
export const RUNNER_SUITES: readonly RunnerSuite[] = [
  { suite: 'bookworm', archive: 'main' },
  { suite: 'bookworm-security', archive: 'security' },
  { suite: 'trixie-backports', archive: 'main' },
];

/**
 * One private apt configuration of the runner: its folder under the cache, what it is for (the
 * sources list's comment) and its suites. Kernels use `apt`; Mesa for the interop tests uses its
 * own (`apt-mesa`), so that its package resolution sees only Debian 12 and its backports.
 */
export interface AptProfile {
  dir: string;
  purpose: string;
  suites: readonly RunnerSuite[];
  /** Foreign package architectures the lists also hold (the machine's own stays the native one). */
  foreign?: readonly string[];
}

/** The kernels' apt configuration. */
export const KERNEL_APT: AptProfile = { dir: 'apt', purpose: 'kernel packages only', suites: RUNNER_SUITES };

/**
 * The arm64 guest's apt configuration: the same suites with the arm64 lists added, for its kernel,
 * its userspace (busybox-static, libc6, …: `name:arm64`) and the out-of-tree module builds, whose
 * kbuild host programs come from the native (amd64) lists of the same configuration.
 */
export const ARM64_APT: AptProfile = { dir: 'apt-arm64', purpose: 'arm64 guest kernel and userspace packages', suites: RUNNER_SUITES, foreign: ['arm64'] };

/** Where Debian's packages come from on this machine: the main archive and the security one. */
export interface DebianArchive {
  main: string;
  security: string;
}

/** One `deb` source of the machine's apt configuration. */
interface SourceEntry {
  uri: string;
  suites: string[];
}

/** The `deb` entries of a sources file, one-line (`sources.list`) or deb822 (`*.sources`) format. */
export function parseAptSources(text: string): SourceEntry[] {
  const entries: SourceEntry[] = [];
  // A comment line is dropped, not blanked: in deb822 a blank line would end the paragraph.
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l)).map((l) => l.replace(/#.*$/, '').trimEnd());
  // One-line format: deb [options] uri suite component...
  for (const line of lines) {
    const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (m) entries.push({ uri: m[1] as string, suites: [m[2] as string] });
  }
  // deb822: paragraphs of "Field: value" separated by blank lines.
  for (const para of lines.join('\n').split(/\n\s*\n/)) {
    const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*)$`, 'mi').exec(para)?.[1]?.trim();
    const types = field('Types');
    const uris = field('URIs');
    const suites = field('Suites');
    if (types === undefined || uris === undefined || suites === undefined) continue;
    if (!types.split(/\s+/).includes('deb') || /^enabled:\s*no\s*$/im.test(para)) continue;
    for (const uri of uris.split(/\s+/)) entries.push({ uri, suites: suites.split(/\s+/) });
  }
  return entries;
}

const strip = (uri: string): string => uri.replace(/\/+$/, '');

/**
 * The Debian archive the machine's sources use: the URI that serves a Debian suite (bookworm,
 * trixie, …) and the one that serves its -security suite. Throws when the sources name none.
 */
export function debianArchiveFrom(entries: readonly SourceEntry[]): DebianArchive {
  const isDebianSuite = (s: string): boolean => /^(bookworm|trixie|forky|sid|unstable|testing|stable)(-updates|-backports)?$/.test(s);
  const main = entries.find((e) => e.suites.some(isDebianSuite) && /\/debian$/.test(strip(e.uri)));
  if (main === undefined) {
    throw new Error("the machine's apt sources name no Debian archive (a `deb <uri>/debian bookworm main` entry), which the VM runner's kernels come from");
  }
  const security = entries.find((e) => e.suites.some((s) => s.endsWith('-security')));
  return {
    main: strip(main.uri),
    // Debian's convention: the security archive sits beside the main one.
    security: security !== undefined ? strip(security.uri) : `${strip(main.uri)}-security`,
  };
}

/** Reads /etc/apt/sources.list and every enabled file in /etc/apt/sources.list.d. */
export function machineArchive(etc = '/etc/apt'): DebianArchive {
  const texts: string[] = [];
  const read = (file: string): void => {
    try {
      texts.push(fs.readFileSync(file, 'utf8'));
    } catch {
      // absent: fine
    }
  };
  read(path.join(etc, 'sources.list'));
  let parts: string[] = [];
  try {
    parts = fs.readdirSync(path.join(etc, 'sources.list.d')).sort();
  } catch {
    parts = [];
  }
  for (const name of parts) if (name.endsWith('.list') || name.endsWith('.sources')) read(path.join(etc, 'sources.list.d', name));
  return debianArchiveFrom(texts.flatMap(parseAptSources));
}

/** The runner's sources.list (the kernels' one unless `profile` says otherwise). */
export function renderSourcesList(archive: DebianArchive, keyring = DEBIAN_KEYRING, profile: AptProfile = KERNEL_APT): string {
  const lines = [`# explicit-sync VM runner: ${profile.purpose} (generated; the machine's own apt sources are untouched)`];
  for (const { suite, archive: which } of profile.suites) {
    lines.push(`deb [signed-by=${keyring}] ${archive[which]} ${suite} main`);
  }
  return `${lines.join('\n')}\n`;
}

/** The `-o` options that point apt-get and apt-cache at the configuration in `dir`. */
export function aptOptions(dir: string, foreign: readonly string[] = []): string[] {
  return [
    '-o', `Dir::Etc::sourcelist=${path.join(dir, 'sources.list')}`,
    '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::Lists=${path.join(dir, 'lists')}`,
    '-o', `Dir::Cache=${path.join(dir, 'cache')}`,
    // The machine's dpkg architectures plus these (apt reads APT::Architectures as the whole list).
    ...(foreign.length > 0 ? ['-o', 'APT::Architectures::=amd64', ...foreign.flatMap((a) => ['-o', `APT::Architectures::=${a}`])] : []),
  ];
}

/** Lists older than this are refreshed before a kernel is looked up (versions rotate). */
export const APT_LISTS_MAX_AGE_MS = 24 * 3600_000;

/** How long ago the runner's package lists in <cache>/<dir> were updated (ms), if they ever were. */
export function aptListsAgeMs(cache: string, now = Date.now(), dir = KERNEL_APT.dir): number | undefined {
  try {
    return Math.max(0, now - fs.statSync(path.join(cache, dir, 'updated')).mtimeMs);
  } catch {
    return undefined;
  }
}

/** An age for people: "40 s", "12 min", "5 h", "3 days". */
export function formatAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

/** The runner's apt: `get` runs apt-get, `cache` apt-cache, both with its configuration. */
export interface RunnerApt {
  dir: string;
  get(args: readonly string[], opts?: ToolOptions): Promise<string>;
  cache(args: readonly string[], opts?: ToolOptions): Promise<string>;
}

/**
 * The runner's apt configuration in <cache>/<profile.dir> (<cache>/apt for kernels), written and
 * `apt-get update`d when it is new, changed or older than APT_LISTS_MAX_AGE_MS. Call under the
 * cache lock (it writes the cache).
 */
export async function runnerApt(
  cache: string,
  tool: ToolOptions,
  progress: (m: string) => void,
  refresh = true,
  profile: AptProfile = KERNEL_APT,
): Promise<RunnerApt> {
  const dir = path.join(cache, profile.dir);
  const opts = aptOptions(dir, profile.foreign);
  const apt: RunnerApt = {
    dir,
    get: async (args, o) => (await runTool('apt-get', [...opts, ...args], { ...tool, ...o })).stdout,
    cache: async (args, o) => (await runTool('apt-cache', [...opts, ...args], { ...tool, ...o })).stdout,
  };
  if (!refresh) return apt;
  const list = renderSourcesList(machineArchive(), DEBIAN_KEYRING, profile);
  const listFile = path.join(dir, 'sources.list');
  const stamp = path.join(dir, 'updated');
  const age = aptListsAgeMs(cache, Date.now(), profile.dir);
  let fresh = false;
  try {
    fresh = fs.readFileSync(listFile, 'utf8') === list && age !== undefined && age < APT_LISTS_MAX_AGE_MS;
  } catch {
    fresh = false;
  }
  if (!fresh) {
    for (const d of ['lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.writeFileSync(listFile, list);
    progress(`updating the runner's package lists (${profile.suites.map((s) => s.suite).join(', ')})`);
    // --error-on=any: by default apt-get update exits 0 when it fetched nothing (no network),
    // and the lists would be stamped fresh although they are as old as before.
    await apt.get(['-q', '--error-on=any', 'update']);
    fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
  }
  return apt;
}
