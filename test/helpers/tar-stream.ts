/**
 * Writes big generated tar layers as a stream (tar -> gzip -> file), never
 * holding a file's content: the flat-memory tests need layers of many GB
 * whose gzip blobs stay small. File content is a 1 MiB pattern (a seeded
 * random 4 KiB block repeated) stamped with the file and MiB index, so no
 * two MiB are equal, yet gzip -1 shrinks it about 48 times.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { ustarHeader } from '../../lib/ustar.js';
import { Prng } from './prng.js';

export type GenEntry =
  | { type: 'dir'; path: string }
  | { type: 'file'; path: string; size: number; seed: number }
  | { type: 'whiteout'; path: string };

const MiB = 1 << 20;
const MTIME = 1_700_000_000;

const header = (name: string, size: number, mode: number, typeflag: string) =>
  ustarHeader({ name, size, mode, typeflag, mtime: MTIME });

/** The content of a generated file, one MiB (or less, at the end) at a time. */
export function* fileChunks(size: number, seed: number): Generator<Buffer> {
  const block = new Prng(seed).bytes(4096);
  // A small file needs only its own size of pattern.
  const pattern = Buffer.allocUnsafe(Math.min(MiB, Math.ceil(Math.max(size, 8) / 4096) * 4096));
  for (let i = 0; i < pattern.length; i += 4096) block.copy(pattern, i);
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    pattern.writeUInt32LE(seed >>> 0, 0);
    pattern.writeUInt32LE(i, 4);
    yield off + MiB <= size ? pattern : pattern.subarray(0, size - off);
  }
}

async function put(out: Writable, b: Buffer): Promise<void> {
  if (!out.write(b)) await once(out, 'drain');
}

export interface WrittenLayer {
  /** The gzip blob. */
  file: string;
  /** sha256 of the uncompressed tar (the diff_id), `sha256:` prefixed. */
  diffId: string;
  /** sha256 of the gzip blob. */
  digest: string;
  size: number;
  tarBytes: number;
  /** sha256 hex of each regular file's content, by path. */
  files: Record<string, string>;
}

/** Streams `entries` as a gzip (level 1) tar layer into `file`. */
export async function writeGzipLayer(file: string, entries: Iterable<GenEntry>): Promise<WrittenLayer> {
  const gz = zlib.createGzip({ level: 1 });
  const sink = fs.createWriteStream(file);
  const blobHash = createHash('sha256');
  let size = 0;
  gz.on('data', (c: Buffer) => {
    blobHash.update(c);
    size += c.length;
  });
  gz.pipe(sink);
  const tarHash = createHash('sha256');
  let tarBytes = 0;
  const emit = async (b: Buffer) => {
    tarHash.update(b);
    tarBytes += b.length;
    await put(gz, b);
  };
  const files: Record<string, string> = {};
  for (const e of entries) {
    if (e.type === 'dir') await emit(header(e.path.endsWith('/') ? e.path : e.path + '/', 0, 0o755, '5'));
    else if (e.type === 'whiteout') await emit(header(e.path, 0, 0o644, '0'));
    else {
      await emit(header(e.path, e.size, 0o644, '0'));
      const h = createHash('sha256');
      for (const c of fileChunks(e.size, e.seed)) {
        h.update(c);
        await emit(Buffer.from(c));
      }
      files[e.path] = h.digest('hex');
      const pad = (512 - (e.size % 512)) % 512;
      if (pad) await emit(Buffer.alloc(pad));
    }
  }
  await emit(Buffer.alloc(1024));
  gz.end();
  await once(sink, 'close');
  return { file, diffId: 'sha256:' + tarHash.digest('hex'), digest: 'sha256:' + blobHash.digest('hex'), size, tarBytes, files };
}
