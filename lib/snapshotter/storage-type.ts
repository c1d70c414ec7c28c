/**
 * identifySnapshotStorageType (accelerated-container-image.md §1.4): is a
 * snapshot a plain OCI layer, a local overlaybd file, a remote overlaybd
 * blob, or a raw layer tar? First match wins, as upstream.
 */
import fs from 'node:fs';
import path from 'node:path';
import { LABELS } from './labels.js';
import type { Layout } from './layout.js';

export type StorageType = 'normal' | 'localBlock' | 'remoteBlock' | 'localLayer';

// Three little-endian u64 words at bytes 0..23, as the bytes they are on disk.
const ZFILE_MAGIC = Buffer.concat([Buffer.from('ZFile\0\x01\0', 'latin1'), Buffer.from('tuji.yyf'), Buffer.from('@Alibaba')]);
const LSMT_MAGIC = Buffer.from('4c534d5400010200657e63d29444084ca2d2c8ec4fcfae8a', 'hex');

/** true/false when the file was read; undefined when it could not be opened. */
function hasOverlaybdMagic(file: string): boolean | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const b = Buffer.alloc(24);
    const n = fs.readSync(fd, b, 0, 24, 0);
    return n === 24 && (b.equals(ZFILE_MAGIC) || b.equals(LSMT_MAGIC));
  } finally {
    fs.closeSync(fd);
  }
}

/** An overlaybd layer served as a block device (remote blob or local file). */
export function isBlock(type: StorageType): boolean {
  return type === 'remoteBlock' || type === 'localBlock';
}

export function isRemoteLabels(labels: Record<string, string>): boolean {
  return (
    labels[LABELS.targetSnapshotRef] !== undefined &&
    labels[LABELS.blobSize] !== undefined &&
    labels[LABELS.blobDigest] !== undefined &&
    (labels[LABELS.imageRef] !== undefined || labels[LABELS.criImageRef] !== undefined)
  );
}

export function identifyStorageType(layout: Layout, id: string, labels: Record<string, string>): StorageType {
  if (isRemoteLabels(labels)) return 'remoteBlock';
  const rwDir = labels[LABELS.overlayActivePath] ?? layout.block(id);
  for (const f of [path.join(layout.fs(id), 'overlaybd.commit'), path.join(layout.fs(id), 'overlaybd.sealed'), path.join(rwDir, 'writable_data')]) {
    const m = hasOverlaybdMagic(f);
    if (m !== undefined) return m ? 'localBlock' : 'normal';
  }
  if (fs.existsSync(path.join(layout.dir(id), 'layer.tar'))) return 'localLayer';
  return fs.existsSync(layout.configPath(id)) ? 'remoteBlock' : 'normal';
}
