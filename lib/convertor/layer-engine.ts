/**
 * The native overlaybd engine for one layer: fetch the source blob, either
 * as a stream the apply reads (the default: decompression and both digest
 * checks happen natively as it flows) or staged on disk as layer.tar
 * (--stage-layers, and obdconv), then build: create a writable layer, apply
 * the tar (mkfs on the bottom layer), and commit it as tar(ZFile(LSMT))
 * with the chain-ID uuid.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { OverlaybdError } from '../errors.js';
import { decompressFile, detectCompression, type Compression, type LayerStream } from '../archive.js';
import { commitLayer, createLayer, type ZFileOptions } from '../layer.js';
import { sha256Hash, type RegistryClient, type RepoLocator } from '../registry/index.js';
import type { ApplyFn } from './apply.js';

const GiB = 1024 ** 3;

export const COMMIT_FILE = 'overlaybd.commit';

/** Counts bytes as they pass. */
class Counter extends Transform {
  bytes = 0;
  constructor(
    private readonly onBytes?: (n: number) => void,
    highWaterMark?: number,
  ) {
    super(highWaterMark ? { highWaterMark } : {});
  }
  override _transform(c: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += c.length;
    this.onBytes?.(this.bytes);
    cb(null, c);
  }
}

/** Reads the first bytes of a stream and hands back a stream that still yields them. */
async function peek(s: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = s[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const got: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    got.push(r.value);
    len += r.value.length;
  }
  const head = Buffer.concat(got);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head, stream: Readable.from(rest(), { objectMode: false }) };
}

export interface SourceLayer {
  /** Where the uncompressed layer tar went. */
  file: string;
  compression: Compression;
  /** Compressed bytes fetched. */
  bytes: number;
}

/**
 * Fetches a source layer into `dir`. The registry client checks the blob
 * digest and size as it streams; the uncompressed tar is checked against
 * `diffId` (zstd, which Node 20 cannot decompress, is decompressed natively
 * first). On any failure the partial file is removed.
 */
export async function downloadSourceLayer(
  client: RegistryClient,
  repo: RepoLocator,
  desc: { digest: string; size: number },
  diffId: string,
  dir: string,
  opts: { onBytes?: (n: number) => void; signal?: AbortSignal; what: string },
): Promise<SourceLayer> {
  const src = await client.fetchBlob(repo, desc, opts.signal ? { signal: opts.signal } : {});
  return saveSourceLayer(src, desc, diffId, dir, opts);
}

/**
 * Stores a source layer stream (any compression) in `dir` as `layer.tar`,
 * checked against `diffId`; also the path of blobs read from containerd's
 * content store (obdconv).
 */
export async function saveSourceLayer(
  src: Readable,
  desc: { digest: string; size: number },
  diffId: string,
  dir: string,
  opts: { onBytes?: (n: number) => void; signal?: AbortSignal; what: string },
): Promise<SourceLayer> {
  const counter = new Counter(opts.onBytes);
  const { head, stream } = await peek(src, 4);
  const compression = detectCompression(head);
  const file = path.join(dir, compression === 'zstd' ? 'layer.tar.zst' : 'layer.tar');
  const hash = sha256Hash();
  const hasher = new Transform({
    transform(c: Buffer, _e, cb) {
      hash.update(c);
      cb(null, c);
    },
  });
  const stages: NodeJS.ReadWriteStream[] = compression === 'gzip' ? [zlib.createGunzip(), hasher] : compression === 'none' ? [hasher] : [];
  try {
    await pipeline([stream, counter, ...stages, fs.createWriteStream(file)], opts.signal ? { signal: opts.signal } : {});
  } catch (e) {
    await fs.promises.rm(file, { force: true });
    src.destroy();
    if (e instanceof OverlaybdError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' || /incorrect header|invalid|unexpected end/i.test((e as Error).message)) {
      throw new OverlaybdError('GZIP_CORRUPT', `${opts.what}: gzip stream of ${desc.digest} is corrupt: ${(e as Error).message}`, { cause: e });
    }
    throw e;
  }
  let out = file;
  if (compression === 'zstd') {
    // Node 20 has no zstd: decompress natively, then hash the plain tar.
    out = path.join(dir, 'layer.tar');
    try {
      await decompressFile(file, out);
    } finally {
      await fs.promises.rm(file, { force: true });
    }
    for await (const c of fs.createReadStream(out)) hash.update(c as Buffer);
  }
  {
    const got = hash.digest();
    if (got !== diffId) {
      await fs.promises.rm(out, { force: true });
      throw new OverlaybdError(
        'DIGEST_MISMATCH',
        `${opts.what}: the uncompressed tar of ${desc.digest} hashes to ${got}, but the config's diff_id is ${diffId}`,
      );
    }
  }
  return { file: out, compression, bytes: counter.bytes };
}

