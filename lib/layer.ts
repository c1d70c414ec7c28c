/**
 * Layer files: create a writable layer, commit it (optionally ZFile + tar),
 * seal it in place, inspect any layer. Mirrors overlaybd-create/-commit.
 */
import { z } from 'zod';
import { native } from './native.js';
import { argument, filePath, parseWith } from './config.js';
import { CompressOptionsSchema, type ZFileInfo } from './zfile.js';

const uuid = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be a UUID (8-4-4-4-12 hex)');

/** The ZFile options a commit takes (-z --algorithm --bs --compress_threads). */
export const ZFileOptionsSchema = CompressOptionsSchema.pick({ algorithm: true, blockSize: true, threads: true });
export type ZFileOptions = z.input<typeof ZFileOptionsSchema>;

const CreateSchema = z.object({
  data: filePath,
  index: filePath,
  /** Virtual device size in bytes (a multiple of 512). */
  virtualSize: z.number().int().positive().multipleOf(512),
  sparse: z.boolean().default(false),
  uuid: uuid.optional(),
  parentUuid: uuid.optional(),
  /** Make an ext4 filesystem on it (default options) before it appears. */
  mkfs: z.boolean().default(false),
});
export type CreateLayerOptions = z.input<typeof CreateSchema>;

/**
 * Creates an empty writable layer (append: data + index; sparse: data, empty
 * index). The files appear together and complete, or not at all: they are
 * built under temporary names and moved into place without replacing anything.
 */
export async function createLayer(opts: CreateLayerOptions): Promise<void> {
  await native().createLayer(parseWith(CreateSchema, opts, 'createLayer options'));
}

const CommitSchema = z
  .object({
    /** The RW data file, or the sealed file when `sealed` is set. */
    data: filePath,
    index: filePath.optional(),
    sealed: z.boolean().default(false),
    out: filePath,
    uuid: uuid.optional(),
    parentUuid: uuid.optional(),
    message: z.string().refine((s) => Buffer.byteLength(s) <= 256, 'must be at most 256 bytes').optional(),
    zfile: ZFileOptionsSchema.optional(),
    tar: z.boolean().default(false),
    force: z.boolean().default(false),
    /** fsync the output before it is moved into place (default true). */
    sync: z.boolean().default(true),
  })
  .refine((o) => !o.tar || o.zfile, { message: 'tar wrapping needs zfile compression (as overlaybd-commit -t needs -z)', path: ['tar'] });
export type CommitLayerOptions = z.input<typeof CommitSchema>;

/** Compacts a writable (or sealed) layer into a read-only layer file. */
export async function commitLayer(opts: CommitLayerOptions): Promise<void> {
  await native().commitLayer(parseWith(CommitSchema, opts, 'commitLayer options'));
}

/**
 * Deletes every output this process is still writing (their temporaries) and
 * makes later ones fail with CLOSED. Synchronous, for signal handlers.
 */
export function removePendingOutputs(): number {
  return native().removePendingOutputs() as number;
}

/** Turns a writable layer's data file into a read-only layer in place. */
export async function sealLayer(data: string, index?: string): Promise<void> {
  await native().sealLayer(argument(filePath, data, 'data'), index === undefined ? undefined : argument(filePath, index, 'index'));
}

export interface LsmtRecord {
  flags: number;
  indexOffset: number;
  indexSize: number;
  virtualSize: number;
  uuid: string;
  parentUuid: string;
  version: number;
  subVersion: number;
  userTag: string;
}

export interface LayerEntry {
  offset: number;
  length: number;
  moffset: number;
  zeroed: 0 | 1;
  tag: number;
}

export interface LayerInspection {
  tar: ZFileInfo['tar'];
  /** Present when the payload is a ZFile: its decoded header, trailer and layout. */
  zfile?: Omit<ZFileInfo, 'tar'>;

  lsmtSize: number;
  header: LsmtRecord;
  trailer?: LsmtRecord;
  paddingEntries: number;
  /** Committed/sealed: the index (padding dropped); RW index file: entries in write order. */
  entries: LayerEntry[];
}

export async function inspectLayer(file: string): Promise<LayerInspection> {
  return (await native().inspectLayer(argument(filePath, file, 'file'))) as LayerInspection;
}
