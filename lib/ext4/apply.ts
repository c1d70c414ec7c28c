/**
 * applyLayer: applies one OCI layer tar (plain, gzip or zstd; a file, a
 * FIFO or a pipe fed from JS) onto the ext4 filesystem of a device, as containerd applies a layer
 * onto a directory. Runs natively off the event loop and reports progress.
 */
import fs from 'node:fs';
import { z } from 'zod';
import type { LayerPipeInput } from '../archive.js';
import { filePath, parseWith } from '../config.js';
import { native } from '../native.js';
import { parseDevice, prepareForMkfs, VsizeSchema, type Ext4Device } from './device.js';

export interface ApplyProgress {
  /** Bytes taken from the input so far (compressed bytes for gzip/zstd). */
  inputBytes: number;
  /** Uncompressed tar bytes parsed so far. */
  tarBytes: number;
  entries: number;
  /** True on the last report. */
  done: boolean;
}

export interface ApplyResult {
  entries: number;
  tarBytes: number;
  inputBytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  specials: number;
  whiteouts: number;
  /** Bytes written to the device (the upper layer of an image). */
  bytesWritten: number;
  bytesRead: number;
}

const ApplyOptionsSchema = z.object({
  /** Make the filesystem first (the bottom layer of an image). */
  mkfs: z.boolean().optional(),
  /** With mkfs: virtual size in GiB of a new raw file or image upper (default 64). */
  vsizeGB: VsizeSchema,
  seed: z.string().optional(),
  /** The fixed "now" for mkfs and for what libext2fs stamps itself (default 0). */
  timestamp: z.number().int().nonnegative().max(2 ** 34 - 1).optional(),
  journal: z.boolean().optional(),
  sync: z.boolean().optional(),
  /** Metadata cache of the ext4 channel in MiB (default 16). */
  cacheMB: z.number().int().min(1).max(4096).optional(),
  onProgress: z.custom<(p: ApplyProgress) => void>((v) => typeof v === 'function').optional(),
});
export type ApplyOptions = z.input<typeof ApplyOptionsSchema>;

function parseOptions(options: ApplyOptions) {
  const { onProgress, vsizeGB, ...o } = parseWith(ApplyOptionsSchema, options, 'applyLayer options');
  return { onProgress, vsizeGB, o };
}

/**
 * `input` is a path, or the read end of a pipe (lib/archive.ts
 * feedThroughPipe) whose blob digest and diff_id are checked as it streams;
 * the pipe is owned from the call on and closed whatever happens.
 */
export async function applyLayer(device: Ext4Device, input: string | LayerPipeInput, options: ApplyOptions = {}): Promise<ApplyResult> {
  let dev: ReturnType<typeof parseDevice>, layer: string | LayerPipeInput, vsize: number;
  let parsed: ReturnType<typeof parseOptions>;
  try {
    dev = parseDevice(device);
    layer = typeof input === 'string' ? parseWith(filePath, input, 'layer input') : input;
    parsed = parseOptions(options);
    vsize = parsed.o.mkfs ? await prepareForMkfs(dev, parsed.vsizeGB) : 0;
  } catch (e) {
    if (typeof input !== 'string') fs.closeSync(input.fd);
    throw e;
  }
  const { onProgress, o } = parsed;
  const report = (p: ApplyProgress) => {
    try {
      onProgress?.(p);
    } catch {
      /* a throwing callback must not break the apply */
    }
  };
  // Native reports arrive through a queue that may deliver them after the
  // promise settles (or drop them when JS lags); the final one is sent here,
  // from the result, so it is always last and never lost.
  let settled = false;
  const cb = onProgress ? (p: ApplyProgress) => !settled && !p.done && report(p) : undefined;
  try {
    const r = (await native().ext4ApplyLayer(dev, layer, { ...o, vsize }, cb)) as ApplyResult;
    settled = true;
    report({ inputBytes: r.inputBytes, tarBytes: r.tarBytes, entries: r.entries, done: true });
    return r;
  } finally {
    settled = true;
  }
}
