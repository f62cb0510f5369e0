// Pure logic of the runner's vkms build (lib/vm/vkms.ts) and its --no-vkms option: no apt, no make.
// The build itself is exercised by every VM run (test/vm/kms.test.mts needs the module it loads).
import { expect } from 'chai';
import { parseVmArgs, UsageError, VM_USAGE } from '../../dist/vm/args.js';
import {
  rehomeMakefile,
  rehomeSymlink,
  vkmsCachePath,
  vkmsMakeArgs,
  vkmsPackages,
  VKMS_DEFAULT_DEPENDS,
} from '../../dist/vm/vkms.js';

describe('vm runner: vkms', () => {
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

  describe('vkmsPackages()', () => {
    it('names the source, headers, common headers and kbuild packages of one kernel release', () => {
      expect(vkmsPackages('6.12.117+deb12-amd64')).to.deep.equal({
        source: 'linux-source-6.12',
        headers: 'linux-headers-6.12.117+deb12-amd64',
        common: 'linux-headers-6.12.117+deb12-common',
        kbuild: 'linux-kbuild-6.12.117+deb12',
        tarball: 'linux-source-6.12.tar.xz',
        tarTop: 'linux-source-6.12',
      });
    });
    it('keeps a multi-part flavour in the headers name only', () => {
      const p = vkmsPackages('6.12.9+deb13-cloud-amd64');
      expect(p.headers).to.equal('linux-headers-6.12.9+deb13-cloud-amd64');
      expect(p.common).to.equal('linux-headers-6.12.9+deb13-common');
    });
    it('refuses a release it cannot split', () => {
      for (const bad of ['6.12.117', 'linux-6.12', '', '6.12.117+deb12-']) expect(() => vkmsPackages(bad), bad).to.throw(Error);
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

  describe('vkmsMakeArgs() and vkmsCachePath()', () => {
    it('builds the module out of tree with vkms on and module BTF off', () => {
      const args = vkmsMakeArgs('/h', '/m', 4);
      expect(args.slice(0, 3)).to.deep.equal(['-C', '/h', 'M=/m']);
      expect(args).to.include.members(['-j4', 'CONFIG_DRM_VKMS=m', 'CONFIG_DEBUG_INFO_BTF_MODULES=', 'modules']);
      expect(vkmsMakeArgs('/h', '/m', 0)).to.include('-j1');
    });
    it('caches one module per kernel release', () => {
      expect(vkmsCachePath('/c', '6.12.117+deb12-amd64')).to.equal('/c/vkms/6.12.117+deb12-amd64/vkms.ko');
      expect(VKMS_DEFAULT_DEPENDS).to.deep.equal(['drm_kms_helper', 'drm', 'drm_shmem_helper']);
    });
  });
});
