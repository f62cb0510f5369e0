/**
 * Kernel modules the guest loads, and the order to load them in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runTool, type ToolOptions } from './tools';

/** Modules without which the guest cannot boot its command: 9pnet_virtio and 9p give the host root. */
export const BOOT_MODULES: readonly string[] = ['9pnet_virtio', '9p'];

/**
 * Modules the guest needs only where the kernel builds them as modules rather than in: the virtio
 * PCI transport (built in on 6.12, a module on 6.1), without which no virtio device appears.
 */
export const BOOT_MODULES_IF_MODULAR: readonly string[] = ['virtio_pci'];

/** A driver the tests use, as the guest's EXPLICIT_SYNC_VM_DRIVERS names it. */
export interface GuestDriver {
  /** Name in EXPLICIT_SYNC_VM_DRIVERS. */
  driver: string;
  /** The module that provides it, in the kernel's module tree (or built out of tree). */
  module: string;
  /** Its Kconfig symbol, without CONFIG_. */
  config: string;
}

/**
 * The drivers the guest offers when its kernel has them. What each kernel has is read from its
 * own packages (the config, modules.dep via modinfo, modules.builtin), never assumed.
 */
export const GUEST_DRIVERS: readonly GuestDriver[] = [
  { driver: 'vgem', module: 'vgem', config: 'DRM_VGEM' },
  { driver: 'virtio_gpu', module: 'virtio-gpu', config: 'DRM_VIRTIO_GPU' },
  { driver: 'vkms', module: 'vkms', config: 'DRM_VKMS' },
  { driver: 'sw_sync', module: 'sw_sync', config: 'SW_SYNC' },
  { driver: 'udmabuf', module: 'udmabuf', config: 'UDMABUF' },
  { driver: 'dma_heap', module: 'system_heap', config: 'DMABUF_HEAPS_SYSTEM' },
];

/** How a kernel provides a driver. */
export type DriverSource = 'builtin' | 'module' | 'absent';

/** `CONFIG_X=y|m` lines of a kernel .config (`# CONFIG_X is not set` and others are left out). */
export function parseKernelConfig(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const m of text.matchAll(/^CONFIG_([A-Za-z0-9_]+)=(.*)$/gm)) map.set(m[1] as string, (m[2] as string).trim());
  return map;
}

/**
 * How the kernel provides `driver`: from its config when there is one (a bool option such as
 * UDMABUF is never listed in modules.builtin), else from what modinfo found and modules.builtin.
 */
export function driverSource(
  driver: GuestDriver,
  config: ReadonlyMap<string, string> | undefined,
  hasModule: boolean,
  builtinList: string,
): DriverSource {
  const value = config?.get(driver.config);
  if (value === 'y') return 'builtin';
  if (value === 'm' && hasModule) return 'module';
  if (config !== undefined && value === undefined) return 'absent';
  if (hasModule) return 'module';
  const file = canonicalModuleName(driver.module);
  const builtin = builtinList.split('\n').some((line) => canonicalModuleName(path.basename(line.trim())) === `${file}.ko`);
  return builtin ? 'builtin' : 'absent';
}

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
  /** Absolute path of the module (`.ko.xz`, or a plain `.ko` on 6.1) in the extracted kernel tree. */
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

/** Whether modinfo finds module `name` in the extracted kernel tree. */
export async function hasModule(root: string, kver: string, name: string, opts: ToolOptions): Promise<boolean> {
  try {
    // modinfo names a built-in module's file "(builtin)".
    const { filename } = parseModinfo((await runTool('modinfo', ['-b', root, '-k', kver, name], opts)).stdout);
    return filename !== '' && filename !== '(builtin)';
  } catch {
    return false;
  }
}

/** How the kernel in `root` provides each of GUEST_DRIVERS, read from its config, modules and modules.builtin. */
export async function kernelDrivers(
  root: string,
  kver: string,
  configFile: string | undefined,
  opts: ToolOptions,
): Promise<Map<string, DriverSource>> {
  const read = (file: string | undefined): string | undefined => {
    try {
      return file === undefined ? undefined : fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  const configText = read(configFile);
  const config = configText === undefined ? undefined : parseKernelConfig(configText);
  const builtin = read(path.join(root, 'lib/modules', kver, 'modules.builtin')) ?? '';
  const out = new Map<string, DriverSource>();
  for (const d of GUEST_DRIVERS) out.set(d.driver, driverSource(d, config, await hasModule(root, kver, d.module, opts), builtin));
  return out;
}
