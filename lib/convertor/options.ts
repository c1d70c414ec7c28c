/**
 * The convertor's options, validated once with zod. Names follow upstream's
 * flags (`-r` repository, `-i`/`-g` input, `--overlaybd` output tag, ...).
 */
import os from 'node:os';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { ZFileOptionsSchema } from '../layer.js';
import type { DedupStore } from './db/index.js';
import type { ProgressSink } from './progress.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/index.js';
import pLimit, { type LimitFunction } from 'p-limit';

const tag = z.string().regex(/^[\w][\w.-]{0,127}$/, 'must be a tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})');

export const ConvertOptionsSchema = z
  .object({
    /** Source and destination repository, `host[:port]/path`. */
    repository: z.string().min(1),
    inputTag: tag.optional(),
    inputDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex>').optional(),
    /** Output tag of the native overlaybd image. */
    overlaybdTag: tag,
    oci: z.boolean().default(false),
    /** Make the filesystem in the bottom layer (false would need upstream's prebuilt base layer). */
    mkfs: z.boolean().default(true),
    /** Virtual device size of the bottom layer in GiB. */
    vsizeGB: z.number().int().positive().max(64 * 1024).default(64),
    disableSparse: z.boolean().default(false),
    /** Max manifests converted at once (0 = unlimited). */
    concurrency: z.number().int().nonnegative().default(4),
    /** Layer downloads running at once inside one manifest. */
    downloadConcurrency: z.number().int().positive().default(4),
    workDir: z.string().min(1).default('tmp_conv'),
    reserve: z.boolean().default(false),
    /**
     * Save each source layer on disk (layer.tar) before applying it, as
     * before streaming; off: the registry response flows into the apply.
     */
    stageLayers: z.boolean().default(false),
    noUpload: z.boolean().default(false),
    dumpManifest: z.boolean().default(false),
    referrer: z.boolean().default(false),
    /** ZFile options of the committed layers (upstream: lz4, 4 KiB). */
    zfile: z
      .object({
        algorithm: z.enum(['lz4', 'zstd']).default('lz4'),
        blockSize: z.union([z.literal(4096), z.literal(8192), z.literal(16384), z.literal(32768), z.literal(65536)]).default(4096),
        /**
         * Compressing threads of each commit (the bytes do not depend on
         * it). Layers of one image apply one after another, so their
         * commits would otherwise leave all cores but one idle.
         */
        threads: ZFileOptionsSchema.shape.threads.unwrap().default(() => Math.min(os.availableParallelism(), 8)),
      })
      .prefault({}),
  })
  .refine((o) => (o.inputTag === undefined) !== (o.inputDigest === undefined), {
    message: 'give exactly one of the input tag (-i) and the input digest (-g)',
    path: ['inputTag'],
  });

export type ConvertOptionsInput = z.input<typeof ConvertOptionsSchema>;
export type ConvertOptions = z.output<typeof ConvertOptionsSchema>;

/** What a conversion runs with besides its options. */
export interface ConvertDeps {
  client: RegistryClient;
  store: DedupStore;
  logger: Logger;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export function parseConvertOptions(input: ConvertOptionsInput): ConvertOptions {
  const o = parseWith(ConvertOptionsSchema, input, 'convertor options');
  if (!o.mkfs) {
    throw new OverlaybdError(
      'ENOTSUP',
      '--mkfs=false needs upstream\'s prebuilt base layer (/opt/overlaybd/baselayers/ext4_64), which is not shipped here; keep --mkfs',
    );
  }
  // --referrer needs OCI manifests (subject and artifactType are OCI fields).
  if (o.referrer) o.oci = true;
  return o;
}

/** A concurrency bound as the options give it: at most `n` tasks at once, 0 for no bound. */
export function concurrencyLimit(n: number): LimitFunction {
  return pLimit(n > 0 ? n : Number.POSITIVE_INFINITY);
}
