/**
 * The errors of wp_linux_drm_syncobj_v1 (wayland-protocols, staging/linux-drm-syncobj), with the
 * protocol's names and codes, as values a compositor posts on the client's object.
 * @module
 */

/** wp_linux_drm_syncobj_surface_v1.error, plus the manager's errors. */
export const SYNCOBJ_PROTOCOL_ERRORS = {
  /** wp_linux_drm_syncobj_manager_v1: the surface already has a synchronization object. */
  surface_exists: { interface: 'wp_linux_drm_syncobj_manager_v1', code: 0 },
  /** wp_linux_drm_syncobj_manager_v1: the timeline fd could not be imported. */
  invalid_timeline: { interface: 'wp_linux_drm_syncobj_manager_v1', code: 1 },
  /** set_acquire_point / set_release_point after the wl_surface was destroyed. */
  no_surface: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 1 },
  /** Points set, and the buffer committed does not support explicit synchronization (wl_shm). */
  unsupported_buffer: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 2 },
  /** Points set, and no buffer attached in this commit (or a null one). */
  no_buffer: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 3 },
  /** A buffer attached (or a release point set), and no acquire point. */
  no_acquire_point: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 4 },
  /** A buffer attached (or an acquire point set), and no release point. */
  no_release_point: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 5 },
  /** Acquire and release points on the same timeline, and acquire ≥ release. */
  conflicting_points: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 6 },
  /**
   * Not a protocol error of its own: a release point at or below one the client's timeline has
   * already reached or that is still owed (it would corrupt the timeline). Posted on the wire as
   * conflicting_points (6), the protocol's closest error.
   */
  unordered_point: { interface: 'wp_linux_drm_syncobj_surface_v1', code: 6 },
} as const;

/** The name of a {@link SYNCOBJ_PROTOCOL_ERRORS} entry. */
export type SyncobjProtocolErrorName = keyof typeof SYNCOBJ_PROTOCOL_ERRORS;

/**
 * A wp_linux_drm_syncobj_v1 protocol error, returned (not thrown) by {@link SurfaceSync}'s
 * requests: post it on the client's object (`wl_resource_post_error(resource, err.code, err.message)`)
 * and disconnect the client, as the protocol says.
 */
export class SyncobjProtocolError extends Error {
  /** The protocol's name for it: 'no_buffer', 'conflicting_points', … */
  readonly error: SyncobjProtocolErrorName;
  /** The protocol's value for it (the `code` of wl_resource_post_error). */
  readonly code: number;
  /** The interface of the object to post it on. */
  readonly interface: string;

  constructor(error: SyncobjProtocolErrorName, message: string) {
    super(`${error}: ${message}`);
    this.name = 'SyncobjProtocolError';
    this.error = error;
    this.code = SYNCOBJ_PROTOCOL_ERRORS[error].code;
    this.interface = SYNCOBJ_PROTOCOL_ERRORS[error].interface;
  }
}
