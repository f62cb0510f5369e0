/**
 * The Device methods that make timelines: `device.createTimeline()`, `device.importTimeline()`
 * (loaded by lib/timeline.ts).
 * @module
 */
import { Device, kDeviceFd } from './device';
import { ImportOptions, importHandle, native, requireCap, toImportOptions } from './syncobj-core';
import { Timeline } from './timeline';
import { CreateTimelineOptions } from './timeline-options';
import { kAdopt } from './resource';
import { OptionKeys, toOptions } from './validate';
import { toLabel } from './trace/labels';

declare module './device' {
  interface Device {
    /**
     * A new timeline syncobj (DRM_IOCTL_SYNCOBJ_CREATE) at point 0. `options.label` names it in
     * errors, diagnostics_channel events, `util.inspect` and inspect().
     * @throws UnsupportedError (EOPNOTSUPP) on a device without DRM_CAP_SYNCOBJ_TIMELINE; ClosedError.
     */
    createTimeline(options?: CreateTimelineOptions): Timeline;
    /**
     * Imports a timeline fd from exportFd() (possibly another process's) as a new handle on this
     * device (DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE). The fd stays yours: close it when done.
     *
     * Waits on it that give neither `timeoutMs` nor `deadline` are bounded by
     * `options.defaultTimeoutMs` (default {@link IMPORTED_DEFAULT_TIMEOUT_MS}, 10 s; `Infinity`
     * opts out), so that a peer that never signals cannot hang you.
     * @throws ExplicitSyncError EINVAL when fd is not a syncobj fd; UnsupportedError; ClosedError;
     *   TypeError/RangeError for bad options.
     */
    importTimeline(fd: number, options?: ImportOptions): Timeline;
  }
}

const CREATE_KEYS: OptionKeys<CreateTimelineOptions> = { label: true };

Device.prototype.createTimeline = function createTimeline(this: Device, options?: CreateTimelineOptions): Timeline {
  const o = toOptions(options, CREATE_KEYS);
  const label = o.label === undefined ? undefined : toLabel(o.label, 'options.label');
  requireCap(this, 'timeline', 'DRM_IOCTL_SYNCOBJ_CREATE');
  const t = Timeline[kAdopt](this, native.syncobjCreate(this[kDeviceFd]('DRM_IOCTL_SYNCOBJ_CREATE'), 0));
  return label === undefined ? t : t.setLabel(label);
};

Device.prototype.importTimeline = function importTimeline(this: Device, fd: number, options?: ImportOptions): Timeline {
  const { bound, label } = toImportOptions(options);
  const t = Timeline[kAdopt](this, importHandle(this, fd, 'timeline'), bound);
  return label === undefined ? t : t.setLabel(label);
};
