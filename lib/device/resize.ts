/**
 * overlaybd-resize (docs §6.7): sets the virtual size of an image's
 * writable upper and resizes the ext4 filesystem inside to fill it.
 *
 * The filesystem part runs Debian's e2fsck and resize2fs (e2fsprogs) on
 * the image attached as a FUSE + loop device. (Not on the FUSE file alone:
 * libext2fs rewrites single superblock fields with byte-sized writes, which
 * the export refuses as a disk refuses unaligned direct I/O; the loop
 * device's page cache turns them into whole blocks.) Upstream
 * links a libext2fs fork with a resize entry point; stock libext2fs has
 * none, and resize2fs is the program that implements the resize over
 * libext2fs (moving inode tables, block groups, the journal, flex_bg
 * metadata when shrinking): re-implementing it here would be a large,
 * risky copy of code e2fsprogs already ships and tests.
 *
 * Growing: the layer grows first, then the filesystem. Shrinking: the
 * filesystem shrinks first (resize2fs refuses when the data does not fit),
 * then the layer; what lay beyond the new end is discarded from the upper.
 * Lowers keep their own sizes; the upper's size is the device's.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { resolveImageConfig } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { native } from '../native.js';
import type { GlobalConfig } from '../service/global-config.js';
import { openImageConfig } from '../service/open-config.js';
import { attachDevice } from './attach.js';

const run = promisify(execFile);
export const GiB = 1024 ** 3;

export interface ResizeOptions {
  /** overlaybd.json for the image service (remote lowers); default upstream's. */
  global?: string | GlobalConfig;
  /** Where the FUSE mount of the device goes (attachDevice's runDir). */
  runDir?: string;
  /** Progress lines (the CLI prints them). */
  log?: (line: string) => void;
}

export interface ResizeResult {
  from: number;
  to: number;
}

interface ResizeNative {
  resizeLayer(data: string, index: string, virtualSize: number): Promise<void>;
}

/** Runs e2fsprogs; exit codes above `okBelow` fail with the tool's output. */
async function e2fs(cmd: string, args: string[], okBelow = 1): Promise<void> {
  try {
    await run(cmd, args, { timeout: 30 * 60_000, maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as Error & { code?: number | string; stdout?: string; stderr?: string };
    if (typeof err.code === 'number' && err.code < okBelow) return;
    const what = err.code === 'ENOENT' ? `${cmd} is not installed (Debian package e2fsprogs)` : `exit ${err.code}`;
    throw new OverlaybdError('EIO', `${cmd} ${args.join(' ')}: ${what}: ${`${err.stderr ?? ''}${err.stdout ?? ''}`.trim()}`, { cause: e });
  }
}

/**
 * Checks the filesystem (resize2fs wants a freshly checked one) and resizes
 * it to fill the device, or to `bytes`. Detaching flushes the image.
 */
async function resizeFs(configPath: string, bytes: number | undefined, opts: ResizeOptions): Promise<void> {
  const log = opts.log ?? (() => {});
  const dev = await attachDevice(configPath, { ...(opts.global !== undefined ? { global: opts.global } : {}), ...(opts.runDir ? { runDir: opts.runDir } : {}) });
  try {
    // -p fixes only what is safe to fix unattended; exit 1 means it did.
    log(`checking the filesystem on ${dev.path} (e2fsck -f -p)`);
    await e2fs('e2fsck', ['-f', '-p', dev.path], 2);
    log(`resizing the filesystem${bytes === undefined ? ' to fill the device' : ` to ${bytes / GiB} GiB`} (resize2fs)`);
    await e2fs('resize2fs', bytes === undefined ? [dev.path] : [dev.path, `${bytes / 1024}K`]);
  } finally {
    await dev.detach();
  }
}

/** Parses --size: a positive whole number of GiB, as upstream's tool takes. */
export function parseSizeGB(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) === 0) {
    throw new OverlaybdError('USAGE', `--size expects a positive whole number of GiB, got '${text}'`);
  }
  const gb = Number(text);
  if (!Number.isSafeInteger(gb * GiB)) throw new OverlaybdError('USAGE', `--size ${text} GiB is too large`);
  return gb;
}

/**
 * Resizes the image of `configPath` to `sizeGB` GiB: its upper layer and
 * the ext4 filesystem on it. The upper must not be in use (EBUSY).
 */
export async function resizeImage(configPath: string, sizeGB: number, opts: ResizeOptions = {}): Promise<ResizeResult> {
  if (!Number.isSafeInteger(sizeGB) || sizeGB <= 0) throw new OverlaybdError('EINVAL', `size must be a positive whole number of GiB, got ${sizeGB}`);
  const to = sizeGB * GiB;
  const r = await resolveImageConfig(configPath);
  if (!r.upper) throw new OverlaybdError('EROFS', `${configPath}: the image is read-only (no upper layer); only a writable upper can be resized`);
  const upper = { data: r.upper.data, index: r.upper.index ?? '' };
  const image = await openImageConfig(configPath, opts.global !== undefined ? { global: opts.global } : {});
  const from = image.size;
  await image.close();
  if (to < from) await resizeFs(configPath, to, opts);
  if (to !== from) {
    opts.log?.(`setting the upper's virtual size ${from} -> ${to} bytes`);
    await (native() as unknown as ResizeNative).resizeLayer(upper.data, upper.index, to);
  }
  if (to >= from) {
    try {
      await resizeFs(configPath, undefined, opts);
    } catch (e) {
      if (to === from) throw e;
      const err = e as OverlaybdError;
      throw new OverlaybdError(err.code ?? 'EIO', `the layer is now ${sizeGB} GiB but its filesystem was not grown (run again to retry): ${err.message}`, { cause: e });
    }
  }
  return { from, to };
}
