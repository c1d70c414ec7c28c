/**
 * The ublk frontend: an overlaybd image served as /dev/ublkbN by ublk_drv
 * (kernels ≥ 6.0 with the module loaded), on native queue threads. The
 * kernel keeps the device when this process dies; attaching again with
 * `recover` and its dev id takes it over (the I/O it queued meanwhile runs).
 */
import fs from 'node:fs';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { nativeImageOf, type Image } from '../image.js';
import { native } from '../native.js';
import { openImageConfig } from '../service/open-config.js';
import { type AttachedDevice, type AttachOptions } from './attach.js';
import { assertNotClaimed } from './claim.js';

export interface UblkServeOptions {
  /** Device number to create (default: the kernel picks) or, with `recover`, to take over. */
  devId?: number;
  /** Take over device `devId`, left by a service that died (user recovery). */
  recover?: boolean;
  /** Hardware queues, one native thread each (default min(2, cores)). */
  queues?: number;
  /** Requests in flight per queue (default 64). */
  depth?: number;
}

export interface UblkDevice {
  /** /dev/ublkbN. */
  readonly path: string;
  readonly devId: number;
  /** Removes the device (STOP_DEV, DEL_DEV) and stops its threads; the image stays open. */
  close(): Promise<void>;
}

const ServeSchema = z.object({
  devId: z.number().int().min(0).max(1 << 20).optional(),
  recover: z.boolean().default(false),
  queues: z.number().int().min(1).max(64).optional(),
  depth: z.number().int().min(1).max(4096).default(64),
});

/** ENOTSUP naming the missing driver, before the native call would. */
export function assertUblkAvailable(): void {
  if (!fs.existsSync('/dev/ublk-control')) {
    throw new OverlaybdError('ENOTSUP', "this kernel has no ublk_drv (/dev/ublk-control is missing; try 'modprobe ublk_drv' or frontend 'fuse')");
  }
}

/** Serves an open image as a ublk block device (read-only when it has no writable upper). */
export async function ublkServe(image: Image, opts: UblkServeOptions = {}): Promise<UblkDevice> {
  const o = parseWith(ServeSchema, opts, 'ublk options', 'EINVAL');
  if (o.recover && o.devId === undefined) throw new OverlaybdError('EINVAL', 'ublk options: recover needs devId');
  assertUblkAvailable();
  return (await native().ublkServe(nativeImageOf(image), o)) as UblkDevice;
}

/**
 * attachDevice for frontend 'ublk': opens the config's image and serves it;
 * detach removes the device, then closes the image.
 */
export async function attachUblk(configPath: string, opts: AttachOptions): Promise<AttachedDevice> {
  assertUblkAvailable();
  const image: Image = await openImageConfig(configPath, {
    ...(opts.service ? { service: opts.service } : {}),
    ...(opts.global ? { global: opts.global } : {}),
  });
  let dev: UblkDevice;
  try {
    dev = await ublkServe(image, opts.ublk ?? {});
  } catch (e) {
    await image.close().catch(() => {});
    throw e;
  }
  let detaching: Promise<void> | undefined;
  return {
    path: dev.path,
    id: `ublk-${dev.devId}`,
    file: dev.path,
    devId: dev.devId,
    image,
    async detach() {
      // A mounted filesystem would lose its disk: refuse, undo nothing.
      if (!detaching) assertNotClaimed(dev.path);
      detaching ??= (async () => {
        try {
          await dev.close();
        } finally {
          await image.close();
        }
      })();
      return detaching;
    },
  };
}
