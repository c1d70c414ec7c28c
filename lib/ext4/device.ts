/**
 * The device an ext4 operation works on: a raw image file, or an overlaybd
 * image whose writable upper receives every changed block, given as a spec
 * of local layers or as an open Image (one whose lowers the image service
 * reads remotely, say).
 */
import fs from 'node:fs/promises';
import { z } from 'zod';
import { filePath, parseWith, type ImageSpec } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { Image, nativeImageOf } from '../image.js';
import { createLayer } from '../layer.js';

export const GiB = 1024 ** 3;
/** Upstream's default virtual size for a new image. */
export const DEFAULT_VSIZE_GB = 64;

export type Ext4Device = { raw: string } | ImageSpec | { image: Image };

/** What the native side takes: the same, with an Image as its native object. */
export type NativeDevice = { raw: string } | ImageSpec | { image: unknown };

const DeviceSchema = z.union([
  z.object({ raw: filePath }).strict(),
  z.object({
    lowers: z.array(filePath).max(255),
    upper: z.object({ data: filePath, index: filePath.optional() }),
    ioEngine: z.enum(['psync', 'io_uring']).optional(),
  }),
]);

export const VsizeSchema = z.number().int().positive().max(64 * 1024, 'at most 64 TiB').optional();

export function parseDevice(device: Ext4Device): NativeDevice {
  if (device !== null && typeof device === 'object' && 'image' in device) {
    if (!(device.image instanceof Image)) throw new OverlaybdError('EINVAL', 'ext4 device: image: not an Image (openImage, openImageConfig)');
    return { image: nativeImageOf(device.image) };
  }
  return parseWith(DeviceSchema, device, 'ext4 device') as NativeDevice;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Before mkfs: a missing image upper is created as an empty writable layer
 * of `vsizeGB`; a missing raw file gets that size. Returns the byte size the
 * native side should give a raw file (0: keep the existing file's size).
 */
export async function prepareForMkfs(device: NativeDevice, vsizeGB: number | undefined): Promise<number> {
  if ('image' in device) return 0; // open already, upper and all
  if ('raw' in device) {
    if (vsizeGB !== undefined) return vsizeGB * GiB;
    return (await exists(device.raw)) ? 0 : DEFAULT_VSIZE_GB * GiB;
  }
  const upper = device.upper!;
  if (!(await exists(upper.data))) {
    if (!upper.index) {
      throw new OverlaybdError('CONFIG_INVALID', `upper ${upper.data} does not exist and has no index file to create it with`);
    }
    await createLayer({ data: upper.data, index: upper.index, virtualSize: (vsizeGB ?? DEFAULT_VSIZE_GB) * GiB });
  }
  return 0;
}
