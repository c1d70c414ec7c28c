/**
 * ZFile: overlaybd's seekable compressed container (docs/format.md §3),
 * optionally inside the `-t` tar wrapper (§8). Compression, decompression,
 * verification and header inspection all run natively off the event loop.
 */
import { z } from 'zod';
import { asyncDispose, native } from './native.js';
import { argument, filePath as path, u64 } from './config.js';


export const CompressOptionsSchema = z
  .object({
    /** Block codec; upstream's default is lz4. */
    algorithm: z.enum(['lz4', 'zstd']).default('lz4'),
    /** Raw bytes per block: a power of two from 4 KiB to 64 KiB. */
    blockSize: z
      .number()
      .int()
      .refine((v) => v >= 4096 && v <= 65536 && (v & (v - 1)) === 0, 'must be a power of two from 4096 to 65536')
      .default(4096),
    /** Store a CRC after each block (upstream tools always do). */
    verify: z.boolean().default(true),
    /** Rewrite the header with the final index info, as `overlaybd-commit -z` does (flags 0x1B). */
    overwriteHeader: z.boolean().default(false),
    /** Compressing threads; the output bytes do not depend on it. */
    threads: z.number().int().min(1).max(256).default(1),
    /** Wrap the ZFile in the tar shell `-t` writes (pax header + overlaybd.commit). */
    tar: z.boolean().default(false),
    /** Replace an existing output file instead of failing with EEXIST. */
    force: z.boolean().default(false),
  })
  .strict();

export type CompressOptions = z.input<typeof CompressOptionsSchema>;

export const DecompressOptionsSchema = z.object({ force: z.boolean().default(false) }).strict();
export type DecompressOptions = z.input<typeof DecompressOptionsSchema>;

export interface CompressResult {
  /** Bytes read from the source. */
  rawSize: number;
  /** Size of the output file (including the tar wrapper, if any). */
  size: number;
}

/** A decoded header or trailer record (§3.2). */
export interface ZFileRecord {
  size: number;
  digest: number;
  flags: number;
  indexOffset: number;
  /** Number of blocks (jump-table entries), not bytes. */
  indexSize: number;
  originalFileSize: number;
  indexCrc: number;
  blockSize: number;
  algo: number;
  level: number;
  useDict: number;
  dictSize: number;
  verify: number;
}

export interface ZFileInfo {
  tar: { wrapped: boolean; pax: boolean; payloadOffset: number; payloadSize: number };
  header: ZFileRecord;
  trailer: ZFileRecord;
  /** True when the index info was taken from the header (flag 0x08). */
  headerOverwritten: boolean;
  algorithm: 'lz4' | 'zstd';
  verify: boolean;
  /** Size of the ZFile itself (the tar payload when wrapped). */
  fileSize: number;
  blockSize: number;
  blocks: number;
  /** Size of the decompressed content. */
  originalSize: number;
  indexOffset: number;
  /** Largest stored block (compressed bytes plus CRC). */
  maxStoredBlock: number;
}


/** Compresses `src` into a new ZFile `dst` (EEXIST if it exists, unless `force`). */
export async function compress(src: string, dst: string, options: CompressOptions = {}): Promise<CompressResult> {
  const s = argument(path, src, 'src');
  const d = argument(path, dst, 'dst');
  const o = argument(CompressOptionsSchema, options, 'zfile.compress options');
  return native().zfileCompress(s, d, o) as Promise<CompressResult>;
}

/** Writes the decompressed content of a ZFile (tar-wrapped or not) to a new file `dst`. */
export async function decompress(src: string, dst: string, options: DecompressOptions = {}): Promise<{ size: number }> {
  const s = argument(path, src, 'src');
  const d = argument(path, dst, 'dst');
  const o = argument(DecompressOptionsSchema, options, 'zfile.decompress options');
  return native().zfileDecompress(s, d, o) as Promise<{ size: number }>;
}

/** Checks every block's CRC and that it decompresses; rejects with the specific ZFILE_* code. */
export async function verify(file: string): Promise<void> {
  await native().zfileVerify(argument(path, file, 'path'));
}

/** Decoded tar wrapper, header and trailer of a ZFile. */
export async function info(file: string): Promise<ZFileInfo> {
  return native().zfileInfo(argument(path, file, 'path')) as Promise<ZFileInfo>;
}

interface NativeZFile {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}


/**
 * An opened ZFile: random reads of its decompressed content (safe to issue
 * concurrently). After close() reads reject and `size` throws, code CLOSED.
 */
export class ZFileReader {
  #n: NativeZFile;
  #closing: Promise<void> | undefined;

  /** @internal use open() */
  constructor(n: NativeZFile) {
    this.#n = n;
  }

  /** Size of the decompressed content. */
  get size(): number {
    return this.#n.size;
  }

  /** Reads up to `length` bytes at `offset` (short only at the end). */
  async read(offset: number, length: number): Promise<Buffer> {
    return this.#n.read(argument(u64, offset, 'offset'), argument(u64, length, 'length'));
  }

  /** Waits for the reads in flight (they resolve), then closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#n.close();
    return this.#closing;
  }

  [asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a ZFile (tar-wrapped or not) for random reads; header, trailer and jump table are validated first. */
export async function open(file: string): Promise<ZFileReader> {
  const n = (await native().zfileOpen(argument(path, file, 'path'))) as NativeZFile;
  return new ZFileReader(n);
}
