/**
 * Kernel modules built out of tree for the guest, where Debian's kernel does not build them:
 * vkms (a virtual KMS display) and sw_sync (CPU-controlled sync_file timelines). Each is data — the
 * kernel source files it is made of and the patches that make them a module — built by one
 * function against the exact kernel the runner boots, from Debian's own source, headers and
 * kbuild packages (of the kernel's very version).
 *
 * Layout: <cache>/<module>/<kver>/<module>.ko (uncompressed, ready for insmod). Like every cache
 * entry it appears only complete (see cache.ts). The build itself is oot-build.ts: on the host
 * (gcc and make) when the host's gcc is at least the kernel's, else in a Debian build root of the
 * kernel's release (buildroot.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseKernelConfig } from './modules';

/** One module built out of tree. */
export interface OotRecipe {
  /** The module's name, as the kernel and insmod know it. */
  name: string;
  /** Its Kconfig symbol (without CONFIG_): a kernel that sets it needs no out-of-tree build. */
  config: string;
  /** Directory of its sources in the kernel tree. */
  dir: string;
  /** Files of `dir` to extract; '*' for all of them. */
  files: readonly string[] | '*';
  /**
   * Turns the extracted sources into a buildable module directory (renames, patches, a Kbuild
   * file). Patches match what the source says, never line numbers; one that finds nothing to
   * patch throws, so a build against a kernel whose source moved on fails saying why.
   */
  prepare(dir: string): void;
  /** Extra `make` variables. */
  makeVars: readonly string[];
  /** What the module depends on when modinfo cannot tell. */
  defaultDepends: readonly string[];
}

/** Replaces `pattern` in `text`, throwing when the source does not contain it. */
export function patchSource(text: string, pattern: RegExp, replacement: string, what: string): string {
  if (!pattern.test(text)) throw new Error(`cannot patch ${what}: the source no longer matches ${pattern}`);
  return text.replace(pattern, replacement);
}

/**
 * sw_sync.c + sync_debug.c as one module: sync_debug.c gets a licence (it was built in), the trace
 * points go (their header defines them for the built-in tracing only), and the debugfs printer
 * stops calling sync_file_get_name(), which the kernel does not export (older kernels only).
 */
