/**
 * `npx <bin>` of the package being worked on, in the guest. Pure but for the package.json reader.
 *
 * In a checkout, npx finds the bin in the local package and first installs that package into its
 * cache, which runs its `prepare` script (here `tsc`, writing dist/). The guest's tree is
 * read-only, so prepare fails and npx exits with the script's status (2) printing nothing at all.
 * Since npx would only run that bin, the runner runs it with `node` itself and says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What the runner runs instead, and the note it prints. */
export interface NpxRewrite {
  command: string[];
  note: string;
}

/** The fields of a package.json this module reads. */
export interface PackageJson {
  name?: unknown;
  bin?: unknown;
}

/** Reads `<dir>/package.json`, or undefined if there is none or it is not JSON. */
export function readPackageJson(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** The bins of a package.json: a string `bin` is named after the package (without its scope). */
function bins(pkg: PackageJson): Map<string, string> {
  if (typeof pkg.bin === 'string' && typeof pkg.name === 'string') return new Map([[pkg.name.replace(/^@[^/]+\//, ''), pkg.bin]]);
  const out = new Map<string, string>();
  if (pkg.bin !== null && typeof pkg.bin === 'object') {
    for (const [name, file] of Object.entries(pkg.bin as Record<string, unknown>)) if (typeof file === 'string') out.set(name, file);
  }
  return out;
}

/** The words of `command` after `npx` / `npm exec` and their -y/--yes/--: [bin, ...args], or undefined. */
function npxArgs(command: readonly string[]): string[] | undefined {
  let rest: string[];
  if (command[0] === 'npx') rest = command.slice(1);
  else if (command[0] === 'npm' && (command[1] === 'exec' || command[1] === 'x')) rest = command.slice(2);
  else return undefined;
  while (rest[0] === '-y' || rest[0] === '--yes') rest = rest.slice(1);
  if (rest[0] === '--') rest = rest.slice(1);
  return rest.length > 0 && !(rest[0] as string).startsWith('-') ? rest : undefined;
}

/**
 * When `command` is `npx <bin> …` (or `npm exec <bin> …`) and `<bin>` is a bin of the package at
 * npm's prefix for `cwd` (the nearest folder up with a package.json or node_modules), the command
 * that runs it directly: `node <package>/<bin file> …`. Undefined otherwise.
 */
export function rewriteLocalNpx(
  command: readonly string[],
  cwd: string,
  read: (dir: string) => PackageJson | undefined = readPackageJson,
  hasNodeModules: (dir: string) => boolean = (dir) => fs.existsSync(path.join(dir, 'node_modules')),
): NpxRewrite | undefined {
  const args = npxArgs(command);
  if (args === undefined) return undefined;
  let dir = path.resolve(cwd);
  let pkg = read(dir);
  while (pkg === undefined && !hasNodeModules(dir) && path.dirname(dir) !== dir) {
    dir = path.dirname(dir);
    pkg = read(dir);
  }
  const file = pkg !== undefined ? bins(pkg).get(args[0] as string) : undefined;
  if (file === undefined) return undefined;
  const rewritten = ['node', path.join(dir, file), ...args.slice(1)];
  return {
    command: rewritten,
    note: `running \`${rewritten.join(' ')}\` for \`${command.join(' ')}\`: in the guest, npx would first ` +
      `rebuild this package (its prepare script) in the read-only tree and fail without a word`,
  };
}
