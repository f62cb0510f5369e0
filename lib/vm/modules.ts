/**
 * Kernel modules the guest loads, and the order to load them in.
 */
import * as path from 'node:path';
import { runTool, type ToolOptions } from './tools';

/**
 * Modules the guest needs; their dependencies are added. vgem and virtio-gpu give /dev/dri;
 * 9pnet_virtio and 9p give the host root. udmabuf and the system dma-heap are built in.
 */
export const GUEST_MODULES: readonly string[] = ['9pnet_virtio', '9p', 'vgem', 'virtio-gpu'];

/** The kernel treats '-' and '_' in module names alike; this is the canonical form. */
export function canonicalModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** What `modinfo -F depends` says about one module (names in any form, as modinfo prints them). */
export type DependsMap = ReadonlyMap<string, readonly string[]>;

/**
 * Load order for `roots` and everything they depend on: each module after all its dependencies;
 * otherwise the order of `roots`, then of each module's depends list (so it is deterministic).
 * Names are canonical in the result. Throws on an unknown module or a dependency cycle.
 */
export function moduleLoadOrder(roots: readonly string[], depends: DependsMap): string[] {
  const table = new Map<string, readonly string[]>();
  for (const [name, deps] of depends) table.set(canonicalModuleName(name), deps.map(canonicalModuleName));

  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: readonly string[]): void => {
    const seen = state.get(name);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const deps = table.get(name);
    if (deps === undefined) throw new Error(`unknown kernel module ${name}${chain.length ? ` (needed by ${chain.at(-1)})` : ''}`);
    state.set(name, 'visiting');
    for (const dep of deps) visit(dep, [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const root of roots) visit(canonicalModuleName(root), []);
  return order;
}

/** The fields of `modinfo <module>` output ("key:   value" lines) that the runner needs. */
export function parseModinfo(text: string): { filename: string; depends: string[] } {
  const field = (key: string): string => new RegExp(`^${key}:[ \t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const depends = field('depends').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return { filename: field('filename'), depends };
}

/** A module to put in the initramfs. */
export interface ModuleFile {
  /** Canonical module name. */
  name: string;
  /** Absolute path of the compressed module (`.ko.xz`) in the extracted kernel tree. */
  file: string;
}

/**
 * Resolves `roots` to module files in load order, using the tree's modules.dep (which
 * `depmod -b root kver` must have written).
 */
export async function resolveModules(root: string, kver: string, roots: readonly string[], opts: ToolOptions): Promise<ModuleFile[]> {
  const depends = new Map<string, string[]>();
  const files = new Map<string, string>();
  const pending = roots.map(canonicalModuleName);
  while (pending.length > 0) {
    const name = pending.pop() as string;
    if (depends.has(name)) continue;
    const info = parseModinfo((await runTool('modinfo', ['-b', root, '-k', kver, name], opts)).stdout);
    if (info.filename === '') throw new Error(`modinfo found no file for kernel module ${name}`);
    // kmod prefixes the path with the -b directory; accept a tree-relative path as well.
    files.set(name, info.filename.startsWith(`${root}/`) ? info.filename : path.join(root, info.filename));
    depends.set(name, info.depends);
    pending.push(...info.depends.map(canonicalModuleName));
  }
  return moduleLoadOrder(roots, depends).map((name) => ({ name, file: files.get(name) as string }));
}