/**
 * Compressed bytes of a source layer may run ahead of its apply by this much
 * (while the layers below apply); then the fetch pauses. Bounds memory at
 * this times the download concurrency.
 */
export const READ_AHEAD_BYTES = 16 * 1024 * 1024;

export interface StreamedSourceLayer extends LayerStream {
  /** Resolves with the compressed byte count once the last byte is received (not yet applied). */
  received: Promise<number>;
}

/**
 * Starts fetching a source layer into a bounded read-ahead buffer; the
 * apply reads `body` and checks both digests natively at its end (a
 * mismatch fails the layer before its commit). The registry client checks
 * only the size: hashing the blob here as well put a second sha256 of it
 * on the event loop that feeds the apply (bookworm's convert step took
 * 1.05 s with it, 0.96 s without).
 */
export async function fetchSourceStream(
  client: RegistryClient,
  repo: RepoLocator,
  desc: { digest: string; size: number },
  diffId: string,
  opts: { onBytes?: (n: number) => void; signal?: AbortSignal; what: string },
): Promise<StreamedSourceLayer> {
  const src = await client.fetchBlob(repo, desc, { verify: false, ...(opts.signal ? { signal: opts.signal } : {}) });
  const body = new Counter(opts.onBytes, READ_AHEAD_BYTES / 2);
  const received = pipeline([src, body], opts.signal ? { signal: opts.signal } : {}).then(() => body.bytes);
  received.catch(() => {});
  return { body, received, digest: desc.digest, diffId, what: opts.what };
}

/** Fetches an already converted layer (digest-checked) so later layers can be applied on top of it. */
export async function downloadConvertedLayer(
  client: RegistryClient,
  repo: RepoLocator,
  desc: { digest: string; size: number },
  dir: string,
  opts: { onBytes?: (n: number) => void; signal?: AbortSignal },
): Promise<string> {
  const file = path.join(dir, COMMIT_FILE);
  const src = await client.fetchBlob(repo, desc, opts.signal ? { signal: opts.signal } : {});
  try {
    await pipeline([src, new Counter(opts.onBytes), fs.createWriteStream(file)], opts.signal ? { signal: opts.signal } : {});
  } catch (e) {
    await fs.promises.rm(file, { force: true });
    throw e;
  }
  return file;
}

export interface BuildRequest {
  dir: string;
  /** Committed files of the layers below, bottom first. */
  lowers: string[];
  /** The source layer: a staged file (removed unless `keep`) or a stream. */
  input: string | LayerStream;
  /** Layer 0: make the filesystem. */
  bottom: boolean;
  vsizeGB: number;
  sparse: boolean;
  uuid: string;
  parentUuid?: string;
  zfile: ZFileOptions;
  apply: ApplyFn;
  onProgress?: (tarBytes: number) => void;
  /** Keep the tar and the writable files (--reserve). */
  keep: boolean;
}

/** Builds `<dir>/overlaybd.commit` and returns its path. */
export async function buildLayer(r: BuildRequest): Promise<string> {
  const data = path.join(r.dir, 'writable_data');
  const index = path.join(r.dir, 'writable_index');
  const out = path.join(r.dir, COMMIT_FILE);
  await fs.promises.rm(data, { force: true });
  await fs.promises.rm(index, { force: true });
  // Every layer gets the device size: the stack is as large as its bottom.
  await createLayer({ data, index, virtualSize: r.vsizeGB * GiB, sparse: r.sparse });
  await r.apply({
    lowers: r.lowers,
    upper: { data, index },
    input: r.input,
    ...(r.bottom ? { mkfsVsizeGB: r.vsizeGB } : {}),
    ...(r.onProgress ? { onProgress: r.onProgress } : {}),
  });
  await commitLayer({
    data,
    index,
    out,
    uuid: r.uuid,
    ...(r.parentUuid ? { parentUuid: r.parentUuid } : {}),
    zfile: r.zfile,
    tar: true,
    force: true,
    // Both files are intermediates: the writable layer is deleted now, the
    // commit once uploaded, and a crash restarts the conversion anyway, so
    // an fsync would only wait for the disk (0.1 s of bookworm's apply).
    sync: false,
  });
  if (!r.keep) {
    const staged = typeof r.input === 'string' ? [r.input] : [];
    await Promise.all([data, index, ...staged].map((f) => fs.promises.rm(f, { force: true })));
  }
  return out;
}
