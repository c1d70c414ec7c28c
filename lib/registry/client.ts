/**
 * The OCI distribution client: manifests, blobs (verified streams, ranges,
 * uploads, cross-repository mounts), with auth and retries.
 */
import fs from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { OverlaybdError } from '../errors.js';
import { Authorizer, repoScope } from './auth.js';
import { credentialProvider, type CredentialOptions, type CredentialProvider } from './credentials.js';
import { createDigestHash, digestLike } from './digest.js';
import { defaultHost, registryHosts, type HostCapability, type RegistryHost } from './hosts-dir.js';
import { statusError } from './http-errors.js';
import { silentLogger, type Logger } from '../log.js';
import { MANIFEST_ACCEPT, detectManifestMediaType } from './media-types.js';
import { apiHost, formatReference, parseReference, validateDigest, validateRepository, validateTag, type Reference } from './reference.js';
import { RetryableError, parseRetryAfter, resolveRetryPolicy, withRetry, type RetryPolicy, type RetryPolicyInput } from './retry.js';
import { Transport, drain, header, isConnectionError, readBody, type HttpResponse, type TransportOptions } from './transport.js';
import { uploadBlob, type BlobSource, type PushResult } from './upload.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

/** A repository in a registry; a parsed Reference is one too. */
export interface RepoLocator {
  readonly registry: string;
  readonly repository: string;
}

export interface RegistryClientOptions {
  transport?: TransportOptions;
  /** Options for the default provider (explicit `user:pass`, Docker config.json), or a provider. */
  credentials?: CredentialOptions | CredentialProvider;
  retry?: RetryPolicyInput;
  logger?: Logger;
  /** Size of each PATCH of a chunked upload (default 16 MiB). */
  chunkSize?: number;
  /** Sources up to this size (when known) go in one PUT (default 32 MiB); larger files in one resumable PATCH, other large or unsized ones in chunks. */
  monolithicMax?: number;
  /** containerd's hosts directory (`ctr --hosts-dir`): mirrors, servers and their TLS per registry (hosts-dir.ts). */
  hostsDir?: string;
}

export interface RegistryStats {
  requests: Record<string, number>;
  retries: number;
  authRetries: number;
  blobUploads: number;
  blobMounts: number;
  blobsExisting: number;
  bytesUploaded: number;
  bytesDownloaded: number;
}

/** One request, as `send()` takes it. */
export interface Op {
  repo: RepoLocator;
  /** Operation in words, for errors and logs: `pull manifest host/repo:tag`. */
  what: string;
  method: string;
  /** A path under the registry (`/v2/...`) or an absolute URL (an upload Location). */
  path: string;
  headers?: Record<string, string>;
  /** A byte body is resent on retries; a factory is called again for each attempt. */
  body?: Uint8Array | (() => Readable);
  scopes: string[];
  /** Statuses handed back to the caller; everything else becomes an error. */
  ok: number[];
  /** Retry connection errors, 5xx and 429 (default true). */
  retry?: boolean;
  signal?: AbortSignal;
  /** A tag resolved to a digest: only hosts trusted to `resolve` answer it (default: pull, or push when a scope pushes). */
  resolve?: boolean;
}

/** A host a request goes to: where, and the name its auth and credentials are kept under. */
interface Endpoint {
  host: RegistryHost;
  base: string;
  authKey: string;
  /** `?ns=<registry>` for a host that is not the registry itself (a mirror), as containerd sends. */
  ns?: string;
}

/** What a request asks of a host (hosts.toml's capabilities). */
function capabilityOf(op: Op): HostCapability {
  if (op.scopes.some((s) => /:[^:]*push[^:]*$/.test(s)) || !(op.method === 'GET' || op.method === 'HEAD')) return 'push';
  return op.resolve ? 'resolve' : 'pull';
}

