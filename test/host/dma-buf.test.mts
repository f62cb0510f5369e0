// DmaBuf, VgemDevice, Udmabuf and DmaHeap on the host: validation, wrong fd types, the behaviour
// without devices, error mapping and mapping safety. The host has no dma-buf source, so a regular
// file wrapped with the internal DmaBuf[kAdopt]() stands in where a mappable fd is enough (and, since
// it answers ENOTTY to every dma-buf ioctl, for a kernel before 6.0). Real buffers: test/vm.
import { expect } from 'chai';
import { kAdopt } from '../../dist/resource.js';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  constants as fsc,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ClosedError,
  DmaBuf,
  DmaHeap,
  ExplicitSyncError,
  InvalidArgTypeError,
  InvalidArgValueError,
  NoDeviceError,
  OutOfRangeError,
  SyncFile,
  Udmabuf,
  UnsupportedError,
  VgemDevice,
} from 'explicit-sync';
import { native } from '../../dist/native.js';
import { isOpen, shouldThrow } from '../helpers.mjs';

let dir: string;
let n = 0;

/** A regular file of `size` bytes, open read-write, wrapped as a DmaBuf stand-in. */
function fileBuf(size = 8192): { buf: DmaBuf; path: string } {
  const path = join(dir, `file${n++}`);
  writeFileSync(path, Buffer.alloc(size));
  return { buf: DmaBuf[kAdopt](openSync(path, 'r+')), path };
}

function openFifo(): number {
  const path = join(dir, `fifo${n++}`);
  execFileSync('mkfifo', [path]);
  return openSync(path, fsc.O_RDWR | fsc.O_NONBLOCK);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'es-dma-buf-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('DmaBuf.fromFd()', () => {
  it('rejects non-fd arguments with Node-style errors', () => {
    expect(shouldThrow(() => DmaBuf.fromFd(null as unknown as number), InvalidArgTypeError).code).to.equal(
      'ERR_INVALID_ARG_TYPE',
    );
    expect(shouldThrow(() => DmaBuf.fromFd(2 ** 31), OutOfRangeError).code).to.equal('ERR_OUT_OF_RANGE');
  });

  it('says a regular file, a pipe and a character device are not dma-bufs (ENOTTY), leaving them open', () => {
    const fds = [openSync('/proc/self/status', 'r'), openFifo(), openSync('/dev/null', 'r')];
    try {
      for (const fd of fds) {
        for (const dup of [false, true]) {
          const e = shouldThrow(() => DmaBuf.fromFd(fd, { dup }), ExplicitSyncError);
          expect(e.code).to.equal('ENOTTY');
          expect(e.message).to.contain('not a dma-buf');
          expect(e).to.not.be.instanceOf(UnsupportedError);
          expect(isOpen(fd)).to.equal(true);
        }
      }
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  });

  it('EBADF for an fd that is not open', () => {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    expect(shouldThrow(() => DmaBuf.fromFd(fd), ExplicitSyncError).code).to.equal('EBADF');
  });
});

