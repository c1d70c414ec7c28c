/**
 * One HTTP exchange with a registry or token server over node:http/https,
 * with keep-alive agents per host and the TLS options of docker and
 * upstream's convertor (extra CAs, certs.d-style directories, client
 * certificates, skip-verify). No retries and no auth here: see client.ts.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
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
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: URL;
}

/** Connection-level failures that are worth another try. */
export function isConnectionError(e: unknown): boolean {
  if (e instanceof OverlaybdError) return e.code === 'REGISTRY_UNREACHABLE';
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === 'ECONNRESET' ||
    code === 'ECONNREFUSED' ||
    code === 'ECONNABORTED' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'EAI_AGAIN' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    (e instanceof Error && /socket hang up|aborted/i.test(e.message))
  );
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
    const key = `${url.protocol}//${url.host}`;
    let a = this.agents.get(key);
    if (!a) {
      const common = { keepAlive: true, maxSockets: this.options.maxSockets, maxFreeSockets: 8 };
      if (url.protocol === 'https:') {
        a = new https.Agent({ ...common, ...this.tlsFor(url.host), rejectUnauthorized: !this.options.insecure });
      } else {
        a = new http.Agent(common);
      }
      this.agents.set(key, a);
    }
    return a;
  }

  /** Sends one request and resolves once the response headers arrive. */
  request(req: HttpRequest): Promise<HttpResponse> {
    const { url } = req;
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'User-Agent': 'overlaybd-ts/0.1', ...(req.headers ?? {}) };
    if (req.body instanceof Uint8Array) headers['Content-Length'] = String(req.body.length);
    else if (req.body === undefined && (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH')) {
      headers['Content-Length'] ??= '0';
    }
    this.logger.debug('http.request', { method: req.method, url: url.href, headers: redactHeaders(headers) });
    const started = Date.now();
    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        this.logger.debug('http.error', { method: req.method, url: url.href, error: e.message });
        reject(e);
      };
      const r = mod.request(url, { method: req.method, headers, agent: this.agent(url) }, (res) => {
        if (settled) {
          res.resume();
          return;
        }
        settled = true;
        clearTimeout(connectTimer);
        this.logger.debug('http.response', {
          method: req.method,
          url: url.href,
          status: res.statusCode,
          ms: Date.now() - started,
        });
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
      });
      const connectTimer = setTimeout(() => {
        r.destroy(Object.assign(new Error(`connect timeout after ${this.options.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, this.options.connectTimeoutMs);
      r.on('socket', (s) => {
        if (!s.connecting) clearTimeout(connectTimer);
        else s.once('connect', () => clearTimeout(connectTimer));
      });
      r.setTimeout(this.options.timeoutMs, () => {
        r.destroy(Object.assign(new Error(`no data for ${this.options.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      r.on('error', (e) => {
        clearTimeout(connectTimer);
        if (req.body !== undefined && !(req.body instanceof Uint8Array)) req.body.destroy();
        fail(e);
      });
      if (req.signal) {
        const signal = req.signal;
        if (signal.aborted) r.destroy(signal.reason as Error);
        else {
          const onAbort = () => r.destroy(signal.reason as Error);
          signal.addEventListener('abort', onAbort, { once: true });
          r.on('close', () => signal.removeEventListener('abort', onAbort));
        }
      }
      if (req.body === undefined) r.end();
      else if (req.body instanceof Uint8Array) r.end(req.body);
      else {
        const body = req.body;
        body.on('error', (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }

  /** Closes idle keep-alive sockets. The transport stays usable. */
  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
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
