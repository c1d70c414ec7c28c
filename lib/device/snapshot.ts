/**
 * Live snapshot of an attached device (docs §6.6), as upstream's
 * ImageFile::create_snapshot: the new config must keep the device's lowers,
 * add its current upper data file as the newest lower (sealed in place) and
 * name a fresh upper. The image seals and restacks under live I/O, then the
 * new config is renamed over the device's config file, so a restarted
 * service attaches the new stack.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ImageConfigSchema, parseWith, readJsonFile, type ImageConfig } from '../config.js';
import { OverlaybdError } from '../errors.js';
import type { Image } from '../image.js';

/** What a snapshot needs of a device. */
export interface SnapshotTarget {
  /** The device's config.v1.json (absolute). */
  config: string;
  image: Image;
}

type Lower = ImageConfig['lowers'][number];

/** Fields naming a lower's content; paths resolved against `base`. */
function lowerKey(l: Lower, base: string): string {
  const abs = (p: string | undefined) => (p ? path.resolve(base, p) : '');
  return JSON.stringify([abs(l.file), abs(l.dir), l.digest ?? '', l.size ?? 0, abs(l.targetFile), l.targetDigest ?? '', abs(l.gzipIndex)]);
}

/**
 * Checks the new config against the device's: returns the new upper. Paths
 * in both resolve against the device config's directory, where the new
 * config will live after the rename.
 */
function checkNext(cur: ImageConfig, next: ImageConfig, curFile: string, nextFile: string): { data: string; index?: string } {
  const base = path.dirname(curFile);
  const abs = (p: string) => path.resolve(base, p);
  if (!cur.upper) throw new OverlaybdError('EROFS', `${curFile}: the device has no upper layer to snapshot`);
  const n = cur.lowers.length;
  if (next.lowers.length !== n + 1) {
    throw new OverlaybdError(
      'EINVAL',
      `${nextFile}: has ${next.lowers.length} lowers; it must keep the device's ${n} and add its upper as lowers[${n}]`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (lowerKey(cur.lowers[i]!, base) !== lowerKey(next.lowers[i]!, base)) {
      throw new OverlaybdError('EINVAL', `${nextFile}: lowers[${i}] differs from the device's lowers[${i}] in ${curFile}`);
    }
  }
  const sealed = next.lowers[n]!;
  const upperData = abs(cur.upper.data);
  const extra = (['dir', 'digest', 'size', 'targetFile', 'targetDigest', 'gzipIndex'] as const).filter((k) => sealed[k] !== undefined);
  if (!sealed.file || abs(sealed.file) !== upperData || extra.length) {
    throw new OverlaybdError(
      'EINVAL',
      `${nextFile}: lowers[${n}] must be just {"file": "${upperData}"} (the device's upper data file, sealed in place)` +
        (extra.length ? `; it also sets ${extra.join(', ')}` : `; found file ${JSON.stringify(sealed.file ?? null)}`),
    );
  }
  if (!next.upper) throw new OverlaybdError('EINVAL', `${nextFile}: has no upper; a snapshot continues on a new writable upper`);
  const data = abs(next.upper.data);
  const index = next.upper.index ? abs(next.upper.index) : undefined;
  const old = [upperData, ...(cur.upper.index ? [abs(cur.upper.index)] : [])];
  if (old.includes(data) || (index && old.includes(index))) {
    throw new OverlaybdError('EINVAL', `${nextFile}: the new upper must differ from the device's upper (${old.join(', ')})`);
  }
  return { data, ...(index ? { index } : {}) };
}

/** Replaces `to` with `from`; across filesystems through a copy in `to`'s directory. */
async function renameOver(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const tmp = `${to}.snapshot.tmp`;
    await fs.copyFile(from, tmp);
    await fs.rename(tmp, to);
    await fs.rm(from, { force: true });
  }
}

const running = new WeakMap<Image, Promise<void>>();

/** Takes a live snapshot; one at a time per device. */
export async function snapshotDevice(target: SnapshotTarget, nextConfig: string): Promise<void> {
  const prev = running.get(target.image) ?? Promise.resolve();
  const job = prev.catch(() => {}).then(() => snapshotNow(target, path.resolve(nextConfig)));
  running.set(target.image, job);
  return job;
}

async function snapshotNow(target: SnapshotTarget, nextFile: string): Promise<void> {
  if (nextFile === target.config) {
    throw new OverlaybdError('EINVAL', `${nextFile}: the new config must be another file than the device's config`);
  }
  const cur = parseWith(ImageConfigSchema, await readJsonFile(target.config), target.config);
  const next = parseWith(ImageConfigSchema, await readJsonFile(nextFile), nextFile);
  const upper = checkNext(cur, next, target.config, nextFile);
  await target.image.snapshot(upper);
  try {
    await renameOver(nextFile, target.config);
  } catch (e) {
    throw new OverlaybdError(
      'EIO',
      `snapshot taken (the device now writes to ${upper.data}), but ${nextFile} could not replace ${target.config}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}
