/**
 * The doctor's KMS section: for each card node, whether its driver does atomic modesetting and
 * which of its objects take the explicit-sync properties an atomic client uses (IN_FENCE_FD on
 * planes, OUT_FENCE_PTR on CRTCs) — what kmscube -A and compositors rely on.
 * @module
 */
import type * as Library from './index';

type Lib = typeof Library;

/** One card node's KMS fence capabilities. */
export interface DoctorKms {
  path: string;
  /** The driver, when the node could be opened. */
  driver?: string;
  /** Whether DRM_CLIENT_CAP_ATOMIC was accepted. */
  atomic: boolean;
  crtcs: number;
  planes: number;
  /** Planes with an IN_FENCE_FD property (a sync_file the commit waits for before scanning out). */
  inFenceFdPlanes: number;
  /** CRTCs with an OUT_FENCE_PTR property (a sync_file that signals when the commit is on screen). */
  outFencePtrCrtcs: number;
  /** Why the node could not be probed, or why it has no atomic KMS. */
  detail?: string;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Probes every card node in `names` (e.g. ['card0', 'card2']); closes what it opens. */
export function probeKms(lib: Lib, names: readonly string[]): DoctorKms[] {
  const found: DoctorKms[] = [];
  for (const name of names.filter((n) => /^card\d+$/.test(n))) {
    const path = `${lib.DRI_DIR}/${name}`;
    let device: Library.KmsDevice;
    try {
      device = lib.KmsDevice.open(path);
    } catch (err) {
      const atomicRefused = err instanceof lib.UnsupportedError;
      found.push({ path, atomic: false, crtcs: 0, planes: 0, inFenceFdPlanes: 0, outFencePtrCrtcs: 0, detail: atomicRefused ? 'no atomic modesetting' : message(err) });
      continue;
    }
    try {
      const crtcs = device.crtcs();
      const planes = device.planes();
      found.push({
        path,
        driver: device.driver,
        atomic: true,
        crtcs: crtcs.length,
        planes: planes.length,
        inFenceFdPlanes: planes.filter((p) => device.properties(p).has('IN_FENCE_FD')).length,
        outFencePtrCrtcs: crtcs.filter((c) => device.properties(c).has('OUT_FENCE_PTR')).length,
      });
    } catch (err) {
      found.push({ path, driver: device.driver, atomic: true, crtcs: 0, planes: 0, inFenceFdPlanes: 0, outFencePtrCrtcs: 0, detail: message(err) });
    } finally {
      device.close();
    }
  }
  return found;
}

/** The report's KMS lines. */
export function renderKms(kms: readonly DoctorKms[]): string[] {
  const out = ['KMS (card nodes; atomic clients pass fences in IN_FENCE_FD and get them from OUT_FENCE_PTR)'];
  if (kms.length === 0) return [...out, '  no card nodes'];
  for (const k of kms) {
    const who = `${k.path}${k.driver !== undefined ? ` (${k.driver})` : ''}`;
    if (!k.atomic || k.detail !== undefined) {
      out.push(`  ${who}: ${k.detail ?? 'no atomic modesetting'}`);
      continue;
    }
    out.push(`  ${who}: atomic; IN_FENCE_FD on ${k.inFenceFdPlanes}/${k.planes} planes, OUT_FENCE_PTR on ${k.outFencePtrCrtcs}/${k.crtcs} CRTCs`);
  }
  return out;
}
