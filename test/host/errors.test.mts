import { expect } from 'chai';
import { constants } from 'node:os';
import {
  AbortError,
  ClosedError,
  ExplicitSyncError,
  FenceError,
  TimeoutError,
  UnsupportedError,
  errnoCode,
  U64_MAX,
} from 'explicit-sync';
import { errorFromNative, fdKind } from '../../dist/errors.js';
import { toU64, toTimeoutMs, toFd, OutOfRangeError, InvalidArgTypeError } from '../../dist/validate.js';

describe('errnoCode()', () => {
  it('maps ETIME (62), which util.getSystemErrorName misses on Node 20', () => {
    expect(errnoCode(62)).to.equal('ETIME');
    expect(errnoCode(-62)).to.equal('ETIME');
  });
  it('prefers EOPNOTSUPP and EAGAIN when reversing', () => {
    expect(errnoCode(constants.errno.EOPNOTSUPP)).to.equal('EOPNOTSUPP');
    expect(errnoCode(constants.errno.EAGAIN)).to.equal('EAGAIN');
  });
});

describe('ExplicitSyncError', () => {
  it('has the shape of a Node fs error for an ioctl', () => {
    const e = errorFromNative(constants.errno.EINVAL, 'DRM_IOCTL_SYNCOBJ_WAIT');
    expect(e).to.be.instanceOf(ExplicitSyncError);
    expect(e.code).to.equal('EINVAL');
    expect(e.errno).to.equal(-constants.errno.EINVAL);
    expect(e.syscall).to.equal('ioctl');
    expect(e.ioctl).to.equal('DRM_IOCTL_SYNCOBJ_WAIT');
    expect(e.message).to.match(/^EINVAL: .*DRM_IOCTL_SYNCOBJ_WAIT$/);
  });
  it('keeps plain system call names and their path', () => {
    const e = errorFromNative(constants.errno.ENOENT, 'open', '/dev/dri/card9');
    expect(e.syscall).to.equal('open');
    expect(e.ioctl).to.equal(undefined);
    expect(e.path).to.equal('/dev/dri/card9');
  });
  it('turns ETIME into a TimeoutError', () => {
    const e = errorFromNative(62, 'DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT');
    expect(e).to.be.instanceOf(TimeoutError).and.instanceOf(ExplicitSyncError);
    expect(e.code).to.equal('ETIME');
  });
  it('ClosedError is EBADF', () => {
    const e = new ClosedError('SyncFile');
    expect(e).to.be.instanceOf(ExplicitSyncError);
    expect(e.code).to.equal('EBADF');
    expect(e.errno).to.equal(-constants.errno.EBADF);
  });
  it('UnsupportedError names the feature and the kernel that added it', () => {
    const e = new UnsupportedError(constants.errno.ENOTTY, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE', 'dma-buf sync file export', '6.0');
    expect(e.code).to.equal('ENOTTY');
    expect(e.feature).to.equal('dma-buf sync file export');
    expect(e.since).to.equal('6.0');
    expect(e.message).to.contain('Linux ≥ 6.0');
  });
  it('FenceError carries the fence\'s own error code, from SYNC_IOC_FILE_INFO; not a TimeoutError', () => {
    for (const code of ['EIO', 'ECANCELED', 'ETIMEDOUT', 'ENOENT', 'ETIME']) {
      const e = new FenceError(-constants.errno[code as keyof typeof constants.errno]);
      expect(e).to.be.instanceOf(ExplicitSyncError);
      expect(e).to.not.be.instanceOf(TimeoutError);
      expect(e.name).to.equal('FenceError');
      expect(e.code).to.equal(code);
      expect(e.errno).to.equal(-constants.errno[code as keyof typeof constants.errno]);
      expect(e.syscall).to.equal('ioctl');
      expect(e.ioctl).to.equal('SYNC_IOC_FILE_INFO');
    }
  });
  it('AbortError has Node\'s shape', () => {
    const e = new AbortError(undefined, { cause: 'why' });
    expect(e.name).to.equal('AbortError');
    expect(e.code).to.equal('ABORT_ERR');
    expect(e.cause).to.equal('why');
  });
});

describe('validation', () => {
  it('toU64 accepts bigint and safe numbers, returns bigint', () => {
    expect(toU64(0, 'p')).to.equal(0n);
    expect(toU64(U64_MAX, 'p')).to.equal(U64_MAX);
    expect(toU64(Number.MAX_SAFE_INTEGER, 'p')).to.equal(BigInt(Number.MAX_SAFE_INTEGER));
  });
  for (const bad of [-1, -1n, 1.5, NaN, Infinity, 2 ** 53, U64_MAX + 1n]) {
    it(`toU64 rejects ${String(bad)} with ERR_OUT_OF_RANGE`, () => {
      expect(() => toU64(bad, 'p')).to.throw(OutOfRangeError).with.property('code', 'ERR_OUT_OF_RANGE');
    });
  }
  for (const bad of ['1', null, undefined, {}, true]) {
    it(`toU64 rejects ${String(bad)} with ERR_INVALID_ARG_TYPE`, () => {
      expect(() => toU64(bad, 'p')).to.throw(InvalidArgTypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
    });
  }
  it('toTimeoutMs: Infinity/undefined mean none; negative and NaN are rejected', () => {
    expect(toTimeoutMs(undefined)).to.equal(undefined);
    expect(toTimeoutMs(Infinity)).to.equal(undefined);
    expect(toTimeoutMs(0)).to.equal(0);
    expect(() => toTimeoutMs(-1)).to.throw(RangeError);
    expect(() => toTimeoutMs(NaN)).to.throw(RangeError);
    expect(() => toTimeoutMs('5')).to.throw(TypeError);
  });
  it('toFd rejects non-integers and negatives', () => {
    expect(() => toFd(-1)).to.throw(RangeError);
    expect(() => toFd(1.5)).to.throw(RangeError);
    expect(() => toFd('3')).to.throw(TypeError);
  });
});

describe('fdKind() (what a wrong fd is, in error messages)', () => {
  it('names the fds a GPU peer sends, keeping the link', () => {
    expect(fdKind('anon_inode:sync_file')).to.equal('a sync_file (anon_inode:sync_file)');
    expect(fdKind('anon_inode:syncobj')).to.equal('a DRM syncobj (anon_inode:syncobj)');
    expect(fdKind('/dmabuf:')).to.equal('a dma-buf (/dmabuf:)');
    expect(fdKind('/memfd:lp_dma_buf (deleted)')).to.equal('a memfd named "lp_dma_buf" (/memfd:lp_dma_buf (deleted))');
    expect(fdKind('anon_inode:[eventfd]')).to.equal('an anonymous inode of kind [eventfd] (anon_inode:[eventfd])');
    expect(fdKind('/dev/null')).to.equal('/dev/null');
  });
});
