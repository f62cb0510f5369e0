/**
 * Framebuffers (DRM_IOCTL_MODE_ADDFB2) over dumb buffers and imported dma-bufs, and the options
 * that create them.
 * @module
 */
import { ClosedError } from '../errors';
import { DmaBuf } from '../dma-buf';
import { kAdopt } from '../resource';
import { OptionKeys } from '../validate';
import type { KmsDevice } from './device';
import { kFd, kForget } from './internal';
import { native } from './native';

/** Options of {@link KmsDevice.createFramebuffer}. */
export interface KmsDumbOptions {
  width: number;
  height: number;
  /** fourcc (default XRGB8888); the dumb buffer has 32 bits per pixel. */
  format?: number;
}

/** Options of {@link KmsDevice.importFramebuffer}: the layout of a linear single-plane dma-buf. */
export interface KmsImportOptions {
  width: number;
  height: number;
  /** Bytes per row. */
  pitch: number;
  /** Byte offset of the first pixel (default 0). */
  offset?: number;
  /** fourcc (default XRGB8888). */
  format?: number;
}

export const DUMB_KEYS: OptionKeys<KmsDumbOptions> = { width: true, height: true, format: true };
export const IMPORT_FB_KEYS: OptionKeys<KmsImportOptions> = { width: true, height: true, pitch: true, offset: true, format: true };

/**
 * A framebuffer (DRM_IOCTL_MODE_ADDFB2) over a GEM buffer of the device: a dumb buffer it
 * created, or a dma-buf it imported. close() removes it (RMFB) and frees the GEM handle; a plane
 * that still shows it is turned off by the kernel.
 */
export class KmsFramebuffer implements Disposable {
  readonly device: KmsDevice;
  readonly width: number;
  readonly height: number;
  readonly format: number;
  /** Bytes per row. */
  readonly pitch: number;
  /** Size of the underlying buffer in bytes. */
  readonly size: number;
  #id: number;
  #handle: number;
  #dmaBuf: DmaBuf | null = null;

  /** @internal */
  constructor(device: KmsDevice, id: number, handle: number, width: number, height: number, format: number, pitch: number, size: number) {
    this.device = device;
    this.#id = id;
    this.#handle = handle;
    this.width = width;
    this.height = height;
    this.format = format;
    this.pitch = pitch;
    this.size = size;
  }

  /** The framebuffer id (FB_ID), or -1 once closed. */
  get id(): number {
    return this.#id;
  }

  get closed(): boolean {
    return this.#id < 0 || this.device.closed;
  }

  /** @internal The id for a request; ClosedError when this or the device is closed. */
  openId(call: string): number {
    if (this.#id < 0) throw new ClosedError('KmsFramebuffer', call);
    this.device[kFd](call);
    return this.#id;
  }

  /**
   * The buffer as a dma-buf (DRM_IOCTL_PRIME_HANDLE_TO_FD), owned by this framebuffer (closed with
   * it): map() it to draw with the CPU, exportSyncFile() to get its fences.
   */
  dmaBuf(): DmaBuf {
    const call = 'DRM_IOCTL_PRIME_HANDLE_TO_FD';
    this.openId(call);
    this.#dmaBuf ??= DmaBuf[kAdopt](native.primeHandleToFd(this.device[kFd](call), this.#handle));
    return this.#dmaBuf;
  }

  /** RMFB, then GEM_CLOSE. Idempotent; after the device closed it only forgets the ids. */
  close(): void {
    if (this.#id < 0) return;
    const id = this.#id;
    const handle = this.#handle;
    this.#id = -1;
    this.#handle = 0;
    this.#dmaBuf?.close();
    this.#dmaBuf = null;
    this.device[kForget](this);
    if (this.device.closed) return;
    const fd = this.device[kFd]('DRM_IOCTL_MODE_RMFB');
    try {
      native.kmsRmFb(fd, id);
    } finally {
      if (handle !== 0) native.gemClose(fd, handle);
    }
  }

  [Symbol.dispose](): void {
    try {
      this.close();
    } catch {
      // dispose never throws
    }
  }

  /** @internal */
  toString(): string {
    return `KmsFramebuffer(${this.#id}, ${this.width}x${this.height})`;
  }
}
