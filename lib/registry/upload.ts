/**
 * Blob uploads: existence check, cross-repository mount, monolithic
 * POST+PUT, one PATCH streamed from a file, and chunked PATCH uploads; the
 * PATCHes resume from the registry's reported offset, and an upload restarts
 * when its session is lost.
 */
import fs from 'node:fs';
import { PassThrough, Readable, pipeline } from 'node:stream';
import { OverlaybdError, isOverlaybdError } from '../errors.js';
import { repoScope } from './auth.js';
import type { RegistryClient, RepoLocator } from './client.js';
import { createDigestHash, digestLike } from './digest.js';
import { validateDigest, validateRepository } from './reference.js';
import { RetryableError, withRetry } from './retry.js';
import { drain } from './transport.js';
import { RegistryHttpError } from './http-errors.js';

/**
 * What to upload: bytes, a file, a factory that opens the content at an
 * offset (restartable), or a one-shot stream (uploaded in chunks; a lost
 * upload session cannot be restarted).
 */
export type BlobSource =
  | Uint8Array
  | { file: string }
  | { open: (offset: number) => Readable; size?: number }
  | Readable;

export interface PushResult {
  /** `exists`: the repository had it; `mounted`: cross-repository mount; `uploaded`; `not-mounted`: no source was given and no mount worked. */
  status: 'exists' | 'mounted' | 'uploaded' | 'not-mounted';
  digest: string;
  /** The repository it was mounted from. */
  from?: string;
}

export interface UploadOptions {
  mountFrom?: string | string[];
  chunked?: boolean;
  skipExistsCheck?: boolean;
  signal?: AbortSignal;
}

function sourceSize(source: BlobSource): number | undefined {
  if (source instanceof Uint8Array) return source.length;
  if (source instanceof Readable) return undefined;
  if ('file' in source) return fs.statSync(source.file).size;
  return source.size;
}

function restartable(source: BlobSource): boolean {
  return !(source instanceof Readable);
}

function openAt(source: BlobSource, offset: number): Readable {
  if (source instanceof Uint8Array) return Readable.from([Buffer.from(source.buffer, source.byteOffset + offset, source.length - offset)]);
  if (source instanceof Readable) {
    if (offset !== 0) throw new OverlaybdError('INTERNAL', 'a one-shot stream cannot be reopened');
    return source;
  }
  if ('file' in source) return fs.createReadStream(source.file, { start: offset });
  return source.open(offset);
}

/**
 * A request body of `source` from `offset`, opened per attempt. pipeline,
 * not pipe: when the transport destroys the body (request error, early
 * 401/5xx) the source stream is destroyed too and a file's fd closed. The
 * transport sees any error through the body.
 */
function bodyAt(source: BlobSource, offset: number): () => Readable {
  return () => pipeline(openAt(source, offset), new PassThrough(), () => {});
}

