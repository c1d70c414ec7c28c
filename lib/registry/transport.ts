/**
 * One HTTP exchange with a registry or token server over node:http(s), with
 * a keep-alive agent per origin and the TLS options of docker and upstream's
 * convertor (extra CAs, certs.d-style directories, client certificates,
 * skip-verify), set per origin on its agent, and the proxies of HTTP_PROXY,
 * HTTPS_PROXY and NO_PROXY (proxy.ts). No retries and no auth here: see
 * client.ts. Node's own client, not undici: loading undici cost every
 * command about 0.1 s before its first request (docs/decisions.md).
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { pipeline, type Duplex, type Readable } from 'node:stream';
import tls from 'node:tls';
import { z } from 'zod';
import { OverlaybdError } from '../errors.js';
import { parseWith } from '../config.js';
import { silentLogger, type Logger } from '../log.js';
import { PROXY_AUTH_REQUIRED } from './http-errors.js';
import { redactHeaders } from './logger.js';
import { proxyEnvFrom, ProxyResolver, unbracket } from './proxy.js';
import { certDirFiles } from './cert-dir.js';
import type { HostTls } from './hosts-dir.js';
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
  /** Proxies (URLs) and the hosts reached without one; default: HTTP_PROXY, HTTPS_PROXY and NO_PROXY. */
  proxy: z.object({ http: z.string().optional(), https: z.string().optional(), noProxy: z.string().optional() }).optional(),
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

/** A URL's host as a socket option wants it: IPv6 without brackets. */
function hostOf(url: URL): string {
  return unbracket(url.hostname);
}

/** Proxy-Authorization for the user and password of a proxy URL, if it has them. */
function proxyAuthorization(proxy: URL): Record<string, string> {
  if (proxy.username === '' && proxy.password === '') return {};
  const basic = Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64');
  return { 'proxy-authorization': `Basic ${basic}` };
}

/** A proxy URL fit for messages and logs: no user or password. */
function shown(proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`;
}

/** A failure on the way through a proxy, saying so; the errno code stays for the retry rules. */
function throughProxy(e: Error, where: string): Error {
  return Object.assign(new Error(`${where}: ${e.message}`, { cause: e }), { code: (e as NodeJS.ErrnoException).code });
}

/**
 * An https.Agent whose connections are tunnels through an HTTP proxy: a
 * CONNECT to the registry's host and port, then TLS to the registry inside
 * it, so the proxy sees neither the requests nor the credentials.
 */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    private readonly connectTimeoutMs: number,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: https.RequestOptions, done?: (err: Error | null, stream: Duplex) => void): undefined {
    const host = options.host ?? 'localhost';
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port ?? 443}`;
    const where = `CONNECT ${target} through proxy ${shown(this.proxy)}`;
    const req = (this.proxy.protocol === 'https:' ? https : http).request({
      host: hostOf(this.proxy),
      port: this.proxy.port || undefined,
      method: 'CONNECT',
      path: target,
      headers: { host: target, ...proxyAuthorization(this.proxy) },
      agent: false,
      timeout: this.connectTimeoutMs,
    });
    const fail = (e: Error) => done?.(e, undefined as unknown as Duplex);
    req.once('timeout', () => req.destroy(timeoutError(`${where}: no answer after ${this.connectTimeoutMs} ms`)));
    req.once('error', (e) => fail(throughProxy(e, where)));
    req.once('connect', (res, socket, head) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        socket.destroy();
        const code = status === 407 ? 'REGISTRY_UNAUTHORIZED' : status >= 500 ? 'REGISTRY_UNREACHABLE' : 'REGISTRY_DENIED';
        const why = status === 407 ? PROXY_AUTH_REQUIRED : `proxy answered ${status}`;
        fail(new OverlaybdError(code, `${where}: ${why}`));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      done?.(null, tls.connect({ ...(options as tls.ConnectionOptions), socket }));
    });
    req.end();
    return undefined;
  }
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

export class Transport {
  readonly options: ResolvedOptions;
  private readonly logger: Logger;
  /** Per origin: its keep-alive agent and the proxy it goes through, if any. */
  private readonly routes = new Map<string, { agent: http.Agent; proxy?: URL }>();
  private readonly baseCa: string[];
  private readonly proxies: ProxyResolver;
  /** TLS material of single hosts (`host[:port]`), from hosts.toml. */
  private readonly hostTls = new Map<string, HostTls>();

