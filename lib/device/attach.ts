/**
 * An overlaybd image as a kernel block device, embedded in this process.
 * The FUSE frontend (the one this kernel offers) exports the image as one
 * file on a FUSE mount, served on native threads, and the loop driver
 * attaches it with direct I/O. TCMU (tcmu.ts) makes a SCSI disk through
 * target_core_user and tcm_loop; ublk (ublk.ts) serves /dev/ublkbN where
 * the kernel has ublk_drv.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { argument, filePath, parseWith, readJsonFile } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { nativeImageOf, type Image } from '../image.js';
import { native } from '../native.js';
import { openImageConfig } from '../service/open-config.js';
import { writeResultFile } from '../service/result-file.js';
import type { GlobalConfig } from '../service/global-config.js';
import type { ImageService } from '../service/image-service.js';
import { assertNotClaimed } from './claim.js';
import { attachTcmu } from './tcmu.js';
import { attachUblk, type UblkServeOptions } from './ublk.js';

export type Frontend = 'fuse' | 'tcmu' | 'ublk';

export interface AttachOptions {
  /** Default fuse. */
  frontend?: Frontend;
  /** overlaybd.json path or parsed config, for a private image service. */
  global?: string | GlobalConfig;
  /** Open the image with this service (its global config applies). */
  service?: ImageService;
  /** Where FUSE mount points are made, one per device (default /run/overlaybd/fuse). */
  runDir?: string;
  /** ublk: the device number, recovery of a device left by a dead service, queue shape. */
  ublk?: UblkServeOptions;
}

export interface AttachedDevice {
  /** The block device: /dev/loopN (FUSE), /dev/sdX (TCMU), /dev/ublkbN (ublk). */
  readonly path: string;
  /** ublk: the device number (N of /dev/ublkbN). */
  devId?: number;
  id: string;
  /** FUSE: the exported file the loop device reads (on the FUSE mount); TCMU: the UIO device served. */
  file: string;
  /** The image the device serves (the live snapshot API acts on it). */
  image?: Image;
  /** Upstream's dev_id for the snapshot API: the TCMU cfgstring's `;<dev_id>` suffix, when it has one. */
  upstreamId?: string;
  /** Detaches the loop device, unmounts and closes the image; resolves once all is gone. */
  detach(): Promise<void>;
  /** FUSE: milliseconds each attach step took (image open, FUSE export, loop device), for the service's log. */
  timings?: Record<string, number>;
}

interface NativeFuseExport {
  readonly file: string;
  close(): Promise<void>;
}

const OptionsSchema = z.object({
  frontend: z.enum(['fuse', 'tcmu', 'ublk']).default('fuse'),
  global: z.union([z.string(), z.object({}).passthrough()]).optional(),
  service: z.custom<ImageService>((v) => typeof v === 'object' && v !== null).optional(),
  runDir: filePath.default('/run/overlaybd/fuse'),
});

/** The FUSE mount point, with an error that names it (a run dir that is a file, no permission...). */
function makeMountDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const known = code === 'ENOENT' || code === 'EPERM' || code === 'ENOSPC' || code === 'EROFS' || code === 'EEXIST';
    throw new OverlaybdError(known ? code : 'EIO', `cannot make the FUSE mount point ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Opens a config.v1.json image and attaches it as a block device:
 * a loop device with direct I/O on a FUSE file (read-only when the image
 * has no writable upper). Undoes what it did when a step fails.
 */
export async function attachDevice(configPath: string, opts: AttachOptions = {}): Promise<AttachedDevice> {
  const file = argument(filePath, configPath, 'configPath');
  const o = parseWith(OptionsSchema, opts, 'attachDevice options');
  const openOpts = {
    ...(o.service ? { service: o.service } : {}),
    ...(o.global ? { global: o.global as string | GlobalConfig } : {}),
  };
  if (o.frontend === 'tcmu') return attachTcmu(file, (cfg) => openImageConfig(cfg, openOpts));
  if (o.frontend === 'ublk') return attachUblk(file, opts);
  const id = `fuse-${randomBytes(6).toString('hex')}`;
  const mountDir = path.join(o.runDir, id);
  const undo: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const step of undo.reverse()) await step().catch(() => {});
  };
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const ms = Math.round(now - t);
    t = now;
    return ms;
  };
  try {
    const image: Image = await openImageConfig(file, openOpts);
    undo.push(() => image.close());
    const openMs = lap();
    makeMountDir(mountDir);
    undo.push(async () => fs.rmdirSync(mountDir));
    const exp = (await native().fuseExport(nativeImageOf(image), mountDir)) as NativeFuseExport;
    undo.push(() => exp.close());
    const exportMs = lap();
    const readOnly = !image.writable;
    // What `losetup --find --show --direct-io=on [--read-only]` does, by ioctl.
    const loop = (await native().loopAttach(exp.file, { readOnly, directIo: true })) as string;
    undo.push(() => native().loopDetach(loop) as Promise<void>);
    const loopMs = lap();
    let detaching: Promise<void> | undefined;
    return {
      path: loop,
      id,
      file: exp.file,
      image,
      timings: { openMs, exportMs, loopMs },
      async detach() {
        // A mounted filesystem would lose its device (the kernel detaches a
        // busy loop lazily, then the FUSE file goes away): refuse, undone nothing.
        if (!detaching) assertNotClaimed(loop);
        // Teardown order: loop device, FUSE mount, image, mount point.
        detaching ??= (async () => {
          const steps = undo.splice(0).reverse();
          let first: unknown;
          for (const step of steps) await step().catch((e: unknown) => (first ??= e));
          if (first) throw first;
        })();
        return detaching;
      },
    };
  } catch (e) {
    await unwind();
    // Opening may have written `success` (or failed before it knew the config): this failure replaces it.
    await reportFailure(file, e);
    throw e;
  }
}

/**
 * Writes failed:<reason> to the config's resultFile, if it names one; best
 * effort. Only that field is read: the rest of the config may be what failed.
 */
async function reportFailure(configPath: string, e: unknown): Promise<void> {
  try {
    const raw = (await readJsonFile(configPath)) as { resultFile?: unknown };
    if (typeof raw.resultFile !== 'string' || raw.resultFile === '') return;
    const resultFile = path.resolve(path.dirname(configPath), raw.resultFile);
    await writeResultFile(resultFile, { ok: false, reason: (e as Error).message });
  } catch {
    // The attach error is what the caller needs; the result file is advisory.
  }
}
