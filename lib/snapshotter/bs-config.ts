/**
 * The backstore's config.v1.json for a snapshot (accelerated-container-image.md
 * §1.5): the parent's repoBlobUrl and lowers plus this layer, written
 * atomically with mode 0600 as compact JSON.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';
import { createLayer } from '../layer.js';
import type { SnapshotterConfig } from './config.js';
import { LABELS } from './labels.js';
import type { Layout } from './layout.js';
import type { StorageType } from './storage-type.js';

export interface BsLower {
  file?: string;
  dir?: string;
  digest?: string;
  size?: number;
}

export interface BsConfig {
  repoBlobUrl: string;
  lowers: BsLower[];
  upper: { index?: string; data?: string; vsize?: number };
  resultFile: string;
  accelerationLayer?: boolean;
  recordTracePath?: string;
}

/**
 * `https://<host>/v2/<repo>/blobs` of a fully qualified ref (host = first
 * path element, docker.io -> registry-1.docker.io); http only for a
 * mirrorRegistry entry with that host and insecure: true.
 */
export function repoBlobUrl(ref: string, mirrors: SnapshotterConfig['mirrorRegistry']): string {
  const noDigest = ref.split('@')[0]!;
  const slash = noDigest.indexOf('/');
  if (slash <= 0) throw new OverlaybdError('EINVAL', `image ref ${JSON.stringify(ref)} is not fully qualified (host/repository[:tag])`);
  const host = noDigest.slice(0, slash);
  let repo = noDigest.slice(slash + 1);
  const colon = repo.lastIndexOf(':');
  if (colon > repo.lastIndexOf('/')) repo = repo.slice(0, colon);
  if (!repo) throw new OverlaybdError('EINVAL', `image ref ${JSON.stringify(ref)} has no repository`);
  const insecure = (mirrors ?? []).some((m) => m.host === host && m.insecure);
  const urlHost = host === 'docker.io' ? 'registry-1.docker.io' : host;
  return `${insecure ? 'http' : 'https'}://${urlHost}/v2/${repo}/blobs`;
}

export function readBsConfig(layout: Layout, id: string): BsConfig | undefined {
  try {
    return JSON.parse(fs.readFileSync(layout.configPath(id), 'utf8')) as BsConfig;
  } catch {
    return undefined;
  }
}

export function writeBsConfig(layout: Layout, id: string, cfg: BsConfig): void {
  const file = layout.configPath(id);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(cfg), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** A new config for `id` starting from its parent's registry and lowers (a parent must have a config). */
function inheritSpec(layout: Layout, id: string, parentId: string | undefined): BsConfig {
  const spec: BsConfig = { repoBlobUrl: '', lowers: [], upper: {}, resultFile: path.join(layout.block(id), 'init-debug.log') };
  if (parentId !== undefined) {
    const p = readBsConfig(layout, parentId);
    if (!p) throw new OverlaybdError('FAILED_PRECONDITION', `parent snapshot ${parentId} has no overlaybd config (${layout.configPath(parentId)})`);
    spec.repoBlobUrl = p.repoBlobUrl;
    spec.lowers = [...p.lowers];
  }
  return spec;
}

/** ConstructOverlayBDSpec for a non-writable layer of `type` (remoteBlock or localBlock). */
export function constructSpec(layout: Layout, cfg: SnapshotterConfig, id: string, parentId: string | undefined, type: StorageType, labels: Record<string, string>): BsConfig {
  const spec = inheritSpec(layout, id, parentId);
  if (type === 'remoteBlock') {
    const ref = labels[LABELS.imageRef] ?? labels[LABELS.criImageRef];
    if (!ref) throw new OverlaybdError('EINVAL', `snapshot ${id}: remote layer without ${LABELS.imageRef} or ${LABELS.criImageRef}`);
    spec.repoBlobUrl = repoBlobUrl(ref, cfg.mirrorRegistry);
    const size = Number(labels[LABELS.blobSize]);
    if (!Number.isSafeInteger(size) || size < 0) throw new OverlaybdError('EINVAL', `snapshot ${id}: ${LABELS.blobSize} ${JSON.stringify(labels[LABELS.blobSize])} is not a byte count`);
    spec.lowers.push({ digest: labels[LABELS.blobDigest]!, size, dir: layout.fs(id) });
  } else if (type === 'localBlock') {
    spec.lowers.push({ dir: layout.fs(id) });
  } else {
    throw new OverlaybdError('EINVAL', `snapshot ${id}: a ${type} layer has no overlaybd config`);
  }
  fs.writeFileSync(spec.resultFile, '');
  return spec;
}

const GiB = 1024 ** 3;
const DEFAULT_VSIZE_GB = 64;

/**
 * The config of a writable rootfs (rwMode dir or dev): the parent's lowers
 * and a new writable upper in `block/` (or the overlay.active.path label's
 * dir). A parentless one gets an ext4 made in user space, where upstream
 * runs mkfs on the device. Upstream sizes only a parentless upper (vsize
 * label, default 64 GB); our layers need a size, so every upper gets it.
 */
export async function constructWritableSpec(layout: Layout, cfg: SnapshotterConfig, id: string, parentId: string | undefined, labels: Record<string, string>): Promise<BsConfig> {
  const spec = inheritSpec(layout, id, parentId);
  const parsed = Number.parseInt(labels[LABELS.vsize] ?? '', 10);
  const vsize = Number.isSafeInteger(parsed) && parsed > 0 ? parsed : DEFAULT_VSIZE_GB;
  const rwDir = labels[LABELS.overlayActivePath] ?? layout.block(id);
  const data = path.join(rwDir, 'writable_data');
  const index = path.join(rwDir, 'writable_index');
  if (!(fs.existsSync(data) && fs.existsSync(index))) {
    await createLayer({ data, index, virtualSize: vsize * GiB, sparse: cfg.writableLayerType === 'sparse', mkfs: parentId === undefined });
  }
  spec.upper = { index, data, vsize };
  fs.writeFileSync(spec.resultFile, '');
  return spec;
}
