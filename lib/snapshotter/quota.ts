/**
 * Rootfs quotas (accelerated-container-image.md §1.1, §1.3): `rootfsQuota`
 * in config.json, or the `containerd.io/snapshot/disk_quota` label of the
 * rootfs snapshot, limits what a container writes into its upper `fs/` and
 * overlayfs `work/` through a project quota of the filesystem under the
 * snapshotter root, which must be ext4 or XFS mounted with prjquota, as
 * upstream requires. Each rootfs gets its own project ID (upstream gives
 * every rootfs the same one, so one rootfs's limit would replace another's;
 * docs/decisions.md), and the limit goes with the snapshot.
 */
import fs from 'node:fs';
import { OverlaybdError } from '../errors.js';
import { native } from '../native.js';
import { mountHolding } from './block-device.js';
import { LABELS } from './labels.js';
import { parseRamBytes } from './ram-bytes.js';

/** Upstream's first quota ID (diskquota.QuotaMinID, 2^24): lower IDs are left to the host's own projects. */
export const QUOTA_MIN_ID = 16777216;

/** The quota a rootfs gets: its label when given (even empty, as upstream), else the config's; undefined for none. */
export function rootfsQuotaOf(labels: Record<string, string>, configured: string): { text: string; from: string } | undefined {
  const label = labels[LABELS.diskQuota];
  const q = label !== undefined ? { text: label, from: `label ${LABELS.diskQuota}` } : { text: configured, from: 'config rootfsQuota' };
  return q.text === '' ? undefined : q;
}

/** The project ID of snapshot `id` (numeric). */
export function projectIdOf(id: string): number {
  return QUOTA_MIN_ID + Number(id);
}

/**
 * Limits the rootfs dirs of snapshot `id` (its `fs/`, and `work/` when
 * given) to `quota` bytes, under the snapshot's project. Fails naming what is wrong: a bad size, a
 * filesystem not mounted with prjquota, a limit above the filesystem.
 */
export async function applyRootfsQuota(id: string, dirs: string[], quota: { text: string; from: string }): Promise<{ bytes: number; project: number }> {
  const bytes = parseRamBytes(quota.text);
  if (bytes === undefined || bytes <= 0) {
    throw new OverlaybdError('EINVAL', `${quota.from}: ${JSON.stringify(quota.text)} is not a size (e.g. "20g", "512m")`);
  }
  const mount = mountHolding(dirs[0]!);
  if (!mount || !/(^|,)(prjquota|pquota)(,|$)/.test(mount.superOptions)) {
    throw new OverlaybdError(
      'FAILED_PRECONDITION',
      `${quota.from} ${quota.text}: mountpoint ${mount?.mountPoint ?? '?'} (${mount?.fsType ?? '?'}) is not mounted with prjquota, which a rootfs quota needs (ext4 or XFS)`,
    );
  }
  const st = fs.statfsSync(dirs[0]!);
  if (bytes > st.blocks * st.bsize) {
    throw new OverlaybdError('EINVAL', `${quota.from}: ${quota.text} (${bytes} bytes) is more than the ${st.blocks * st.bsize} bytes of ${mount.mountPoint}`);
  }
  const project = projectIdOf(id);
  for (const dir of dirs) await native().setProjectQuota(dir, project, bytes);
  return { bytes, project };
}

/** The project ID of ours that `dir` carries (a rootfs `fs/` with a quota), if any. */
export async function projectOfDir(dir: string): Promise<number | undefined> {
  try {
    const id = (await native().projectId(dir)) as number;
    return id >= QUOTA_MIN_ID ? id : undefined;
  } catch {
    return undefined;  // no project IDs on this filesystem, or the dir is gone
  }
}

/** Drops the block limit of `project`; `near` is any dir on its filesystem. */
export async function clearProjectLimit(near: string, project: number): Promise<void> {
  await native().clearProjectLimit(near, project);
}