  constructor(options: TransportOptions = {}, logger: Logger = silentLogger) {
    this.options = parseWith(TransportOptionsSchema, options, 'transport options');
    this.logger = logger;
    this.baseCa = this.options.caFiles.map((f) => readFile(f, 'CA certificate').toString('utf8'));
    this.proxies = new ProxyResolver(this.options.proxy ?? proxyEnvFrom());
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

  /**
   * Adds a host's own TLS material (hosts.toml's ca, client, skip_verify) to
   * the defaults, for connections made from now on.
   */
  setHostTls(host: string, material: HostTls): void {
    this.hostTls.set(host, material);
    for (const [origin, r] of this.routes) {
      if (new URL(origin).host !== host) continue;
      r.agent.destroy();
      this.routes.delete(origin);
    }
  }

  /**
   * The CAs and client certificate of a host: its hosts.toml material, then
   * the certs.d files of each --cert-dir (`<dir>/<host:port>/`, then `<dir>`),
   * then the client certificates given; the first client pair found is used.
   */
  private tlsFor(host: string): TlsMaterial {
    const found = [this.hostTls.get(host), ...this.options.certDirs.flatMap((d) => [certDirFiles(path.join(d, host)), certDirFiles(d)])];
    const ca = [...this.baseCa, ...found.flatMap((f) => f?.ca ?? []).map((f) => readFile(f, 'CA certificate').toString('utf8'))];
    const pair = found.flatMap((f) => f?.clients ?? [])[0] ?? this.options.clientCerts[0];
    const cert = pair && readFile(pair.cert, 'client certificate');
    const key = pair && (pair.key === '' ? cert : readFile(pair.key, 'client key'));
    return {
      ...(ca.length > 0 ? { ca: [...tls.rootCertificates, ...ca] } : {}),
      ...(cert ? { cert, key } : {}),
    };
  }

  /**
   * The keep-alive agent of an origin, and its proxy (the rules are read once
   * an origin, not once a request). Through a proxy, an https origin's
   * sockets are CONNECT tunnels; an http origin's go to the proxy, which
   * gets absolute-form requests (as Go's client sends them).
   */
  private route(url: URL): { agent: http.Agent; proxy?: URL } {
    let r = this.routes.get(url.origin);
    if (!r) {
      const proxy = this.proxies.proxyFor(url);
      let a: http.Agent;
      const o = this.options;
      const common = { keepAlive: true, maxSockets: o.maxSockets, scheduling: 'lifo' as const, timeout: IDLE_SOCKET_MS };
      if (url.protocol === 'https:') {
        const skip = this.hostTls.get(url.host)?.skipVerify ?? o.insecure;
        const tlsOptions = { ...common, ...this.tlsFor(url.host), rejectUnauthorized: !skip };
        a = proxy ? new TunnelAgent(proxy, o.connectTimeoutMs, tlsOptions) : new https.Agent(tlsOptions);
      } else if (proxy) {
        // One connection a request: proxies such as tinyproxy close the
        // client's connection after each response without saying so, and a
        // request sent on it then fails (a tunnel stays open, so https keeps
        // its connections).
        const once = { ...common, keepAlive: false };
        a = proxy.protocol === 'https:' ? new https.Agent(once) : new http.Agent(once);
      } else {
        a = new http.Agent(common);
      }
      r = proxy ? { agent: a, proxy } : { agent: a };
      this.routes.set(url.origin, r);
    }
    return r;
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
      const { agent, proxy } = this.route(url);
      // The first hop: the registry, or the proxy of a plain-HTTP registry
      // (a tunnel's socket comes connected, its CONNECT timed on its own).
      const hop = proxy && url.protocol === 'http:' ? proxy : url;
      const cr =
        hop === url
          ? (url.protocol === 'https:' ? https : http).request(url, { method: req.method, headers, agent, timeout: o.timeoutMs })
          : (hop.protocol === 'https:' ? https : http).request({
              host: hostOf(hop),
              port: hop.port || undefined,
              path: url.href,
              method: req.method,
              headers: { ...headers, host: url.host, ...proxyAuthorization(hop) },
              agent,
              timeout: o.timeoutMs,
            });
      let res: http.IncomingMessage | undefined;
      // After the headers, failures belong to the body the caller reads.
      const stop = (e: Error) => (res ? res.destroy(e) : cr.destroy(e));
      const onAbort = () => stop(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      cr.once('close', () => signal?.removeEventListener('abort', onAbort));
      cr.on('timeout', () => stop(timeoutError(`${req.method} ${url.href}: no data for ${o.timeoutMs} ms`)));
      cr.once('socket', (socket) => {
        if (!socket.connecting) return;
        const to = hop === url ? url.host : `proxy ${shown(hop)}`;
        const timer = setTimeout(
          () => cr.destroy(timeoutError(`connect to ${to} timed out after ${o.connectTimeoutMs} ms`)),
          o.connectTimeoutMs,
        );
        socket.once(hop.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      cr.on('error', (e) => {
        if (!res) fail(hop === url ? e : throughProxy(e, `through proxy ${shown(hop)}`));
      });
      cr.once('response', (r) => {
        res = r;
        this.logger.debug('http.response', {
          method: req.method,
          url: url.href,
          status: r.statusCode,
          ms: Date.now() - started,
          headers: redactHeaders(r.headersDistinct),
        });
        resolve({ status: r.statusCode ?? 0, headers: headersOf(r), body: r, url });
      });
      if (body === undefined || body instanceof Uint8Array) cr.end(body);
      // Errors of either side reach the caller through cr's 'error' (fail).
      else pipeline(body, cr, () => {});
    });
  }

  /** Closes every connection. The transport stays usable. */
  async close(): Promise<void> {
    const routes = [...this.routes.values()];
    this.routes.clear();
    for (const r of routes) r.agent.destroy();
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
