// The arm64 guest's pure parts (lib/vm/arch.ts, arm64-root.ts and what they change elsewhere):
// --arch parsing, the QEMU command line, the kernel names, the apt profile, the /init root
// assembly and the cross-build choices. The boot itself is `npm run test:arm64`.
import { expect } from 'chai';
import { ARM64_APT, KERNEL_APT, aptOptions, renderSourcesList } from '../../dist/vm/apt.js';
import { parseArch } from '../../dist/vm/arch.js';
import { guestNodeSpec, versionMatches } from '../../dist/vm/arm64-root.js';
import { parseVmArgs, UsageError } from '../../dist/vm/args.js';
import { renderInit } from '../../dist/vm/initramfs.js';
import {
  aptSearchPattern,
  parseKernelChoice,
  parseKernelPackages,
  releaseArch,
  releaseInSeries,
} from '../../dist/vm/kernel.js';
import { patchDmaHeap } from '../../dist/vm/modules-oot.js';
import { crossMakeVars } from '../../dist/vm/oot-build.js';
import { kernelCmdline, qemuArgs } from '../../dist/vm/qemu.js';

describe('vm runner: arm64 guests', () => {
  describe('--arch', () => {
    it('defaults to x64, takes arm64 (and aarch64), from the flag or $EXPLICIT_SYNC_VM_ARCH, the flag winning', () => {
      expect(parseVmArgs(['--', 'true']).arch).to.equal('x64');
      expect(parseVmArgs(['--arch', 'arm64', '--', 'true']).arch).to.equal('arm64');
      expect(parseVmArgs(['--arch=aarch64', 'true']).arch).to.equal('arm64');
      expect(parseVmArgs(['true'], { EXPLICIT_SYNC_VM_ARCH: 'arm64' }).arch).to.equal('arm64');
      expect(parseVmArgs(['--arch', 'x86_64', 'true'], { EXPLICIT_SYNC_VM_ARCH: 'arm64' }).arch).to.equal('x64');
    });
    it('refuses other architectures, naming the source', () => {
      expect(() => parseVmArgs(['--arch', 'riscv64', 'true'])).to.throw(UsageError, /x64 or arm64 for --arch but received "riscv64"/);
      expect(() => parseVmArgs(['true'], { EXPLICIT_SYNC_VM_ARCH: 'mips' })).to.throw(UsageError, /\$EXPLICIT_SYNC_VM_ARCH/);
      expect(() => parseVmArgs(['--arch'])).to.throw(UsageError, /Missing value for --arch/);
      expect(() => parseArch('')).to.throw(Error);
    });
    it("an exact --kernel release must be the guest architecture's flavour", () => {
      expect(parseVmArgs(['--arch', 'arm64', '--kernel', '6.12.118+deb12-arm64', 'true']).kernel).to.deep.equal({ release: '6.12.118+deb12-arm64' });
      expect(() => parseVmArgs(['--arch', 'arm64', '--kernel', '6.12.118+deb12-amd64', 'true'])).to.throw(UsageError, /kernel release of the arm64 guest/);
      expect(() => parseVmArgs(['--kernel', '6.12.118+deb12-arm64', 'true'])).to.throw(UsageError, /kernel release of the x64 guest/);
    });
  });

  describe('the QEMU command line', () => {
    const base = { kernel: '/k', initrd: '/i', memoryMiB: 2048, cpus: 2, append: 'x' };
    it('arm64: the virt machine under TCG with -cpu max, the same 9p share and virtio-gpu', () => {
      const args = qemuArgs({ ...base, accel: 'tcg', arch: 'arm64' }).join(' ');
      expect(args).to.contain('-M virt -accel tcg,thread=multi -cpu max');
      expect(args).to.contain('mount_tag=hostroot');
      expect(args).to.contain('-device virtio-gpu-pci');
      expect(args).to.contain('-serial stdio');
    });
    it('x64 has no -M and keeps its accelerators', () => {
      expect(qemuArgs({ ...base, accel: 'tcg' })).to.not.include('-M');
      expect(qemuArgs({ ...base, accel: 'kvm', arch: 'x64' }).join(' ')).to.contain('-accel kvm -cpu host');
    });
    it('the console is the PL011 (ttyAMA0) on arm64, ttyS0 on x64', () => {
      expect(kernelCmdline('/r', 'ab', 10, 'arm64')).to.match(/^console=ttyAMA0 /);
      expect(kernelCmdline('/r', 'ab', 10)).to.match(/^console=ttyS0 /);
    });
  });

  describe('kernel names', () => {
    it('releases of both flavours parse, each knows its architecture and series', () => {
      expect(parseKernelChoice('6.12.118+deb12-arm64')).to.deep.equal({ release: '6.12.118+deb12-arm64' });
      expect(releaseArch('6.12.118+deb12-arm64')).to.equal('arm64');
      expect(releaseArch('6.1.0-57-amd64')).to.equal('amd64');
      expect(releaseInSeries('6.12.118+deb12-arm64', '6.12', 'arm64')).to.equal(true);
      expect(releaseInSeries('6.12.118+deb12-arm64', '6.12')).to.equal(false);
      expect(releaseInSeries('6.12.118+deb12-amd64', '6.12', 'arm64')).to.equal(false);
    });
    it('apt search finds the generic arm64 images only (not cloud or rt), newest first', () => {
      expect(aptSearchPattern('6.12', 'arm64')).to.equal('^linux-image-6\\.12\\.[0-9]+\\+deb[0-9]+-arm64-unsigned$');
      const out = [
        'linux-image-6.12.107+deb12-arm64-unsigned - Linux 6.12 for 64-bit ARMv8 machines',
        'linux-image-6.12.118+deb12-cloud-arm64-unsigned - Linux 6.12 for arm64 cloud',
        'linux-image-6.12.118+deb12-rt-arm64-unsigned - Linux 6.12 for 64-bit ARMv8 machines, PREEMPT_RT',
        'linux-image-6.12.118+deb12-arm64-unsigned - Linux 6.12 for 64-bit ARMv8 machines',
        'linux-image-6.12.118+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs',
      ].join('\n');
      expect(parseKernelPackages(out, '6.12', 'arm64').map((p) => p.kver)).to.deep.equal(['6.12.118+deb12-arm64', '6.12.107+deb12-arm64']);
      expect(parseKernelPackages(out, '6.12').map((p) => p.kver)).to.deep.equal(['6.12.118+deb12-amd64']);
    });
  });

  describe('apt', () => {
    it('the arm64 profile has its own folder and adds the arm64 lists to the native ones', () => {
      expect(ARM64_APT.dir).to.not.equal(KERNEL_APT.dir);
      const opts = aptOptions('/c/apt-arm64', ARM64_APT.foreign).join(' ');
      expect(opts).to.contain('-o APT::Architectures::=amd64 -o APT::Architectures::=arm64');
      expect(aptOptions('/c/apt').join(' ')).to.not.contain('Architectures');
      expect(renderSourcesList({ main: 'http://m/debian', security: 'http://m/debian-security' }, '/k.gpg', ARM64_APT)).to.contain('bookworm-security main');
    });
  });

  describe('the guest root', () => {
    const spec = { modules: ['9p'], optional: [], drivers: ['vgem'] };
    it('/init mounts the host at /mnt/host and builds the root from the guest root plus the host\'s other top-level folders', () => {
      const init = renderInit({ ...spec, guestRoot: '/c/guest-root/arm64-node20.1.0-v1' });
      expect(init).to.contain('R=/mnt/root H=/mnt/host');
      expect(init).to.contain('hostroot $H');
      expect(init).to.contain('for d in "$H/c/guest-root/arm64-node20.1.0-v1"/*');
      expect(init).to.match(/case \$n in proc\|sys\|dev\|tmp\|run\|lost\+found\) continue/);
      expect(init).to.contain('mount --bind $H/tmp /hosttmp');
    });
    it('without a guest root, the host tree is the root, as before', () => {
      const init = renderInit(spec);
      expect(init).to.contain('R=/mnt/root H=/mnt/root');
      expect(init).to.not.contain('/mnt/host');
    });
    it("the guest's Node is the host's major unless $EXPLICIT_SYNC_VM_NODE says otherwise", () => {
      expect(guestNodeSpec({}, '20.20.0')).to.equal('20');
      expect(guestNodeSpec({ EXPLICIT_SYNC_VM_NODE: 'v24.3' }, '20.20.0')).to.equal('24.3');
      expect(() => guestNodeSpec({ EXPLICIT_SYNC_VM_NODE: 'lts' })).to.throw(/EXPLICIT_SYNC_VM_NODE/);
      expect(versionMatches('24.3.1', '24')).to.equal(true);
      expect(versionMatches('240.1.0', '24')).to.equal(false);
    });
  });

  describe('out-of-tree modules', () => {
    it('an arm64 kernel is cross-built (ARCH=arm64, CROSS_COMPILE); an amd64 one is not', () => {
      expect(crossMakeVars('6.12.118+deb12-arm64')).to.deep.equal(['ARCH=arm64', 'CROSS_COMPILE=aarch64-linux-gnu-']);
      expect(crossMakeVars('6.12.118+deb12-amd64')).to.equal(undefined);
    });
    it('dma-heap + system heap become one module whose init runs both, in order', () => {
      const out = patchDmaHeap({
        dmaHeap: 'static int dma_heap_init(void)\n{\n}\nsubsys_initcall(dma_heap_init);\n',
        systemHeap: 'static int system_heap_create(void)\n{\n}\nmodule_init(system_heap_create);\n',
      });
      expect(out.dmaHeap).to.not.contain('subsys_initcall');
      expect(out.systemHeap).to.contain('int ret = dma_heap_init();');
      expect(out.systemHeap).to.contain('return ret ? ret : system_heap_create();');
      expect(out.systemHeap).to.contain('MODULE_LICENSE("GPL")');
      expect(out.systemHeap).to.contain('MODULE_INFO(import_ns, "DMA_BUF")');
      expect(() => patchDmaHeap({ dmaHeap: 'changed', systemHeap: '' })).to.throw(/cannot patch dma-heap.c/);
    });
  });
});
