/**
 * One HTTP exchange with a registry or token server over undici, with a
 * keep-alive connection pool per origin and the TLS options of docker and
 * upstream's convertor (extra CAs, certs.d-style directories, client
 * certificates, skip-verify), set per origin through the pool's connect
 * options. No retries and no auth here: see client.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { z } from 'zod';
import { OverlaybdError } from '../errors.js';
import { parseWith } from '../config.js';
import { silentLogger, type Logger } from '../log.js';
import { redactHeaders } from './logger.js';
import { apiHost } from './reference.js';

export const TransportOptionsSchema = z.object({
  /** Plain HTTP for every registry (`true`), or for the hosts listed. */
  plainHttp: z.union([z.boolean(), z.array(z.string())]).default(false),
  /** Skip TLS certificate verification. */
  insecure: z.boolean().default(false),
  /** Extra PEM CA files, added to the system pool (`--root-ca`). */
  caFiles: z.array(z.string()).default([]),
  /**
   * Directories like docker's certs.d: `*.crt` are CAs, `*.cert` + `*.key`
   * client pairs. A subdirectory named after the registry host (`host:port`)
   * applies to that host only (`--cert-dir`).
   */
  certDirs: z.array(z.string()).default([]),
  /** Client certificate and key files (`--client-cert cert:key`). */
  clientCerts: z.array(z.object({ cert: z.string(), key: z.string() })).default([]),
  /** Socket idle timeout in ms (default 60 s); connect timeout is `connectTimeoutMs` (default 30 s). */
  timeoutMs: z.number().int().positive().default(60_000),
  connectTimeoutMs: z.number().int().positive().default(30_000),
  maxSockets: z.number().int().positive().default(32),
});

export type TransportOptions = z.input<typeof TransportOptionsSchema>;
type ResolvedOptions = z.output<typeof TransportOptionsSchema>;

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A Buffer is sent with Content-Length; a stream as-is (set Content-Length yourself if known). */
  body?: Uint8Array | Readable;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  /** Read it to the end, or destroy it, to free the connection. */
  body: Readable;
  url: URL;
}

/** Error codes of connection-level failures that are worth another try (node's and undici's). */
const CONNECTION_ERRORS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** Connection-level failures that are worth another try. */
export function isConnectionError(e: unknown): boolean {
  if (e instanceof OverlaybdError) return e.code === 'REGISTRY_UNREACHABLE';
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && CONNECTION_ERRORS.has(code)) return true;
  // undici wraps connect failures: the errno is on the cause.
  const cause = (e as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && cause !== e && isConnectionError(cause);
}

interface TlsMaterial {
  ca?: string[];
  cert?: Buffer;
  key?: Buffer;
}

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new OverlaybdError('CONFIG_INVALID', `cannot read certificate directory ${dir}: ${(e as Error).message}`);
  }
}

export class Transport {
  readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly pools = new Map<string, Pool>();
  private readonly baseCa: string[];

  constructor(options: TransportOptions = {}, logger: Logger = silentLogger) {
    this.options = parseWith(TransportOptionsSchema, options, 'transport options');
    this.logger = logger;
    this.baseCa = this.options.caFiles.map((f) => readFile(f, 'CA certificate').toString('utf8'));
  }

  /** `http` or `https` for a registry (`host[:port]`). */
  scheme(registry: string): 'http' | 'https' {
    const p = this.options.plainHttp;
    if (p === true) return 'http';
    if (Array.isArray(p) && p.includes(registry)) return 'http';
    return 'https';
  }

  /** `scheme://api-host` of a registry name (Docker Hub maps to its API host). */
  baseUrl(registry: string): string {
    return `${this.scheme(registry)}://${apiHost(registry)}`;
  }

  private tlsFor(host: string): TlsMaterial {
    const ca = [...this.baseCa];
    let cert: Buffer | undefined;
    let key: Buffer | undefined;
    const scan = (dir: string) => {
      for (const name of listDir(dir)) {
        const full = path.join(dir, name);
        if (name.endsWith('.crt')) ca.push(readFile(full, 'CA certificate').toString('utf8'));
        else if (name.endsWith('.cert') && cert === undefined) {
          const keyFile = full.slice(0, -'.cert'.length) + '.key';
          if (!fs.existsSync(keyFile)) {
            throw new OverlaybdError('CONFIG_INVALID', `client certificate ${full} has no matching key ${keyFile}`);
          }
          cert = readFile(full, 'client certificate');
          key = readFile(keyFile, 'client key');
        }
      }
    };
    for (const dir of this.options.certDirs) {
      // docker's certs.d layout: <dir>/<host:port>/..., then files directly in <dir>.
      scan(path.join(dir, host));
      scan(dir);
    }
    if (cert === undefined && this.options.clientCerts.length > 0) {
      const first = this.options.clientCerts[0]!;
      cert = readFile(first.cert, 'client certificate');
      key = readFile(first.key, 'client key');
    }
    return {
      ...(ca.length > 0 ? { ca: [...tls.rootCertificates, ...ca] } : {}),
      ...(cert ? { cert, key } : {}),
    };
  }

  private pool(url: URL): Pool {
    let p = this.pools.get(url.origin);
    if (!p) {
      const o = this.options;
      p = new Pool(url.origin, {
        connections: o.maxSockets,
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        connect: {
          timeout: o.connectTimeoutMs,
          ...(url.protocol === 'https:' ? { ...this.tlsFor(url.host), rejectUnauthorized: !o.insecure } : {}),
        },
      });
      this.pools.set(url.origin, p);
    }
    return p;
  }

  /**
   * Sends one request and resolves once the response headers arrive. An
   * aborted signal rejects with its reason, before or after the headers
   * (then through the body), and closes the connection.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const { url } = req;
    const headers: Record<string, string> = { 'user-agent': 'overlaybd-ts/0.1' };
    for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
    if (req.body instanceof Uint8Array) headers['content-length'] = String(req.body.length);
    else if (req.body === undefined && (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH')) {
      headers['content-length'] ??= '0';
    }
    this.logger.debug('http.request', { method: req.method, url: url.href, headers: redactHeaders(headers) });
    const started = Date.now();
    try {
      const res = await this.pool(url).request({
        method: req.method as 'GET',
        path: url.pathname + url.search,
        headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      });
      this.logger.debug('http.response', { method: req.method, url: url.href, status: res.statusCode, ms: Date.now() - started });
      return { status: res.statusCode, headers: res.headers, body: res.body, url };
    } catch (e) {
      if (req.body !== undefined && !(req.body instanceof Uint8Array)) req.body.destroy();
      this.logger.debug('http.error', { method: req.method, url: url.href, error: (e as Error).message });
      throw e;
    }
  }

  /** Closes every connection. The transport stays usable. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
  }
}

/** The first value of a response header. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads a whole response body (bounded by `limit` bytes). */
export async function readBody(res: HttpResponse, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      res.body.destroy();
      throw new OverlaybdError('REGISTRY_ERROR', `${res.url.href}: response body larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Discards a response body so the socket can be reused. */
export async function drain(res: HttpResponse): Promise<void> {
  try {
    for await (const _ of res.body) {
      // discard
    }
  } catch {
    // a broken body on a response we ignore does not matter
  }
}
