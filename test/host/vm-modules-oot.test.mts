// Pure logic of the runner's out-of-tree modules (lib/vm/modules-oot.ts: vkms, sw_sync) and its
// --no-vkms option: no apt, no make. The builds themselves are exercised by every VM run
// (test/vm/kms.test.mts needs vkms, test/vm/sw-sync.test.mts needs sw_sync).
import { expect } from 'chai';
import { parseVmArgs, UsageError, VM_USAGE } from '../../dist/vm/args.js';
import {
  buildPackages,
  compilerMismatch,
  kernelGccMajor,
  moduleMakeArgs,
  ootCachePath,
  ootRecipe,
  patchSwSync,
  rehomeMakefile,
  rehomeSymlink,
} from '../../dist/vm/modules-oot.js';

describe('vm runner: out-of-tree modules', () => {
  describe('parseVmArgs() --no-vkms', () => {
    it('loads vkms by default; --no-vkms turns it off', () => {
      expect(parseVmArgs(['--', 'true']).vkms).to.equal(true);
      expect(parseVmArgs(['--no-vkms', '--', 'true']).vkms).to.equal(false);
      expect(VM_USAGE).to.contain('--no-vkms');
    });
    it('takes no value', () => {
      expect(() => parseVmArgs(['--no-vkms=1', '--', 'true'])).to.throw(UsageError);
    });
  });

  describe('buildPackages()', () => {
    it('names the source, headers, common headers and kbuild packages of one kernel release', () => {
      expect(buildPackages('6.12.117+deb12-amd64')).to.deep.equal({
        source: 'linux-source-6.12',
        headers: 'linux-headers-6.12.117+deb12-amd64',
        common: 'linux-headers-6.12.117+deb12-common',
        kbuild: 'linux-kbuild-6.12.117+deb12',
        tarball: 'linux-source-6.12.tar.xz',
        tarTop: 'linux-source-6.12',
      });
    });
    it('keeps a multi-part flavour in the headers name only', () => {
      const p = buildPackages('6.12.9+deb13-cloud-amd64');
      expect(p.headers).to.equal('linux-headers-6.12.9+deb13-cloud-amd64');
      expect(p.common).to.equal('linux-headers-6.12.9+deb13-common');
    });
    it("names 6.1's kbuild package after the series", () => {
      expect(buildPackages('6.1.0-57-amd64')).to.deep.equal({
        source: 'linux-source-6.1',
        headers: 'linux-headers-6.1.0-57-amd64',
        common: 'linux-headers-6.1.0-57-common',
        kbuild: 'linux-kbuild-6.1',
        tarball: 'linux-source-6.1.tar.xz',
        tarTop: 'linux-source-6.1',
      });
      expect(buildPackages('7.3.4+deb13-amd64').kbuild).to.equal('linux-kbuild-7.3.4+deb13');
    });
    it('refuses a release it cannot split', () => {
      for (const bad of ['6.12.117', 'linux-6.12', '', '6.12.117+deb12-']) expect(() => buildPackages(bad), bad).to.throw(Error);
    });
  });

  describe('rehomeSymlink() and rehomeMakefile()', () => {
    it('points absolute links into the extraction root and leaves relative ones', () => {
      expect(rehomeSymlink('/usr/lib/linux-kbuild-6.12/scripts', '/c/x')).to.equal('/c/x/usr/lib/linux-kbuild-6.12/scripts');
      expect(rehomeSymlink('../../lib/linux-kbuild-6.12/scripts', '/c/x')).to.equal('../../lib/linux-kbuild-6.12/scripts');
    });
    it("rewrites the flavour Makefile's absolute include and nothing else", () => {
      const text = 'include /usr/src/linux-headers-6.12.117+deb12-common/Makefile\n-include /etc/x.mk\nfoo = /usr/src/keep\n';
      expect(rehomeMakefile(text, '/c/x')).to.equal(
        'include /c/x/usr/src/linux-headers-6.12.117+deb12-common/Makefile\n-include /c/x/etc/x.mk\nfoo = /usr/src/keep\n',
      );
      expect(rehomeMakefile('include relative.mk\n', '/c/x')).to.equal('include relative.mk\n');
    });
  });

  describe('moduleMakeArgs() and ootCachePath()', () => {
    it('builds the module out of tree with its config on and module BTF off', () => {
      const args = moduleMakeArgs('/h', '/m', 4, ootRecipe('vkms').makeVars);
      expect(args.slice(0, 3)).to.deep.equal(['-C', '/h', 'M=/m']);
      expect(args).to.include.members(['-j4', 'CONFIG_DRM_VKMS=m', 'CONFIG_DEBUG_INFO_BTF_MODULES=', 'modules']);
      expect(moduleMakeArgs('/h', '/m', 0)).to.include('-j1');
    });
    it('caches one module per kernel release', () => {
      expect(ootCachePath('/c', 'vkms', '6.12.117+deb12-amd64')).to.equal('/c/vkms/6.12.117+deb12-amd64/vkms.ko');
      expect(ootCachePath('/c', 'sw_sync', '6.1.0-57-amd64')).to.equal('/c/sw_sync/6.1.0-57-amd64/sw_sync.ko');
      expect(ootRecipe('vkms').defaultDepends).to.deep.equal(['drm_kms_helper', 'drm', 'drm_shmem_helper']);
    });
  });

  describe('patchSwSync()', () => {
    // The shape of drivers/dma-buf/{sw_sync.c,sync_debug.c} in 6.1 (7.x has no sync_file_get_name call).
    const swSync = '#include <linux/sync_file.h>\n\n#include "sync_debug.h"\n\n#define CREATE_TRACE_POINTS\n#include "sync_trace.h"\n\nstatic void f(void) { trace_sync_timeline(obj); }\n';
    const syncDebug = '#include <linux/debugfs.h>\n#include "sync_debug.h"\n\nstatic void p(void) {\n\tchar buf[128];\n\tseq_printf(s, "%s", sync_file_get_name(sync_file, buf, sizeof(buf)),\n}\nlate_initcall(sync_debugfs_init);\n';
    it('drops the trace points, licenses sync_debug.c and stops calling the unexported sync_file_get_name()', () => {
      const out = patchSwSync({ swSync, syncDebug });
      expect(out.swSync).not.to.contain('CREATE_TRACE_POINTS');
      expect(out.swSync).not.to.contain('sync_trace.h');
      expect(out.swSync).to.contain('#define trace_sync_timeline(obj) do { } while (0)');
      expect(out.syncDebug).to.contain('#include "sync_debug.h"\n#include <linux/module.h>');
      expect(out.syncDebug).to.contain('MODULE_LICENSE("GPL");');
      expect(out.syncDebug).not.to.contain('sync_file_get_name');
      expect(out.syncDebug).to.contain('(snprintf(buf, sizeof(buf), "sync_file"), buf)');
    });
    it('accepts a source without the sync_file_get_name() call (newer kernels)', () => {
      expect(patchSwSync({ swSync, syncDebug: '#include "sync_debug.h"\n' }).syncDebug).to.contain('MODULE_LICENSE');
    });
    it('fails, saying what, when the source no longer has what it patches', () => {
      expect(() => patchSwSync({ swSync: 'int x;\n', syncDebug })).to.throw(/sw_sync\.c/);
      expect(() => patchSwSync({ swSync, syncDebug: 'int y;\n' })).to.throw(/sync_debug\.c/);
    });
  });

  describe('compiler checks', () => {
    it('reads the gcc major version a kernel was built with', () => {
      expect(kernelGccMajor('CONFIG_CC_VERSION_TEXT="gcc-14"\nCONFIG_GCC_VERSION=140200\n')).to.equal(14);
      expect(kernelGccMajor('CONFIG_GCC_VERSION=120200\n')).to.equal(12);
      expect(kernelGccMajor('CONFIG_CLANG_VERSION=180000\nCONFIG_GCC_VERSION=0\n')).to.equal(undefined);
    });
    it('refuses a host gcc older than the kernel\'s, and only then', () => {
      expect(compilerMismatch(14, 12)).to.match(/gcc 14.*gcc 12/);
      expect(compilerMismatch(12, 12)).to.equal(undefined);
      expect(compilerMismatch(12, 14)).to.equal(undefined);
      expect(compilerMismatch(undefined, 12)).to.equal(undefined);
    });
  });
});