export function patchSwSync(files: { swSync: string; syncDebug: string }): { swSync: string; syncDebug: string } {
  let swSync = files.swSync.replace(/^#define CREATE_TRACE_POINTS[ \t]*\n/m, '');
  swSync = patchSource(swSync, /^#include "sync_trace\.h"[ \t]*$/m, '#define trace_sync_timeline(obj) do { } while (0)', 'sw_sync.c (trace points)');
  let syncDebug = patchSource(files.syncDebug, /^(#include "sync_debug\.h"[ \t]*)$/m, '$1\n#include <linux/module.h>', 'sync_debug.c (includes)');
  syncDebug = syncDebug.replace(
    /sync_file_get_name\(\s*\w+\s*,\s*(\w+)\s*,\s*sizeof\(\s*\1\s*\)\s*\)/g,
    '(snprintf($1, sizeof($1), "sync_file"), $1)',
  );
  syncDebug += '\nMODULE_LICENSE("GPL");\nMODULE_DESCRIPTION("sw_sync: CPU-controlled sync_file timelines (built out of tree by explicit-sync)");\n';
  return { swSync, syncDebug };
}

/**
 * dma-heap.c + heaps/system_heap.c as one module, for kernels without CONFIG_DMABUF_HEAPS (Debian's
 * arm64 6.12): both are built-in-only code, so one file includes the two, dma-heap's initcall
 * becomes part of the module's init (the heap class before the system heap), and the module gets
 * a licence and imports the DMA_BUF symbol namespace (MODULE_INFO spells it the same on every
 * kernel, a bare token before 6.13 and a string after).
 */
export function patchDmaHeap(files: { dmaHeap: string; systemHeap: string }): { dmaHeap: string; systemHeap: string } {
  const dmaHeap = patchSource(files.dmaHeap, /^subsys_initcall\(dma_heap_init\);[ \t]*$/m, '', 'dma-heap.c (initcall)');
  const systemHeap = patchSource(
    files.systemHeap,
    /^module_init\(system_heap_create\);[ \t]*$/m,
    [
      'static int __init explicit_sync_dma_heap_init(void)',
      '{',
      '\tint ret = dma_heap_init();',
      '',
      '\treturn ret ? ret : system_heap_create();',
      '}',
      'module_init(explicit_sync_dma_heap_init);',
      'MODULE_LICENSE("GPL");',
      'MODULE_DESCRIPTION("dma-heap with the system heap (built out of tree by explicit-sync)");',
      'MODULE_INFO(import_ns, "DMA_BUF");',
    ].join('\n'),
    'heaps/system_heap.c (init)',
  );
  return { dmaHeap, systemHeap };
}

/** The recipes the runner knows, in load order. */
export const OOT_RECIPES: readonly OotRecipe[] = [
  {
    name: 'vkms',
    config: 'DRM_VKMS',
    dir: 'drivers/gpu/drm/vkms',
    files: '*',
    prepare: () => undefined,
    makeVars: ['CONFIG_DRM_VKMS=m'],
    defaultDepends: ['drm_kms_helper', 'drm', 'drm_shmem_helper'],
  },
  {
    name: 'sw_sync',
    config: 'SW_SYNC',
    dir: 'drivers/dma-buf',
    files: ['sw_sync.c', 'sync_debug.c', 'sync_debug.h'],
    prepare: (dir) => {
      const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
      const patched = patchSwSync({ swSync: read('sw_sync.c'), syncDebug: read('sync_debug.c') });
      fs.rmSync(path.join(dir, 'sw_sync.c'));
      fs.writeFileSync(path.join(dir, 'sw_sync_main.c'), patched.swSync);
      fs.writeFileSync(path.join(dir, 'sync_debug.c'), patched.syncDebug);
      fs.writeFileSync(path.join(dir, 'Kbuild'), 'obj-m := sw_sync.o\nsw_sync-y := sw_sync_main.o sync_debug.o\n');
    },
    makeVars: [],
    defaultDepends: [],
  },
  {
    // The driver's name as GUEST_DRIVERS has it: /init reports an out-of-tree module by its name.
    name: 'dma_heap',
    config: 'DMABUF_HEAPS',
    dir: 'drivers/dma-buf',
    files: ['dma-heap.c', 'heaps/system_heap.c'],
    prepare: (dir) => {
      const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
      const patched = patchDmaHeap({ dmaHeap: read('dma-heap.c'), systemHeap: read('heaps/system_heap.c') });
      fs.writeFileSync(path.join(dir, 'dma-heap.c'), patched.dmaHeap);
      fs.writeFileSync(path.join(dir, 'heaps/system_heap.c'), patched.systemHeap);
      fs.writeFileSync(path.join(dir, 'dma_heap_main.c'), '#include "dma-heap.c"\n#include "heaps/system_heap.c"\n');
      fs.writeFileSync(path.join(dir, 'Kbuild'), 'obj-m := dma_heap.o\ndma_heap-y := dma_heap_main.o\n');
    },
    makeVars: [],
    defaultDepends: [],
  },
];

/** The recipe named `name`. */
export function ootRecipe(name: string): OotRecipe {
  const r = OOT_RECIPES.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no out-of-tree recipe for ${name}`);
  return r;
}

/** The Debian packages that build modules for kernel release `kver` (e.g. "6.12.117+deb12-amd64"). */
export interface BuildPackages {
  /** linux-source-<series>: the whole tree as a tarball; only the modules' files are extracted. */
  source: string;
  /** linux-headers-<kver>: the flavour's build tree (Makefile, .config, Module.symvers). */
  headers: string;
  /** linux-headers-<kbase>-common: the headers and Makefiles shared by every flavour. */
  common: string;
  /** linux-kbuild-…: the host programs of scripts/ (modpost, fixdep, …). */
  kbuild: string;
  /** The source tarball's name inside the source package, under usr/src/. */
  tarball: string;
  /** Directory name at the top of the tarball. */
  tarTop: string;
}

/**
 * The packages for a kernel release; throws on a release string it does not understand. Debian 12's
 * 6.1 ("6.1.0-57-amd64") names kbuild after the series; later ones ("6.12.118+deb12-amd64") after
 * the base release.
 */
export function buildPackages(kver: string): BuildPackages {
  const plus = /^((\d+)\.(\d+)\.\d+\+deb\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/.exec(kver);
  const abi = /^((\d+)\.(\d+)\.\d+-\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$/.exec(kver);
  const m = plus ?? abi;
  if (m === null) throw new Error(`cannot derive the module build packages from kernel release ${JSON.stringify(kver)}`);
  const base = m[1] as string;
  const series = `${m[2]}.${m[3]}`;
  return {
    source: `linux-source-${series}`,
    headers: `linux-headers-${kver}`,
    common: `linux-headers-${base}-common`,
    kbuild: plus ? `linux-kbuild-${base}` : `linux-kbuild-${series}`,
    tarball: `linux-source-${series}.tar.xz`,
    tarTop: `linux-source-${series}`,
  };
}

/**
 * Where an absolute symlink found in the extracted packages should point instead: the same path
 * inside `root` (the packages expect to be installed at /). Relative targets stay as they are.
 */
export function rehomeSymlink(target: string, root: string): string {
  return path.isAbsolute(target) ? path.join(root, target) : target;
}

/**
 * The flavour's Makefile with its absolute `include`s (Debian's reads
 * `include /usr/src/linux-headers-<kbase>-common/Makefile`) pointed inside `root`.
 */
export function rehomeMakefile(text: string, root: string): string {
  return text.replace(/^(\s*-?include\s+)(\/\S+)/gm, (_all, head: string, file: string) => `${head}${path.join(root, file)}`);
}

/** The `make` argv that builds the module in `moduleDir` against the headers tree `headersDir`. */
export function moduleMakeArgs(headersDir: string, moduleDir: string, jobs: number, vars: readonly string[] = []): string[] {
  return [
    '-C', headersDir, `M=${moduleDir}`, `-j${Math.max(1, jobs)}`,
    ...vars,
    // Module BTF needs pahole, which a build host rarely has; the guest has no use for it.
    'CONFIG_DEBUG_INFO_BTF_MODULES=',
    'modules',
  ];
}

/** The cached module `name` for `kver`, if it was built before. */
export function ootCachePath(cache: string, name: string, kver: string): string {
  return path.join(cache, name, kver, `${name}.ko`);
}

/** The major gcc version a kernel was built with, from its config (CONFIG_GCC_VERSION=140200 → 14). */
export function kernelGccMajor(configText: string): number | undefined {
  const v = parseKernelConfig(configText).get('GCC_VERSION');
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 0 ? Math.floor(Number(v) / 10000) : undefined;
}

/**
 * Why the host cannot build modules for a kernel built with gcc `kernelMajor`, or undefined if it
 * can: kbuild passes flags of the kernel's compiler (gcc 14's -fmin-function-alignment, …) that an
 * older one rejects.
 */
export function compilerMismatch(kernelMajor: number | undefined, hostMajor: number | undefined): string | undefined {
  if (kernelMajor === undefined || hostMajor === undefined || hostMajor >= kernelMajor) return undefined;
  return `the kernel was built with gcc ${kernelMajor} and this host has gcc ${hostMajor}; its out-of-tree modules need a gcc-${kernelMajor} build root`;
}