/** Reads a stream in fixed-size pieces. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private done = false;

  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  async read(n: number): Promise<Buffer> {
    while (this.pendingBytes < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }

  close(): void {
    this.stream.destroy();
  }
}

function isRetryableUploadError(e: unknown): boolean {
  if (!isOverlaybdError(e)) return false;
  return (
    e.code === 'REGISTRY_UNREACHABLE' ||
    e.code === 'REGISTRY_ERROR' ||
    e.code === 'REGISTRY_RATE_LIMITED' ||
    // A 404 on the upload session's own URL: the session is gone, restart it.
    (e.code === 'REGISTRY_NOT_FOUND' &&
      e instanceof RegistryHttpError &&
      (e.said('BLOB_UPLOAD_UNKNOWN') || e.url.pathname.includes('uploads/')))
  );
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.append('digest', digest);
  return u.href;
}

class Uploader {
  private readonly pushScopes: string[];
  private readonly where: string;

  constructor(
    private readonly c: RegistryClient,
    private readonly repo: RepoLocator,
    private readonly digest: string,
    private readonly size: number | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.pushScopes = [repoScope(repo.repository, 'pull', 'push')];
    this.where = `${repo.registry}/${repo.repository}@${digest}`;
  }

  /** The push host, for messages (read when one is made: the registry's hosts are read by then). */
  private get base(): string {
    return this.c.baseUrl(this.repo.registry, 'push');
  }

  private sig(): { signal?: AbortSignal } {
    return this.signal ? { signal: this.signal } : {};
  }

  private location(res: { headers: Record<string, string | string[] | undefined>; url: URL }, what: string): string {
    const loc = res.headers.location;
    if (typeof loc !== 'string' || loc.length === 0) {
      throw new OverlaybdError('REGISTRY_ERROR', `registry ${this.base}: ${what}: response has no Location header`);
    }
    return new URL(loc, res.url).href;
  }

  /** Tries `POST ?mount=&from=`. Returns 'mounted' or the upload location the registry opened instead. */
  async mount(from: string): Promise<'mounted' | string> {
    validateRepository(from);
    const what = `mount blob ${this.where} from ${from}`;
    const res = await this.c.send({
      repo: this.repo,
      what,
      method: 'POST',
      path: `/v2/${this.repo.repository}/blobs/uploads/?mount=${encodeURIComponent(this.digest)}&from=${encodeURIComponent(from)}`,
      scopes: [...this.pushScopes, repoScope(from, 'pull')],
      ok: [201, 202],
      ...this.sig(),
    });
    await drain(res);
    if (res.status === 201) return 'mounted';
    return this.location(res, what);
  }

  async start(): Promise<string> {
    const what = `start upload ${this.where}`;
    const res = await this.c.send({
      repo: this.repo,
      what,
      method: 'POST',
      path: `/v2/${this.repo.repository}/blobs/uploads/`,
      scopes: this.pushScopes,
      ok: [202],
      ...this.sig(),
    });
    await drain(res);
    return this.location(res, what);
  }

  async cancel(location: string): Promise<void> {
    try {
      const res = await this.c.send({
        repo: this.repo,
        what: `cancel upload ${this.where}`,
        method: 'DELETE',
        path: location,
        scopes: this.pushScopes,
        ok: [200, 202, 204, 404],
        retry: false,
      });
      await drain(res);
    } catch (e) {
      this.c.logger.debug('upload.cancel.failed', { where: this.where, error: (e as Error).message });
    }
  }

  /**
   * The number of bytes the registry holds for an upload session (GET on its
   * location). `Range: 0-0` says 0 bytes or 1 (docker-registry answers it for
   * an empty session): `unsure` is set and the offset is 1.
   */
  async status(location: string): Promise<{ offset: number; location: string; unsure: boolean }> {
    const what = `upload status ${this.where}`;
    const res = await this.c.send({
      repo: this.repo,
      what,
      method: 'GET',
      path: location,
      scopes: this.pushScopes,
      ok: [204],
      ...this.sig(),
    });
    await drain(res);
    const range = String(res.headers.range ?? '');
    const m = /^(?:bytes=)?0-(-?\d+)$/.exec(range);
    const offset = m ? Number(m[1]) + 1 : 0;
    const loc = typeof res.headers.location === 'string' ? new URL(res.headers.location, res.url).href : location;
    return { offset, location: loc, unsure: m?.[1] === '0' };
  }

  async commit(location: string, body?: Uint8Array | (() => Readable), length?: number): Promise<void> {
    const what = `commit upload ${this.where}`;
    const res = await this.c.send({
      repo: this.repo,
      what,
      method: 'PUT',
      path: withDigest(location, this.digest),
      headers: {
        'Content-Type': 'application/octet-stream',
        ...(length !== undefined ? { 'Content-Length': String(length) } : {}),
      },
      ...(body !== undefined ? { body } : {}),
      scopes: this.pushScopes,
      ok: [201, 204],
      // A PUT consumes the session: a retry needs a new one (see uploadBlob).
      retry: false,
      ...this.sig(),
    });
    await drain(res);
    const said = res.headers['docker-content-digest'];
    if (typeof said === 'string' && said !== this.digest) {
      throw new OverlaybdError('DIGEST_MISMATCH', `registry ${this.base}: ${what}: registry stored ${said}`);
    }
  }

  /**
   * One PUT with the whole content. Bytes in memory are hashed first; a file
   * or stream is sent as it is read, and the registry checks it against the
   * `?digest=` of the PUT, refusing the commit on a mismatch.
   */
  async monolithic(location: string, source: BlobSource, size: number): Promise<void> {
    let body: Uint8Array | (() => Readable);
    if (source instanceof Uint8Array) {
      const got = digestLike(this.digest, source);
      if (got !== this.digest) {
        throw new OverlaybdError('DIGEST_MISMATCH', `upload ${this.where}: the source bytes hash to ${got}`);
      }
      body = source;
    } else {
      body = bodyAt(source, 0);
    }
    if (body instanceof Uint8Array) await this.commit(location, body, size);
    else await this.checkedCommit(location, body, size);
    this.c.stats.bytesUploaded += size;
  }

  /** A commit whose bytes the registry alone checks: its refusal of them is DIGEST_MISMATCH. */
  private async checkedCommit(location: string, body?: () => Readable, length?: number): Promise<void> {
    try {
      await this.commit(location, body, length);
    } catch (e) {
      if (e instanceof RegistryHttpError && e.said('DIGEST_INVALID', 'SIZE_INVALID')) {
        throw new OverlaybdError('DIGEST_MISMATCH', `upload ${this.where}: the registry refused the content (${e.message})`, { cause: e });
      }
      throw e;
    }
  }

  /**
   * PATCH bytes [start, end) of the blob, `body(offset)` giving them from
   * `offset` on; on failure, ask where the registry stands and resend the
   * rest. Resolves the session's next location.
   */
  async patch(location: string, start: number, end: number, body: (offset: number) => Uint8Array | (() => Readable)): Promise<string> {
    let sent = 0;
    let loc = location;
    const range = () => `${this.where} bytes ${start + sent}-${end - 1}`;
    return withRetry(
      this.c.retry,
      async (n) => {
        if (n > 1) {
          // Throws when the session is gone; the caller then restarts the upload.
          const st = await this.status(loc);
          if (st.unsure && start === 0) {
            // Resending from a guessed offset would shift the blob by a byte
            // at a registry that ignores Content-Range (docker-registry
            // does): this part is the whole upload so far, so start afresh.
            await this.cancel(st.location);
            loc = await this.start();
            sent = 0;
          } else {
            if (st.offset < start || st.offset > end) {
              throw new OverlaybdError('REGISTRY_ERROR', `registry ${this.base}: upload ${range()}: upload session is at byte ${st.offset}, outside this part`);
            }
            sent = st.offset - start;
            loc = st.location;
            if (start + sent === end) return loc;
          }
        }
        const what = `upload ${range()}`;
        const length = end - start - sent;
        try {
          const res = await this.c.send({
            repo: this.repo,
            what,
            method: 'PATCH',
            path: loc,
            headers: {
              'Content-Type': 'application/octet-stream',
              'Content-Range': `${start + sent}-${end - 1}`,
              'Content-Length': String(length),
            },
            body: body(start + sent),
            scopes: this.pushScopes,
            ok: [202, 204],
            retry: false,
            ...this.sig(),
          });
          await drain(res);
          this.c.stats.bytesUploaded += length;
          return this.location(res, what);
        } catch (e) {
          throw isRetryableUploadError(e) && !this.signal?.aborted ? new RetryableError(e) : e;
        }
      },
      { ...this.sig(), onRetry: ({ attempt, reason }) => this.retried(`upload ${range()}`, attempt, reason) },
    );
  }

  /**
   * A sized source that can be read again from any offset (a file): one
   * PATCH streaming all of it, then the PUT that commits it, which the
   * registry checks against its `?digest=`. A PATCH that fails resumes at
   * the offset the registry reports, so a multi-GB layer does not start
   * over. One request instead of 16 MiB PATCHes: 94 MB to docker-registry
   * took 0.53-0.83 s against 0.86-1.34 s.
   */
  async streamed(location: string, source: BlobSource, size: number): Promise<void> {
    const loc = await this.patch(location, 0, size, (offset) => bodyAt(source, offset));
    await this.checkedCommit(loc);
  }

  retried(what: string, attempt: number, reason: string): void {
    this.c.stats.retries++;
    this.c.logger.debug('retry', { what, attempt, reason });
  }

  async chunked(location: string, source: BlobSource, chunkSize: number): Promise<void> {
    const reader = new ChunkReader(openAt(source, 0));
    const hash = createDigestHash(this.digest);
    let offset = 0;
    let loc = location;
    try {
      for (;;) {
        const chunk = await reader.read(chunkSize).catch((e: unknown) => {
          throw isOverlaybdError(e)
            ? e
            : new OverlaybdError('EIO', `upload ${this.where}: reading the source at byte ${offset}: ${(e as Error).message}`, { cause: e });
        });
        if (chunk.length === 0) break;
        hash.update(chunk);
        if (this.size !== undefined && offset + chunk.length > this.size) {
          throw new OverlaybdError('DIGEST_MISMATCH', `upload ${this.where}: the source is longer than ${this.size} bytes`);
        }
        loc = await this.patch(loc, offset, offset + chunk.length, (at) => chunk.subarray(at - offset));
        offset += chunk.length;
      }
    } catch (e) {
      reader.close();
      if (isOverlaybdError(e, 'DIGEST_MISMATCH')) await this.cancel(loc);
      throw e;
    }
    const algo = this.digest.slice(0, this.digest.indexOf(':'));
    const got = `${algo}:${hash.digest('hex')}`;
    if ((this.size !== undefined && offset !== this.size) || got !== this.digest) {
      await this.cancel(loc);
      throw new OverlaybdError(
        'DIGEST_MISMATCH',
        `upload ${this.where}: the source gave ${offset} bytes hashing to ${got}${this.size !== undefined ? ` (expected ${this.size} bytes)` : ''}`,
      );
    }
    await this.commit(loc);
  }
}

