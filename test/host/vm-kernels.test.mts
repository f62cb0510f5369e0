// Pure logic of the runner's kernel matrix: --kernel parsing, the private apt configuration,
// package-name parsing, and which drivers a kernel's own packages say it has. No apt, no VM.
import { expect } from 'chai';
import { parseVmArgs, UsageError } from '../../dist/vm/args.js';
import { aptOptions, debianArchiveFrom, parseAptSources, renderSourcesList } from '../../dist/vm/apt.js';
import { renderInit } from '../../dist/vm/initramfs.js';
import {
  compareReleases,
  kernelPackageSet,
  newestFromMetapackage,
  parseKernelChoice,
  parseKernelPackages,
  parseShow,
} from '../../dist/vm/kernel.js';
import { seriesOf, renderKernelList } from '../../dist/vm/list-kernels.js';
import { driverSource, GUEST_DRIVERS, parseKernelConfig } from '../../dist/vm/modules.js';
import { selectGuestEnv } from '../../dist/vm/guest-env.js';

const ARCHIVE = 'http://archive.example/debian';

describe('vm runner: kernels', () => {
  describe('--kernel', () => {
    it('defaults to 6.12; takes 6.1, 6.12, newest or an exact release', () => {
      expect(parseVmArgs(['--', 'true']).kernel).to.deep.equal({ series: '6.12' });
      expect(parseVmArgs(['--kernel', '6.1', '--', 'true']).kernel).to.deep.equal({ series: '6.1' });
      expect(parseVmArgs(['--kernel=newest', '--', 'true']).kernel).to.deep.equal({ series: 'newest' });
      expect(parseVmArgs(['--kernel', '7.3.4+deb13-amd64', '--', 'true']).kernel).to.deep.equal({ release: '7.3.4+deb13-amd64' });
      expect(parseVmArgs(['--kernel', '6.1.0-57-amd64', '--', 'true']).kernel).to.deep.equal({ release: '6.1.0-57-amd64' });
    });
    it('reads $EXPLICIT_SYNC_VM_KERNEL; the flag wins', () => {
      expect(parseVmArgs(['--', 'true'], { EXPLICIT_SYNC_VM_KERNEL: '6.1' }).kernel).to.deep.equal({ series: '6.1' });
      expect(parseVmArgs(['--kernel', 'newest', '--', 'true'], { EXPLICIT_SYNC_VM_KERNEL: '6.1' }).kernel).to.deep.equal({ series: 'newest' });
    });
    it('refuses anything else with a UsageError', () => {
      for (const bad of ['5.10', '6', 'latest', '6.12.118', '6.12.118+deb12-arm64', '']) {
        expect(() => parseVmArgs(['--kernel', bad, '--', 'true']), bad).to.throw(UsageError);
      }
      expect(() => parseVmArgs(['--', 'true'], { EXPLICIT_SYNC_VM_KERNEL: 'bogus' })).to.throw(UsageError, /EXPLICIT_SYNC_VM_KERNEL/);
    });
    it('--list-kernels needs no command', () => {
      expect(parseVmArgs(['--list-kernels']).listKernels).to.equal(true);
      expect(() => parseVmArgs(['--list-kernels=1'])).to.throw(UsageError);
    });
  });

  describe('releases', () => {
    it('parseKernelChoice() orders nothing but names releases exactly', () => {
      expect(parseKernelChoice('6.12')).to.deep.equal({ series: '6.12' });
      expect(() => parseKernelChoice('6.12.118+deb12-cloud-amd64')).to.throw(Error);
    });
    it('compareReleases() compares numerically, ABI numbers included', () => {
      expect(compareReleases('6.1.0-57-amd64', '6.1.0-9-amd64')).to.be.greaterThan(0);
      expect(compareReleases('6.12.9+deb12-amd64', '6.12.118+deb12-amd64')).to.be.lessThan(0);
      expect(compareReleases('7.3.4+deb13-amd64', '6.12.118+deb12-amd64')).to.be.greaterThan(0);
    });
    it('parseKernelPackages() keeps the series asked for, generic flavour, newest first', () => {
      const out = ['linux-image-6.1.0-9-amd64-unsigned - x', 'linux-image-6.1.0-57-amd64-unsigned - x',
        'linux-image-6.1.0-57-cloud-amd64-unsigned - x', 'linux-image-6.12.118+deb12-amd64-unsigned - x'].join('\n');
      expect(parseKernelPackages(out, '6.1').map((p) => p.kver)).to.deep.equal(['6.1.0-57-amd64', '6.1.0-9-amd64']);
      expect(parseKernelPackages(out, '6.12').map((p) => p.kver)).to.deep.equal(['6.12.118+deb12-amd64']);
    });
  });

  describe('newest: linux-image-amd64 of trixie-backports', () => {
    const show = [
      'Package: linux-image-amd64\nVersion: 7.3.4-1~bpo13+1\nDepends: linux-base-amd64 (= 7.3.4-1~bpo13+1), linux-image-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-amd64 (= 7.3.4-1~bpo13+1)\n',
      'Package: linux-image-amd64\nVersion: 6.1.192-3\nDepends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)\n',
    ].join('\n');
    it('picks the newest release the metapackage depends on, with its version', () => {
      expect(newestFromMetapackage(parseShow(show))).to.deep.equal({ name: 'linux-image-7.3.4+deb13-amd64', kver: '7.3.4+deb13-amd64', version: '7.3.4-1~bpo13+1' });
    });
    it('fetches the 7.x packaging: the image package and its binary, modules and base packages', () => {
      const image = parseShow('Package: linux-image-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\n')[0];
      expect(kernelPackageSet('linux-image-7.3.4+deb13-amd64', image?.depends ?? [], '7.3.4+deb13-amd64')).to.deep.equal([
        'linux-image-7.3.4+deb13-amd64', 'linux-base-7.3.4+deb13-amd64', 'linux-binary-7.3.4+deb13-amd64', 'linux-modules-7.3.4+deb13-amd64',
      ]);
      expect(kernelPackageSet('linux-image-6.1.0-57-amd64-unsigned', ['kmod', 'linux-base'], '6.1.0-57-amd64')).to.deep.equal(['linux-image-6.1.0-57-amd64-unsigned']);
    });
  });

  describe("the runner's apt configuration", () => {
    it('reads the archive host from one-line and deb822 sources', () => {
      const deb822 = `Types: deb\n# a snapshot comment inside the paragraph\nURIs: ${ARCHIVE}\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://archive.example/debian-security\nSuites: bookworm-security\nComponents: main\n`;
      expect(debianArchiveFrom(parseAptSources(deb822))).to.deep.equal({ main: ARCHIVE, security: 'http://archive.example/debian-security' });
      const oneLine = `deb https://other.example/apt cloud-sdk main\ndeb [arch=amd64] ${ARCHIVE}/ bookworm main\n`;
      expect(debianArchiveFrom(parseAptSources(oneLine))).to.deep.equal({ main: ARCHIVE, security: `${ARCHIVE}-security` });
    });
    it('refuses sources without a Debian archive', () => {
      expect(() => debianArchiveFrom(parseAptSources('deb https://other.example/apt cloud-sdk main\n'))).to.throw(/Debian archive/);
    });
    it('renders bookworm, bookworm-security and trixie-backports, signed by the archive keyring', () => {
      const list = renderSourcesList({ main: ARCHIVE, security: `${ARCHIVE}-security` });
      const debs = list.split('\n').filter((l) => l.startsWith('deb '));
      expect(debs).to.deep.equal([
        `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${ARCHIVE} bookworm main`,
        `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${ARCHIVE}-security bookworm-security main`,
        `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${ARCHIVE} trixie-backports main`,
      ]);
    });
    it("points apt at its own sources, lists and cache, and at none of the machine's source parts", () => {
      expect(aptOptions('/c/apt')).to.deep.equal([
        '-o', 'Dir::Etc::sourcelist=/c/apt/sources.list', '-o', 'Dir::Etc::sourceparts=-',
        '-o', 'Dir::State::Lists=/c/apt/lists', '-o', 'Dir::Cache=/c/apt/cache',
      ]);
    });
  });

  describe('which drivers a kernel has', () => {
    const config61 = parseKernelConfig('CONFIG_DRM_VGEM=m\nCONFIG_DRM_VIRTIO_GPU=m\n# CONFIG_DRM_VKMS is not set\n# CONFIG_SW_SYNC is not set\n# CONFIG_UDMABUF is not set\n');
    const config73 = parseKernelConfig('CONFIG_DRM_VGEM=m\nCONFIG_DRM_VIRTIO_GPU=m\nCONFIG_UDMABUF=y\nCONFIG_DMABUF_HEAPS=y\nCONFIG_DMABUF_HEAPS_SYSTEM=y\n');
    const sources = (config: Map<string, string> | undefined, modules: string[], builtin = ''): Record<string, string> =>
      Object.fromEntries(GUEST_DRIVERS.map((d) => [d.driver, driverSource(d, config, modules.includes(d.module), builtin)]));
    it('6.1: vgem and virtio_gpu modules; no udmabuf, no dma-heap, no vkms, no sw_sync', () => {
      expect(sources(config61, ['vgem', 'virtio-gpu'])).to.deep.equal({
        vgem: 'module', virtio_gpu: 'module', vkms: 'absent', sw_sync: 'absent', udmabuf: 'absent', dma_heap: 'absent',
      });
    });
    it('7.3: udmabuf and the system heap built in (bool options, never in modules.builtin)', () => {
      expect(sources(config73, ['vgem', 'virtio-gpu'])).to.include({ udmabuf: 'builtin', dma_heap: 'builtin', vkms: 'absent' });
    });
    it('without a config: modinfo, then modules.builtin', () => {
      expect(sources(undefined, ['vgem'], 'kernel/drivers/dma-buf/udmabuf.ko\n')).to.include({ vgem: 'module', udmabuf: 'builtin', virtio_gpu: 'absent' });
    });
    it('a config that says m but has no module file is absent', () => {
      expect(sources(config61, [])).to.include({ vgem: 'absent' });
    });
  });

  describe('the guest /init and environment', () => {
    it('loads in-tree modules fatally, out-of-tree ones optionally, and exports what loaded', () => {
      const init = renderInit({ modules: ['drm', 'vgem'], optional: [{ module: 'sw_sync', driver: 'sw_sync' }], drivers: ['vgem', 'udmabuf'] });
      expect(init).to.contain('for m in drm vgem; do');
      expect(init).to.contain('drivers=vgem,udmabuf');
      expect(init).to.contain('for md in sw_sync:sw_sync; do');
      expect(init).to.contain('env -i EXPLICIT_SYNC_VM_DRIVERS=$drivers /bin/chroot');
    });
    it("never forwards the host's EXPLICIT_SYNC_VM_DRIVERS (the guest sets it)", () => {
      expect(selectGuestEnv({ EXPLICIT_SYNC_VM_DRIVERS: 'x', EXPLICIT_SYNC_VM_KERNEL: '6.1' })).not.to.have.property('EXPLICIT_SYNC_VM_DRIVERS');
    });
  });

  describe('--list-kernels', () => {
    it('names the series a cached release answers to', () => {
      expect(seriesOf('6.1.0-57-amd64', undefined)).to.deep.equal(['6.1']);
      expect(seriesOf('7.3.4+deb13-amd64', '7.3.4+deb13-amd64')).to.deep.equal(['newest']);
    });
    it('lists the cache and what each series would fetch', () => {
      const text = renderKernelList(
        [{ kver: '6.12.118+deb12-amd64', series: ['6.12'], modules: ['vkms', 'sw_sync'] }],
        new Map<string, Error | { kver: string; version: string; packages: string[] }>([
          ['6.1', { kver: '6.1.0-57-amd64', version: '6.1.192-3', packages: ['linux-image-6.1.0-57-amd64-unsigned'] }],
          ['newest', new Error('offline')],
        ]),
      );
      expect(text).to.contain('6.12.118+deb12-amd64 [6.12]; built out of tree: vkms, sw_sync');
      expect(text).to.contain('6.1     6.1.0-57-amd64 (6.1.192-3: linux-image-6.1.0-57-amd64-unsigned)');
      expect(text).to.contain('newest  unavailable: offline');
    });
  });
});