/** What is left of a chunk once `skip.bytes` are dropped from the front of a body (a registry that ignored Range). */
function skipFront(b: Buffer, skip: { bytes: number }): Buffer {
  if (skip.bytes === 0) return b;
  const k = Math.min(skip.bytes, b.length);
  skip.bytes -= k;
  return b.subarray(k);
}

/** Statuses after which a GET or HEAD goes on at Location. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/**
 * Follows a GET's or HEAD's redirects, as containerd's resolver does (Go's
 * client): registries send blob reads to their storage (Docker Hub, GHCR,
 * ECR, docker-registry on S3). The Authorization header goes to the
 * registry's own origin only; a storage URL carries its own signature.
 */
async function followRedirects(
  res: HttpResponse,
  headers: Record<string, string>,
  request: (u: URL, h: Record<string, string>) => Promise<HttpResponse>,
  what: string,
): Promise<HttpResponse> {
  const origin = res.url.origin;
  for (let hops = 0; REDIRECTS.has(res.status); hops++) {
    const location = header(res, 'location');
    await drain(res);
    const at = `${what}: ${res.url.href} answered ${res.status}`;
    if (!location) throw new OverlaybdError('REGISTRY_ERROR', `${at} without a Location`);
    if (hops === MAX_REDIRECTS) throw new OverlaybdError('REGISTRY_ERROR', `${at}: more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(location, res.url);
    } catch {
      throw new OverlaybdError('REGISTRY_ERROR', `${at} with a bad Location "${location}"`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new OverlaybdError('REGISTRY_ERROR', `${at} with a Location that is not http(s): ${next.href}`);
    const h = { ...headers };
    if (next.origin !== origin) delete h.Authorization;
    res = await request(next, h);
  }
  return res;
}

/** Ends a blob relay whose reader destroyed the stream. */
class ReaderGone extends Error {}

/** Resolves when `s` may take more data, when it is destroyed, or when `signal` aborts. */
function drained(s: PassThrough, signal?: AbortSignal): Promise<void> {
  if (s.destroyed) return Promise.resolve(); // 'close' has fired already
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export class RegistryClient {
  readonly transport: Transport;
  readonly auth: Authorizer;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly chunkSize: number;
  readonly monolithicMax: number;
  private readonly hostsDir: string | undefined;
  /** Per registry: its hosts, or their reading while it runs. */
  private readonly hostsCache = new Map<string, Endpoint[] | Promise<Endpoint[]>>();
  readonly stats: RegistryStats = {
    requests: {},
    retries: 0,
    authRetries: 0,
    blobUploads: 0,
    blobMounts: 0,
    blobsExisting: 0,
    bytesUploaded: 0,
    bytesDownloaded: 0,
  };

  constructor(opts: RegistryClientOptions = {}) {
    this.logger = opts.logger ?? silentLogger;
    this.retry = resolveRetryPolicy(opts.retry);
    this.transport = new Transport(opts.transport ?? {}, this.logger);
    const creds = typeof opts.credentials === 'function' ? opts.credentials : credentialProvider(opts.credentials ?? {});
    this.auth = new Authorizer({ transport: this.transport, credentials: creds, retry: this.retry, logger: this.logger });
    this.chunkSize = opts.chunkSize ?? 16 * 1024 * 1024;
    this.monolithicMax = opts.monolithicMax ?? 32 * 1024 * 1024;
    this.hostsDir = opts.hostsDir;
    if (!(this.chunkSize > 0) || !Number.isInteger(this.chunkSize)) {
      throw new OverlaybdError('CONFIG_INVALID', `invalid chunkSize ${this.chunkSize}: want a positive integer`);
    }
  }

  /**
   * `scheme://host` of a registry, for messages: under a hosts directory, the
   * first host that may do `what` (default pull) once the registry's hosts
   * are read (a request reads them), the registry itself before.
   */
  baseUrl(registry: string, what: HostCapability = 'pull'): string {
    const eps = this.hostsCache.get(registry);
    if (this.hostsDir === undefined || !Array.isArray(eps)) return this.transport.baseUrl(registry);
    return (eps.find((e) => e.host.capabilities.has(what)) ?? eps[0]!).base;
  }

  /** Closes the connections; the client stays usable. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** A registry's hosts in the order to try them, read once from the hosts directory. */
  private endpoints(registry: string): Endpoint[] | Promise<Endpoint[]> {
    const cached = this.hostsCache.get(registry);
    if (cached) return cached;
    const fallback = defaultHost(registry, this.transport.scheme(registry));
    const toEndpoints = (hosts: RegistryHost[]): Endpoint[] => {
      const eps = hosts.map((host) => {
        const own = host.host === apiHost(registry);
        const t = host.tls;
        if (t.ca.length > 0 || t.clients.length > 0 || t.skipVerify !== undefined) this.transport.setHostTls(host.host, t);
        return { host, base: `${host.scheme}://${host.host}`, authKey: own ? registry : host.host, ...(own ? {} : { ns: registry }) };
      });
      this.hostsCache.set(registry, eps);
      return eps;
    };
    if (this.hostsDir === undefined) return toEndpoints([fallback]);
    const reading = registryHosts(this.hostsDir, registry, fallback).then(toEndpoints);
    // A failed read (a bad hosts.toml) is not kept: the next request reads the file again.
    reading.catch(() => this.hostsCache.delete(registry));
    this.hostsCache.set(registry, reading);
    return reading;
  }

  /** The URL of `op` on one host: its API root in place of `/v2`, and `ns` for a mirror. */
  private urlOn(ep: Endpoint, path: string): URL {
    const url = new URL(ep.host.apiRoot + path.slice('/v2'.length), ep.base);
    if (ep.ns !== undefined) url.searchParams.set('ns', ep.ns);
    return url;
  }

  /**
   * Sends one request with auth and retries. Returns the response for the
   * statuses in `op.ok`; the caller reads or drains its body. Under a hosts
   * directory, a pull or resolve tries each host that may answer it in turn,
   * as containerd does: a host that fails or says 404 passes the request on;
   * if none answers, the first failure other than a 404 is thrown. Pushes go
   * to the first host that may push (an upload session lives on one host).
   */
  async send(op: Op): Promise<HttpResponse> {
    const need = capabilityOf(op);
    const eps = (await this.endpoints(op.repo.registry)).filter((e) => e.host.capabilities.has(need));
    if (eps.length === 0) {
      throw new OverlaybdError('CONFIG_INVALID', `registry ${op.repo.registry}: ${op.what}: no host in ${this.hostsDir} may ${need} (see its hosts.toml capabilities)`);
    }
    if (/^https?:\/\//.test(op.path)) {
      // An upload's Location: on the host that gave it.
      const url = new URL(op.path);
      return this.sendTo(op, eps.find((e) => e.base === url.origin) ?? eps[0]!, url);
    }
    if (need === 'push' || eps.length === 1) return this.sendTo(op, eps[0]!, this.urlOn(eps[0]!, op.path));
    let failed: unknown;
    for (const [i, ep] of eps.entries()) {
      const last = i === eps.length - 1;
      try {
        // A host before the last gets one try: the next one is the fallback (containerd retries none).
        const res = await this.sendTo(last ? op : { ...op, retry: false }, ep, this.urlOn(ep, op.path));
        if (res.status !== 404 || last) return res;
        await drain(res);
        this.logger.info('registry.host.next', { what: op.what, host: ep.base, reason: 'HTTP 404' });
      } catch (e) {
        if (op.signal?.aborted) throw e;
        const notFound = e instanceof OverlaybdError && e.code === 'REGISTRY_NOT_FOUND';
        if (!notFound) failed ??= e;
        if (last) throw failed ?? e;
        this.logger.info('registry.host.next', { what: op.what, host: ep.base, reason: (e as Error).message });
      }
    }
    throw failed; // not reached: the last host returns or throws
  }

  /** `op` on one host, with its retries. */
  private sendTo(op: Op, ep: Endpoint, url: URL): Promise<HttpResponse> {
    const what = `registry ${ep.base}: ${op.what}`;
    const sent = { ...op, headers: { ...ep.host.headers, ...(op.headers ?? {}) } };
    if (op.retry === false) return this.attempt(sent, ep.authKey, url, what, 1);
    return withRetry(this.retry, (n) => this.attempt(sent, ep.authKey, url, what, n), {
      ...(op.signal ? { signal: op.signal } : {}),
      onRetry: ({ attempt, reason }) => {
        this.stats.retries++;
        this.logger.debug('retry', { what, attempt, reason });
      },
    });
  }

  /**
   * Attempt `n` of a request: connection errors, 5xx and 429 come out as
   * RetryableError. A 401 whose challenge a new token or credentials may
   * meet is sent again here (at most twice), without using an attempt.
   */
  private async attempt(op: Op, authKey: string, url: URL, what: string, n: number): Promise<HttpResponse> {
    const retryable = op.retry !== false;
    const after = n > 1 ? ` (after ${n} attempts)` : '';
    let scopes = op.scopes;
    for (let authRounds = 0; ; authRounds++) {
      const headers: Record<string, string> = { ...(op.headers ?? {}) };
      const authz = await this.auth.header(authKey, scopes, op.signal).catch((e: unknown) => {
        throw this.prefixed(e, what);
      });
      if (authz) headers.Authorization = authz;
      const request = async (u: URL, h: Record<string, string>): Promise<HttpResponse> => {
        this.stats.requests[op.method] = (this.stats.requests[op.method] ?? 0) + 1;
        try {
          return await this.transport.request({
            method: op.method,
            url: u,
            headers: h,
            ...(op.body !== undefined ? { body: op.body instanceof Uint8Array ? op.body : op.body() } : {}),
            ...(op.signal ? { signal: op.signal } : {}),
          });
        } catch (e) {
          if (op.signal?.aborted) throw e;
          // The transport's own codes (a proxy's refusal) stay; the rest is unreachability.
          const code = e instanceof OverlaybdError ? e.code : 'REGISTRY_UNREACHABLE';
          const err = new OverlaybdError(code, `${what}: ${op.method} ${u.href}: ${(e as Error).message}${after}`, { cause: e });
          throw retryable && isConnectionError(e) ? new RetryableError(err) : err;
        }
      };
      let res = await request(url, headers);
      const status = res.status;
      if (status === 401 && !op.ok.includes(401)) {
        const body = await readBody(res, 64 * 1024).catch(() => undefined);
        const r = await this.auth
          .onUnauthorized(authKey, res.headers['www-authenticate'], scopes, authz)
          .catch((e: unknown) => {
            throw this.prefixed(e, what);
          });
        scopes = r.scopes;
        if (r.retry && authRounds < 2) {
          this.stats.authRetries++;
          continue;
        }
        const denied = r.insufficientScope && (await this.auth.hasCredentials(authKey));
        throw statusError(401, { what, method: op.method, url }, body, denied ? { code: 'REGISTRY_DENIED' } : undefined);
      }
      if (REDIRECTS.has(status) && !op.ok.includes(status) && (op.method === 'GET' || op.method === 'HEAD')) {
        res = await followRedirects(res, headers, request, what);
      }
      if (op.ok.includes(res.status)) return res;
      const body = op.method === 'HEAD' ? (await drain(res), undefined) : await readBody(res, 64 * 1024).catch(() => undefined);
      const err = statusError(res.status, { what, method: op.method, url: res.url }, body, { attempts: n });
      if ((res.status === 429 || res.status >= 500) && retryable) throw new RetryableError(err, parseRetryAfter(res.headers['retry-after']));
      throw err;
    }
  }

  /** An auth failure re-thrown with the operation and registry URL in front. */
  private prefixed(e: unknown, what: string): unknown {
    if (!(e instanceof OverlaybdError)) return e;
    return new OverlaybdError(e.code, `${what}: ${e.message}`, { cause: e });
  }

  // ---- manifests -------------------------------------------------------

  private refOf(repo: RepoLocator | string): Reference {
    if (typeof repo === 'string') return parseReference(repo);
    validateRepository(repo.repository);
    return repo as Reference;
  }

  /**
   * Fetches the manifest or index that a tag or digest names (the reference's
   * digest wins over its tag). A manifest fetched by digest is checked
   * against it.
   */
  async getManifest(ref: Reference | string, opts: { signal?: AbortSignal } = {}): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const r = this.refOf(ref);
    const target = r.digest ?? r.tag;
    if (target === undefined) {
      throw new OverlaybdError('CONFIG_INVALID', `reference ${formatReference(r)} has neither tag nor digest`);
    }
    const res = await this.send({
      repo: r,
      what: `pull manifest ${r.registry}/${r.repository}${r.digest ? '@' : ':'}${target}`,
      method: 'GET',
      path: `/v2/${r.repository}/manifests/${target}`,
      headers: { Accept: MANIFEST_ACCEPT },
      scopes: [repoScope(r.repository, 'pull')],
      resolve: r.digest === undefined,
      ok: [200],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const bytes = await readBody(res, 16 * 1024 * 1024);
    this.stats.bytesDownloaded += bytes.length;
    const mediaType = detectManifestMediaType(header(res, 'content-type'), bytes);
    let digest: string;
    if (r.digest) {
      digest = digestLike(r.digest, bytes);
      if (digest !== r.digest) {
        throw new OverlaybdError(
          'DIGEST_MISMATCH',
          `registry ${this.baseUrl(r.registry)}: pull manifest ${r.registry}/${r.repository}@${r.digest}: content digest is ${digest}`,
        );
      }
    } else {
      digest = digestLike('sha256', bytes);
    }
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  /** Alias of getManifest: resolve a tag or digest to its descriptor and bytes. */
  resolve(ref: Reference | string, opts: { signal?: AbortSignal } = {}): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    return this.getManifest(ref, opts);
  }

  /** HEAD of a manifest: its descriptor, or undefined when the registry says 404. */
  async headManifest(ref: Reference | string, opts: { signal?: AbortSignal } = {}): Promise<Descriptor | undefined> {
    const r = this.refOf(ref);
    const target = r.digest ?? r.tag;
    if (target === undefined) throw new OverlaybdError('CONFIG_INVALID', `reference ${formatReference(r)} has neither tag nor digest`);
    const res = await this.send({
      repo: r,
      what: `check manifest ${r.registry}/${r.repository}${r.digest ? '@' : ':'}${target}`,
      method: 'HEAD',
      path: `/v2/${r.repository}/manifests/${target}`,
      headers: { Accept: MANIFEST_ACCEPT },
      scopes: [repoScope(r.repository, 'pull')],
      resolve: r.digest === undefined,
      ok: [200, 404],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await drain(res);
    if (res.status === 404) return undefined;
    const digest = (res.headers['docker-content-digest'] as string | undefined) ?? r.digest;
    const size = Number(res.headers['content-length']);
    if (!digest || !Number.isFinite(size)) {
      // Some registries send neither on HEAD: fall back to GET.
      return (await this.getManifest(r, opts)).descriptor;
    }
    const ct = header(res, 'content-type')?.split(';')[0]?.trim() ?? 'application/octet-stream';
    return { mediaType: ct, digest, size };
  }

  /**
   * Pushes a manifest or index under a tag or digest (`reference`; default:
   * the digest of the bytes). Returns its descriptor.
   */
  async pushManifest(
    repo: RepoLocator,
    bytes: Uint8Array,
    mediaType: string,
    reference?: string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<Descriptor> {
    validateRepository(repo.repository);
    const digest = digestLike(reference && reference.includes(':') ? reference : 'sha256', bytes);
    if (reference !== undefined && !reference.includes(':')) validateTag(reference);
    if (reference && reference.includes(':')) {
      validateDigest(reference);
      if (digest !== reference) {
        throw new OverlaybdError('DIGEST_MISMATCH', `push manifest ${repo.registry}/${repo.repository}@${reference}: the bytes hash to ${digest}`);
      }
    }
    const target = reference ?? digest;
    const res = await this.send({
      repo,
      what: `push manifest ${repo.registry}/${repo.repository}${target.includes(':') ? '@' : ':'}${target}`,
      method: 'PUT',
      path: `/v2/${repo.repository}/manifests/${target}`,
      headers: { 'Content-Type': mediaType },
      body: bytes,
      scopes: [repoScope(repo.repository, 'pull', 'push')],
      ok: [200, 201, 202],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await drain(res);
    this.stats.bytesUploaded += bytes.length;
    const said = res.headers['docker-content-digest'];
    if (typeof said === 'string' && said.startsWith('sha256:') && digest.startsWith('sha256:') && said !== digest) {
      throw new OverlaybdError(
        'DIGEST_MISMATCH',
        `registry ${this.baseUrl(repo.registry)}: push manifest ${repo.repository}:${target}: registry stored ${said}, we sent ${digest}`,
      );
    }
    return { mediaType, digest, size: bytes.length };
  }

  // ---- blobs: read -------------------------------------------------------

  /** Size of a blob from HEAD, or undefined when the repository does not have it. */
  async statBlob(
    repo: RepoLocator,
    digest: string,
    opts: { signal?: AbortSignal; forPush?: boolean } = {},
  ): Promise<number | undefined> {
    validateDigest(digest);
    const res = await this.send({
      repo,
      what: `check blob ${repo.registry}/${repo.repository}@${digest}`,
      method: 'HEAD',
      path: `/v2/${repo.repository}/blobs/${digest}`,
      // Before a push, ask for the push token at once so the upload reuses it.
      scopes: [opts.forPush ? repoScope(repo.repository, 'pull', 'push') : repoScope(repo.repository, 'pull')],
      ok: [200, 404],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await drain(res);
    if (res.status === 404) return undefined;
    const n = Number(res.headers['content-length']);
    return Number.isFinite(n) ? n : -1;
  }

  async blobExists(repo: RepoLocator, digest: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    return (await this.statBlob(repo, digest, opts)) !== undefined;
  }

  /** Size of a blob from HEAD; REGISTRY_NOT_FOUND when missing. */
  async blobSize(repo: RepoLocator, digest: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const n = await this.statBlob(repo, digest, opts);
    if (n === undefined) {
      throw new OverlaybdError(
        'REGISTRY_NOT_FOUND',
        `registry ${this.baseUrl(repo.registry)}: blob ${digest} not found in repository ${repo.repository}`,
      );
    }
    return n;
  }

  /**
   * A blob as a stream, sha256-verified while it flows. When the connection
   * drops, the rest is fetched again with a Range request (within the retry
   * policy). A wrong digest or a short or long body makes the stream error
   * with DIGEST_MISMATCH instead of ending. HTTP errors reject the promise.
   * `verify: false` leaves the digest to a reader that checks it itself
   * (the native apply does, off this thread); the size is still checked.
   */
  async fetchBlob(
    repo: RepoLocator,
    desc: { digest: string; size?: number },
    opts: { signal?: AbortSignal; verify?: boolean } = {},
  ): Promise<Readable> {
    validateDigest(desc.digest);
    const what = `pull blob ${repo.registry}/${repo.repository}@${desc.digest}`;
    const op = (offset: number): Op => ({
      repo,
      what,
      method: 'GET',
      path: `/v2/${repo.repository}/blobs/${desc.digest}`,
      headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
      scopes: [repoScope(repo.repository, 'pull')],
      ok: offset > 0 ? [200, 206, 416] : [200],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const first = await this.send(op(0));
    const base = this.baseUrl(repo.registry); // after a request: the registry's hosts are read
    const hash = opts.verify === false ? undefined : createDigestHash(desc.digest);
    const algo = desc.digest.slice(0, desc.digest.indexOf(':'));
    const expectedSize = desc.size ?? (first.headers['content-length'] ? Number(first.headers['content-length']) : undefined);
    const mismatch = (m: string) => new OverlaybdError('DIGEST_MISMATCH', `registry ${base}: ${what}: ${m}`);
    const out = new PassThrough();
    let received = 0;

    /** Attempt `n` relays one response body; a lost connection is retried with a Range request from `received`. */
    const relay = async (n: number): Promise<void> => {
      const res = n === 1 ? first : await this.send(op(received));
      // A reader that destroys the stream ends the response at once, even
      // while the body waits for its next chunk.
      const readerGone = () => res.body.destroy();
      out.once('close', readerGone);
      try {
        const skip = { bytes: 0 };
        if (n > 1) {
          // A resumed request: 206 from `received`, 200 from the start, 416 when nothing is left.
          if (res.status === 416) return;
          if (res.status === 206) {
            const m = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
            if (!m || Number(m[1]) !== received) {
              throw mismatch(`resumed read at ${received} got Content-Range "${String(res.headers['content-range'])}"`);
            }
          } else skip.bytes = received;
        }
        try {
          for await (const c of res.body) {
            const b = skipFront(c as Buffer, skip);
            if (b.length === 0) continue;
            received += b.length;
            this.stats.bytesDownloaded += b.length;
            if (expectedSize !== undefined && received > expectedSize) throw mismatch(`body is longer than the expected ${expectedSize} bytes`);
            hash?.update(b);
            // The reader went away (also while we waited for this chunk): stop quietly.
            if (out.destroyed) throw new ReaderGone();
            if (!out.write(b)) await drained(out, opts.signal);
            opts.signal?.throwIfAborted();
          }
        } catch (e) {
          if (out.destroyed) throw new ReaderGone();
          if (e instanceof OverlaybdError || e instanceof ReaderGone || opts.signal?.aborted) throw e;
          const err = mismatch(`connection lost after ${received}${expectedSize !== undefined ? ` of ${expectedSize}` : ''} bytes (${(e as Error).message})`);
          throw isConnectionError(e) ? new RetryableError(err) : err;
        }
      } finally {
        out.off('close', readerGone);
        if (!res.body.readableEnded) res.body.destroy();
      }
    };

    withRetry(this.retry, relay, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      onRetry: ({ attempt, reason }) => {
        this.stats.retries++;
        this.logger.debug('retry', { what: `registry ${base}: ${what}`, attempt, reason });
      },
    }).then(
      () => {
        if (expectedSize !== undefined && received !== expectedSize) throw mismatch(`body ended after ${received} of ${expectedSize} bytes`);
        if (hash) {
          const got = `${algo}:${hash.digest('hex')}`;
          if (got !== desc.digest) throw mismatch(`content digest is ${got}`);
        }
        out.end();
      },
    ).catch((e: unknown) => {
      // A rejection before the first attempt leaves its body unread.
      if (!first.body.readableEnded) first.body.destroy();
      if (!(e instanceof ReaderGone)) out.destroy(e as Error);
    });
    return out;
  }

  /** A whole blob in memory, verified. */
  async fetchBlobBytes(repo: RepoLocator, desc: { digest: string; size?: number }, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    const s = await this.fetchBlob(repo, desc, opts);
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  /** Writes a blob to a file (verified; the file is removed on failure). */
  async fetchBlobToFile(repo: RepoLocator, desc: { digest: string; size?: number }, file: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const s = await this.fetchBlob(repo, desc, opts);
    const { pipeline } = await import('node:stream/promises');
    try {
      await pipeline(s, fs.createWriteStream(file));
    } catch (e) {
      await fs.promises.rm(file, { force: true });
      throw e;
    }
  }

  /**
   * Bytes `[offset, offset + length)` of a blob through `Range: bytes=a-b`.
   * A registry that ignores Range (200) is handled by skipping; a range past
   * the end is OUT_OF_RANGE. The result may be shorter than `length` only at
   * the end of the blob.
   */
  async fetchBlobRange(repo: RepoLocator, digest: string, offset: number, length: number, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    validateDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length <= 0) {
      throw new OverlaybdError('OUT_OF_RANGE', `bad range offset=${offset} length=${length} for blob ${digest}`);
    }
    const what = `read blob ${repo.registry}/${repo.repository}@${digest} bytes ${offset}-${offset + length - 1}`;
    const res = await this.send({
      repo,
      what,
      method: 'GET',
      path: `/v2/${repo.repository}/blobs/${digest}`,
      headers: { Range: `bytes=${offset}-${offset + length - 1}` },
      scopes: [repoScope(repo.repository, 'pull')],
      ok: [200, 206, 416],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const base = this.baseUrl(repo.registry);
    if (res.status === 416) {
      await drain(res);
      throw new OverlaybdError('OUT_OF_RANGE', `registry ${base}: ${what}: HTTP 416, range past the end (${String(res.headers['content-range'] ?? '')})`);
    }
    const skip = { bytes: 0 };
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (!m || Number(m[1]) !== offset) {
        res.body.destroy();
        throw new OverlaybdError('REGISTRY_ERROR', `registry ${base}: ${what}: bad Content-Range "${res.headers['content-range']}"`);
      }
    } else {
      skip.bytes = offset;
    }
    const out = Buffer.alloc(length);
    let n = 0;
    for await (const c of res.body) {
      const b = skipFront(c as Buffer, skip);
      const take = Math.min(b.length, length - n);
      b.copy(out, n, 0, take);
      n += take;
      this.stats.bytesDownloaded += take;
      if (n === length) {
        if (res.status === 200) res.body.destroy();
        break;
      }
    }
    if (res.status === 200 && skip.bytes > 0) {
      throw new OverlaybdError('OUT_OF_RANGE', `registry ${base}: ${what}: range past the end of the blob`);
    }
    return n === length ? out : out.subarray(0, n);
  }

  // ---- blobs: write ------------------------------------------------------

  /**
   * Pushes a blob unless the repository has it: HEAD, then a cross-repository
   * mount from each of `mountFrom` (same registry), then an upload: one PUT
   * for small sized sources, one resumable PATCH for a larger file, chunked
   * PATCHes otherwise. Bytes in memory and chunked uploads are checked
   * against `desc.digest` before the upload is committed; a file or stream
   * sent whole is checked by the registry against the `?digest=` of the
   * commit (a refusal is DIGEST_MISMATCH).
   */
  pushBlob(
    repo: RepoLocator,
    desc: { digest: string; size?: number },
    source: BlobSource | undefined,
    opts: { mountFrom?: string | string[]; chunked?: boolean; skipExistsCheck?: boolean; signal?: AbortSignal } = {},
  ): Promise<PushResult> {
    return uploadBlob(this, repo, desc, source, opts);
  }

  /**
   * Mounts a blob from another repository of the same registry. Returns
   * `mounted`, or `not-mounted` when the registry started an upload instead
   * (202; that upload session is cancelled).
   */
  async mountBlob(repo: RepoLocator, digest: string, from: string, opts: { signal?: AbortSignal } = {}): Promise<'mounted' | 'not-mounted'> {
    const r = await uploadBlob(this, repo, { digest }, undefined, { mountFrom: from, skipExistsCheck: true, ...opts });
    return r.status === 'mounted' ? 'mounted' : 'not-mounted';
  }
}
