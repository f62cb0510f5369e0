/**
 * ScanoutReleases: release points tied to the KMS commit that takes their buffer off screen
 * (`releaseOnDisplacement`), what every compositor does by hand for direct scanout: the buffer
 * shown now stays in use until the next commit on that CRTC is on screen, which its out-fence says.
 * @module
 */
import { SyncFile } from '../sync-file';
import { InvalidArgTypeError } from '../validate';
import { ReleaseHold, ReleasePoint } from './release-point';

/** The release points of what one CRTC shows, handed over commit by commit. */
export class ScanoutReleases implements Disposable {
  #shown: ReleaseHold[] = [];
  #next: ReleaseHold[] = [];

  /**
   * The commit being built puts the buffer of `rp` on screen: hold it until a later commit on this
   * CRTC displaces it ({@link committed} with that commit's out-fence).
   */
  releaseOnDisplacement(rp: ReleasePoint): this {
    if (!(rp instanceof ReleasePoint)) throw new InvalidArgTypeError('rp', 'an instance of ReleasePoint', rp);
    this.#next.push(rp.hold());
    return this;
  }

  /**
   * The commit went through and `outFence` is its CRTC out-fence (it signals once the new frame is
   * on screen): the buffers shown until now are released from it; the buffers of this commit
   * become the shown ones. The sync file stays yours.
   */
  committed(outFence: SyncFile): void {
    if (!(outFence instanceof SyncFile)) throw new InvalidArgTypeError('outFence', 'an instance of SyncFile', outFence);
    const old = this.#shown;
    this.#shown = this.#next;
    this.#next = [];
    for (const h of old) {
      if (!h.released) h.releasePoint.addFence(outFence);
      h.release();
    }
  }

  /** The commit was refused or never made: the buffers named for it were not shown. */
  abort(): void {
    for (const h of this.#next) h.release();
    this.#next = [];
  }

  /** The CRTC is off (or the output gone): nothing is scanned out any more; every hold ends. */
  close(): void {
    this.abort();
    for (const h of this.#shown) h.release();
    this.#shown = [];
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
