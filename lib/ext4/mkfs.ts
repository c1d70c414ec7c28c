/** mkfs: a fresh, deterministic ext4 filesystem on a device (native libext2fs). */
import { z } from 'zod';
import { parseWith } from '../config.js';
import { native } from '../native.js';
import { parseDevice, prepareForMkfs, VsizeSchema, type Ext4Device } from './device.js';

export const MkfsOptionsSchema = z.object({
  /** Virtual size in GiB for a new raw file or image upper (default 64). */
  vsizeGB: VsizeSchema,
  /** The filesystem uuid and directory hash seed derive from this string. */
  seed: z.string().optional(),
  /** Seconds since the epoch stamped on everything mkfs creates (default 0). */
  timestamp: z.number().int().nonnegative().max(2 ** 34 - 1).optional(),
  /** Internal journal (default true); upstream's base layer has none. */
  journal: z.boolean().optional(),
  label: z.string().refine((s) => Buffer.byteLength(s) <= 16, 'at most 16 bytes').optional(),
  /** fsync the device at the end (default true). */
  sync: z.boolean().optional(),
});
export type MkfsOptions = z.input<typeof MkfsOptionsSchema>;

export async function mkfs(device: Ext4Device, options: MkfsOptions = {}): Promise<void> {
  const dev = parseDevice(device);
  const o = parseWith(MkfsOptionsSchema, options, 'mkfs options');
  const vsize = await prepareForMkfs(dev, o.vsizeGB);
  const { vsizeGB: _unused, ...rest } = o;
  await native().ext4Mkfs(dev, { ...rest, vsize });
}