export async function uploadBlob(
  c: RegistryClient,
  repo: RepoLocator,
  desc: { digest: string; size?: number },
  source: BlobSource | undefined,
  opts: UploadOptions,
): Promise<PushResult> {
  validateRepository(repo.repository);
  validateDigest(desc.digest);
  const digest = desc.digest;
  const size = desc.size ?? (source !== undefined ? sourceSize(source) : undefined);
  const up = new Uploader(c, repo, digest, size, opts.signal);
  if (!opts.skipExistsCheck) {
    const have = await c.statBlob(repo, digest, { forPush: true, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (have !== undefined) {
      c.stats.blobsExisting++;
      return { status: 'exists', digest };
    }
  }
  const froms = (Array.isArray(opts.mountFrom) ? opts.mountFrom : opts.mountFrom ? [opts.mountFrom] : []).filter(
    (f) => f !== repo.repository,
  );
  let location: string | undefined;
  for (let i = 0; i < froms.length; i++) {
    const from = froms[i]!;
    const r = await up.mount(from);
    if (r === 'mounted') {
      c.stats.blobMounts++;
      c.logger.debug('blob.mounted', { repo: repo.repository, digest, from });
      return { status: 'mounted', digest, from };
    }
    if (i < froms.length - 1 || source === undefined) await up.cancel(r);
    else location = r;
  }
  if (source === undefined) return { status: 'not-mounted', digest };
  // Small sources in one PUT. Larger files (any source that can be read
  // again from an offset): one resumable PATCH. Bytes in memory and one-shot
  // streams: chunks, hashed as they go so a wrong source is refused before
  // the commit.
  const mode =
    opts.chunked === true || size === undefined
      ? 'chunked'
      : size <= c.monolithicMax
        ? 'monolithic'
        : source instanceof Uint8Array || !restartable(source)
          ? 'chunked'
          : 'streamed';
  return withRetry(
    c.retry,
    async () => {
      try {
        location ??= await up.start();
        if (mode === 'chunked') await up.chunked(location, source, c.chunkSize);
        else if (mode === 'streamed') await up.streamed(location, source, size!);
        else await up.monolithic(location, source, size!);
        c.stats.blobUploads++;
        return { status: 'uploaded', digest } as const;
      } catch (e) {
        const lost = location;
        location = undefined;
        if (!restartable(source) || !isRetryableUploadError(e) || opts.signal?.aborted) throw e;
        // A new session for the next attempt; this one is dropped.
        if (lost) await up.cancel(lost);
        throw new RetryableError(e);
      }
    },
    { ...(opts.signal ? { signal: opts.signal } : {}), onRetry: ({ attempt, reason }) => up.retried(`upload ${repo.repository}@${digest}`, attempt, reason) },
  );
}