describe('DmaBuf#exportSyncFile() / #importSyncFile() (ENOTTY stand-in)', () => {
  it('validates access and the sync file', () => {
    const { buf } = fileBuf();
    try {
      expect(shouldThrow(() => buf.exportSyncFile('rw' as 'read'), InvalidArgValueError).code).to.equal(
        'ERR_INVALID_ARG_VALUE',
      );
      shouldThrow(() => buf.importSyncFile(3 as unknown as SyncFile), InvalidArgTypeError);
      shouldThrow(() => buf.beginCpuAccess('x' as 'read'), InvalidArgValueError);
    } finally {
      buf.close();
    }
  });

  // Leaves the process-wide "no sync-file ioctls" answer cached: harmless on a host without dma-bufs.
  it('turns ENOTTY into UnsupportedError naming the feature and Linux 6.0', () => {
    const { buf } = fileBuf();
    const fd = openSync('/dev/null', 'r');
    const sf = SyncFile[kAdopt](fd);
    try {
      expect(buf.supportsSyncFile()).to.equal(false);
      const e = shouldThrow(() => buf.exportSyncFile('read'), UnsupportedError);
      expect(e.code).to.equal('ENOTTY');
      expect(e.since).to.equal('6.0');
      expect(e.ioctl).to.equal('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
      expect(e.message).to.contain('6.0');
      const i = shouldThrow(() => buf.importSyncFile(sf, 'write'), UnsupportedError);
      expect(i.ioctl).to.equal('DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
      expect(i.feature).to.contain('import');
    } finally {
      sf.close();
      buf.close();
    }
  });

  it('beginCpuAccess on a non-dma-buf reports the ioctl', () => {
    const { buf } = fileBuf();
    try {
      const e = shouldThrow(() => buf.beginCpuAccess(), ExplicitSyncError);
      expect(e.code).to.equal('ENOTTY');
      expect(e.ioctl).to.equal('DMA_BUF_IOCTL_SYNC');
    } finally {
      buf.close();
    }
  });

  it('importSyncFile of a closed SyncFile throws ClosedError', () => {
    const { buf } = fileBuf();
    const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    sf.close();
    try {
      shouldThrow(() => buf.importSyncFile(sf), ClosedError);
    } finally {
      buf.close();
    }
  });
});

describe('DmaBuf#map()', () => {
  it('maps the whole buffer, shared: writes reach the file', () => {
    const { buf, path } = fileBuf(8192);
    try {
      expect(buf.size).to.equal(8192);
      const m = buf.map();
      expect(m.length).to.equal(8192);
      expect(buf.map()).to.equal(m);
      m.write('hello', 4096);
      expect(readFileSync(path).subarray(4096, 4101).toString()).to.equal('hello');
    } finally {
      buf.close();
    }
  });

  it('after close() the Buffer reads zeros and takes writes harmlessly; the file keeps its bytes', () => {
    const { buf, path } = fileBuf(8192);
    const m = buf.map();
    m.fill(0xab);
    buf.close();
    expect(m.length).to.equal(8192);
    expect(m.every((b) => b === 0)).to.equal(true);
    m.fill(1); // scratch memory: no crash, nothing reaches the file
    expect(readFileSync(path).every((b) => b === 0xab)).to.equal(true);
  });

  it('the native unmap refuses a Buffer it did not map', () => {
    const nat = native as unknown as { dmaBufUnmap(b: Buffer): void };
    const e = shouldThrow(() => nat.dmaBufUnmap(Buffer.alloc(4096)), ExplicitSyncError);
    expect(e.code).to.equal('EINVAL');
  });
});

describe('DmaBuf#close()', () => {
  it('is idempotent, sets fd to -1; every method then throws ClosedError', () => {
    const { buf } = fileBuf();
    const sf = SyncFile[kAdopt](openSync('/dev/null', 'r'));
    buf.close();
    buf.close();
    expect(buf.fd).to.equal(-1);
    try {
      for (const fn of [
        () => buf.exportSyncFile('read'),
        () => buf.importSyncFile(sf),
        () => buf.map(),
        () => buf.beginCpuAccess(),
        () => buf.endCpuAccess(),
        () => buf.dup(),
        () => buf.supportsSyncFile(),
      ]) {
        expect(shouldThrow(fn, ClosedError).code).to.equal('EBADF');
      }
    } finally {
      sf.close();
    }
  });

  it('using closes, and dup() is independent', () => {
    let kept: DmaBuf;
    let copy: DmaBuf;
    {
      using buf = fileBuf().buf;
      kept = buf;
      copy = buf.dup();
    }
    expect(kept.closed).to.equal(true);
    expect(copy.closed).to.equal(false);
    expect(copy.size).to.equal(8192);
    copy.close();
  });
});

describe('VgemDevice.open() (host)', () => {
  it('throws NoDeviceError when there is no /dev/dri', function () {
    if (existsSync('/dev/dri')) this.skip();
    const e = shouldThrow(() => VgemDevice.open(), NoDeviceError);
    expect(e.code).to.equal('ENODEV');
    expect(e.message).to.contain('explicit-sync vm');
  });

  it('ENODEV for a node that is not vgem, ENOENT for a missing path, TypeError for a non-string', () => {
    expect(shouldThrow(() => VgemDevice.open('/dev/null'), ExplicitSyncError).code).to.equal('ENODEV');
    const e = shouldThrow(() => VgemDevice.open('/dev/dri/card99-missing'), ExplicitSyncError);
    expect(e.code).to.equal('ENOENT');
    expect(e.path).to.equal('/dev/dri/card99-missing');
    shouldThrow(() => VgemDevice.open(5 as unknown as string), InvalidArgTypeError);
  });
});

describe('Udmabuf (host)', () => {
  it('validates the size', () => {
    shouldThrow(() => Udmabuf.create(0), OutOfRangeError);
    shouldThrow(() => Udmabuf.create(1.5), OutOfRangeError);
    shouldThrow(() => Udmabuf.create('4096' as unknown as number), InvalidArgTypeError);
  });

  it('ENOENT naming /dev/udmabuf where the kernel has none', function () {
    if (existsSync('/dev/udmabuf')) this.skip();
    const e = shouldThrow(() => Udmabuf.create(4096), ExplicitSyncError);
    expect(e.code).to.equal('ENOENT');
    expect(e.path).to.equal('/dev/udmabuf');
  });
});

describe('DmaHeap (host)', () => {
  it('list() is empty and open() throws ENOENT where there are no heaps', function () {
    if (existsSync('/dev/dma_heap')) this.skip();
    expect(DmaHeap.list()).to.deep.equal([]);
    const e = shouldThrow(() => DmaHeap.open('system'), ExplicitSyncError);
    expect(e.code).to.equal('ENOENT');
    expect(e.path).to.equal('/dev/dma_heap/system');
  });

  it('open() refuses names that are paths', () => {
    for (const name of ['', '../null', '.', 'a/b']) shouldThrow(() => DmaHeap.open(name), InvalidArgValueError);
    shouldThrow(() => DmaHeap.open(1 as unknown as string), InvalidArgTypeError);
  });
});
