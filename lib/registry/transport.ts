/**
 * One HTTP exchange with a registry or token server over node:http(s), with
 * a keep-alive agent per origin and the TLS options of docker and upstream's
 * convertor (extra CAs, certs.d-style directories, client certificates,
 * skip-verify), set per origin on its agent. No retries and no auth here:
 * see client.ts. Node's own client, not undici: loading undici cost every
 * command about 0.1 s before its first request (docs/decisions.md).
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import tls from 'node:tls';
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

/** Error codes of connection-level failures that are worth another try. */
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
]);

/** How long an idle keep-alive connection is kept (undici's default too). */
const IDLE_SOCKET_MS = 4_000;

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

/** Node joins repeated headers with commas; keep them apart, as an array. */
function headersOf(res: http.IncomingMessage): HttpResponse['headers'] {
  const out: HttpResponse['headers'] = {};
  for (const [k, v] of Object.entries(res.headersDistinct)) if (v) out[k] = v.length === 1 ? v[0] : v;
  return out;
}

/** Connection-level failures that are worth another try. */
export function isConnectionError(e: unknown): boolean {
  if (e instanceof OverlaybdError) return e.code === 'REGISTRY_UNREACHABLE';
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && CONNECTION_ERRORS.has(code)) return true;
  // Wrapped failures carry the errno on their cause.
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
  private readonly agents = new Map<string, http.Agent>();
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

  private agent(url: URL): http.Agent {
    let a = this.agents.get(url.origin);
    if (!a) {
      const o = this.options;
      const common = { keepAlive: true, maxSockets: o.maxSockets, scheduling: 'lifo' as const, timeout: IDLE_SOCKET_MS };
      a =
        url.protocol === 'https:'
          ? new https.Agent({ ...common, ...this.tlsFor(url.host), rejectUnauthorized: !o.insecure })
          : new http.Agent(common);
      this.agents.set(url.origin, a);
    }
    return a;
  }

  /**
   * Sends one request and resolves once the response headers arrive. An
   * aborted signal rejects with its reason, before or after the headers
   * (then through the body), and closes the connection. A connection that
   * is silent for `timeoutMs` (waiting for headers or body) fails with
   * ETIMEDOUT, as does a connect that takes longer than `connectTimeoutMs`.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const { url, body, signal } = req;
    const headers: Record<string, string> = { 'user-agent': 'overlaybd-ts/0.1' };
    for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
    if (body instanceof Uint8Array) headers['content-length'] = String(body.length);
    else if (body === undefined && (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH')) {
      headers['content-length'] ??= '0';
    }
    this.logger.debug('http.request', { method: req.method, url: url.href, headers: redactHeaders(headers) });
    const started = Date.now();
    const o = this.options;
    return new Promise<HttpResponse>((resolve, reject) => {
      const fail = (e: Error) => {
        if (body !== undefined && !(body instanceof Uint8Array)) body.destroy();
        this.logger.debug('http.error', { method: req.method, url: url.href, error: e.message });
        reject(e);
      };
      if (signal?.aborted) return fail(signal.reason as Error);
      const client = url.protocol === 'https:' ? https : http;
      const cr = client.request(url, { method: req.method, headers, agent: this.agent(url), timeout: o.timeoutMs });
      let res: http.IncomingMessage | undefined;
      // After the headers, failures belong to the body the caller reads.
      const stop = (e: Error) => (res ? res.destroy(e) : cr.destroy(e));
      const onAbort = () => stop(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      cr.once('close', () => signal?.removeEventListener('abort', onAbort));
      cr.on('timeout', () => stop(timeoutError(`${req.method} ${url.href}: no data for ${o.timeoutMs} ms`)));
      cr.once('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => cr.destroy(timeoutError(`connect to ${url.host} timed out after ${o.connectTimeoutMs} ms`)),
          o.connectTimeoutMs,
        );
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      cr.on('error', (e) => {
        if (!res) fail(e);
      });
      cr.once('response', (r) => {
        res = r;
        this.logger.debug('http.response', { method: req.method, url: url.href, status: r.statusCode, ms: Date.now() - started });
        resolve({ status: r.statusCode ?? 0, headers: headersOf(r), body: r, url });
      });
      if (body === undefined || body instanceof Uint8Array) cr.end(body);
      // Errors of either side reach the caller through cr's 'error' (fail).
      else pipeline(body, cr, () => {});
    });
  }

  /** Closes every connection. The transport stays usable. */
  async close(): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    for (const a of agents) a.destroy();
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
