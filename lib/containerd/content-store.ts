/**
 * containerd's content store over gRPC: Info, label Update, and Write as
 * containerd's remote writer streams it (STAT, WRITE chunks, COMMIT with
 * the expected size and digest; each message answered before the next),
 * and Read as a stream of chunks.
 */
import * as grpc from '@grpc/grpc-js';
import { OverlaybdError } from '../errors.js';
import { isGrpcStatus, type ContainerdConnection, type ContainerdError } from './connection.js';

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

/** What the store is asked to hold: a blob's digest and size. */
export interface BlobRef {
  digest: string;
  size: number;
}

/** Bytes per WRITE message (gRPC's default limit is 4 MiB a message). */
const CHUNK = 1 << 20;

interface RawInfo {
  info?: { digest: string; size: string; labels?: Record<string, string> };
}

/** The blob's info, or undefined when the namespace does not hold it. */
export async function contentInfo(conn: ContainerdConnection, digest: string): Promise<ContentInfo | undefined> {
  try {
    const r = await conn.call<RawInfo>('content', 'Info', { digest }, digest);
    if (!r.info) return undefined;
    return { digest: r.info.digest, size: Number(r.info.size), labels: r.info.labels ?? {} };
  } catch (e) {
    if (isGrpcStatus(e, grpc.status.NOT_FOUND)) return undefined;
    throw e;
  }
}

/** Sets `labels` on a blob (other labels stay), as content.Update with `labels.<key>` field paths. */
export async function updateContentLabels(conn: ContainerdConnection, digest: string, labels: Record<string, string>): Promise<void> {
  const keys = Object.keys(labels);
  if (keys.length === 0) return;
  await conn.call('content', 'Update', { info: { digest, labels }, updateMask: { paths: keys.map((k) => `labels.${k}`) } }, digest);
}

/** One request in flight at a time on a Write stream: send a message, await its answer. */
class WriteSession {
  private readonly answers: unknown[] = [];
  private waiter: { resolve: (v: unknown) => void; reject: (e: unknown) => void } | undefined;
  private failure: unknown;
  private ended = false;

  constructor(private readonly stream: grpc.ClientDuplexStream<unknown, unknown>) {
    stream.on('data', (m: unknown) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve(m);
      } else this.answers.push(m);
    });
    stream.on('error', (e: unknown) => this.fail(e));
    stream.on('end', () => {
      this.ended = true;
      this.fail(Object.assign(new Error('content.Write stream ended early'), { code: grpc.status.INTERNAL }));
    });
  }

  private fail(e: unknown): void {
    if (this.failure === undefined) this.failure = e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }

  request(msg: object): Promise<unknown> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.stream.write(msg);
    if (this.answers.length > 0) return Promise.resolve(this.answers.shift());
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Ends a finished stream; cancels an abandoned one so containerd drops its lock on the ref. */
  close(finished: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (finished) this.stream.end();
    else this.stream.cancel();
  }
}

/** Yields `source` in pieces of at most CHUNK bytes. */
async function* chunks(source: AsyncIterable<Buffer | Uint8Array> | Buffer): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(source)) {
    for (let o = 0; o < source.length; o += CHUNK) yield source.subarray(o, o + CHUNK);
    return;
  }
  for await (const c of source) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c);
    for (let o = 0; o < b.length; o += CHUNK) yield b.subarray(o, o + CHUNK);
  }
}

/**
 * Writes a blob under `ref` (containerd's `layer-sha256:...` style key) and
 * commits it with the expected size and digest, which containerd checks,
 * and `labels` (set only when this call writes the blob). Resolves 'exists'
 * when the namespace holds the blob already (the source is then not read).
 */
export async function writeContent(
  conn: ContainerdConnection,
  ref: string,
  blob: BlobRef,
  source: AsyncIterable<Buffer | Uint8Array> | Buffer | (() => Promise<AsyncIterable<Buffer | Uint8Array>>),
  labels?: Record<string, string>,
): Promise<'written' | 'exists'> {
  const session = new WriteSession(conn.duplex('content', 'Write'));
  const commit = { action: 'COMMIT', ref, total: blob.size, expected: blob.digest, ...(labels ? { labels } : {}) };
  let offset = 0;
  try {
    if (Buffer.isBuffer(source) && source.length === blob.size && source.length <= CHUNK) {
      // A document (manifest, config): one message that opens, writes and commits, as
      // containerd's content service takes a COMMIT with data; a round trip, not three.
      await session.request({ ...commit, offset: 0, data: source });
      session.close(true);
      return 'written';
    }
    await session.request({ action: 'STAT', ref, total: blob.size, expected: blob.digest });
    const data = typeof source === 'function' ? await source() : source;
    for await (const c of chunks(data)) {
      await session.request({ action: 'WRITE', ref, offset, data: c });
      offset += c.length;
    }
    if (offset !== blob.size) {
      throw new OverlaybdError('DIGEST_MISMATCH', `content ${blob.digest}: source gave ${offset} bytes, want ${blob.size}`);
    }
    await session.request({ ...commit, offset });
    session.close(true);
    return 'written';
  } catch (e) {
    session.close(false);
    // The source's own failures (a registry error, an abort) pass through as they are.
    const grpcFailure = typeof (e as { code?: unknown })?.code === 'number';
    const err = grpcFailure ? conn.error('content.Write', blob.digest, e) : e;
    if (grpcFailure && (err as ContainerdError).grpcCode === grpc.status.ALREADY_EXISTS) return 'exists';
    // Drop the partial ingest: a later pull starts over rather than resuming.
    await conn.call('content', 'Abort', { ref }, ref).catch(() => {});
    throw err;
  }
}

/**
 * Streams a blob out of the content store (content.Read). A blob the
 * namespace lacks fails with the gRPC NOT_FOUND ContainerdError.
 */
export async function* readContent(conn: ContainerdConnection, digest: string): AsyncGenerator<Buffer> {
  const stream = conn.serverStream('content', 'Read', { digest, offset: 0, size: 0 });
  let done = false;
  try {
    for await (const m of stream as AsyncIterable<{ data?: Buffer }>) {
      if (m.data && m.data.length > 0) yield Buffer.from(m.data);
    }
    done = true;
  } catch (e) {
    throw typeof (e as { code?: unknown })?.code === 'number' ? conn.error('content.Read', digest, e) : e;
  } finally {
    // A consumer that stopped early: end the call so the stream's resources go.
    if (!done) stream.cancel();
  }
}

/** A small blob (manifest, index, config) read whole; its size must be `size` and at most `limit` bytes. */
export async function readContentBytes(conn: ContainerdConnection, blob: BlobRef, limit = 16 << 20): Promise<Buffer> {
  if (blob.size > limit) throw new OverlaybdError('CONFIG_INVALID', `content ${blob.digest}: ${blob.size} bytes, more than the ${limit} a document may have`);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of readContent(conn, blob.digest)) {
    n += c.length;
    if (n > blob.size) break;
    parts.push(c);
  }
  if (n !== blob.size) throw new OverlaybdError('DIGEST_MISMATCH', `content ${blob.digest}: read ${n} bytes, the descriptor says ${blob.size}`);
  return Buffer.concat(parts);
}
