/**
 * A small HTTP proxy on 127.0.0.1 that forwards to one upstream (a test
 * registry) and injects faults by rule: canned statuses (500, 429 with
 * Retry-After, 401/403/404), dropped connections before or after the
 * upstream saw the request, bodies cut short, truncated, corrupted or
 * replaced, lengthened, answered whole (a 200 for a range request), with
 * headers overridden, and delays. Every request is logged so tests can
 * count them, and so are client connections (keep-alive checks).
 * Rules fire a bounded number of times; nothing here loops on its own.
 */
import http from 'node:http';
import type net from 'node:net';

export type FaultAction =
  /** Answer this status without asking upstream. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Close the client connection without forwarding the request. */
  | { kind: 'drop' }
  /** Forward the request, wait for upstream's answer, then close the client connection instead of replying. */
  | { kind: 'drop-after-forward' }
  /** Forward at most `afterBytes` of the request body, then close both connections. */
  | { kind: 'cut-request'; afterBytes: number }
  /** Relay upstream's headers and `afterBytes` of its body, then close the connection. */
  | { kind: 'cut'; afterBytes: number }
  /** Serve only the first `bytes` of upstream's body, with a matching Content-Length. */
  | { kind: 'truncate'; bytes: number }
  /** Flip one byte of upstream's body (same length). */
  | { kind: 'corrupt'; offset?: number }
  /** Serve this body instead of upstream's (status and other headers kept). */
  | { kind: 'replace'; body: Buffer }
  /** Wait, then forward normally. */
  | { kind: 'delay'; ms: number }
  /** Relay upstream's headers and `afterBytes` of its body, then send nothing more, keeping the connection open. */
  | { kind: 'stall'; afterBytes: number }
  /** Serve upstream's body followed by `bytes` extra bytes, with a matching Content-Length. */
  | { kind: 'extend'; bytes: number }
  /** Forward without the Range header, so upstream answers 200 with the whole body. */
  | { kind: 'whole' }
  /** Forward, then override these response headers (lowercase names). */
  | { kind: 'headers'; headers: Record<string, string> };

export interface FaultRule {
  method?: string | string[];
  /** Tested against the request path with its query string. */
  path?: RegExp;
  /** Tested against the request's Range header ('' when it has none). */
  range?: RegExp;
  /** Matching requests to let through before the rule fires (default 0). */
  skip?: number;
  /** How many times it fires (default 1). */
  times?: number;
  action: FaultAction;
}

export interface LoggedRequest {
  method: string;
  path: string;
  status?: number;
  fault?: FaultAction['kind'];
  /** The request carried an Authorization header. */
  authorized: boolean;
  /** Set once the client connection that carried this request has closed. */
  closed?: boolean;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`: use as the registry name. */
  host: string;
  port: number;
  log: LoggedRequest[];
  /** Client connections accepted so far (reset() clears it). */
  connections(): number;
  add(rule: FaultRule): void;
  /** Removes all rules and clears the log. */
  reset(): void;
  /** Requests seen, by method and optionally path. */
  count(method?: string, path?: RegExp): number;
  close(): Promise<void>;
}

interface LiveRule extends FaultRule {
  seen: number;
  fired: number;
}

export interface FaultProxyOptions {
  /**
   * Keep client connections alive across requests (drop upstream's
   * hop-by-hop Connection header, which says close because every upstream
   * request has a fresh connection). Off by default: tests of aborts count
   * on each request's connection closing with it.
   */
  keepAlive?: boolean;
}

export async function startFaultProxy(upstream: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  if (target.protocol !== 'http:') throw new Error('the fault proxy forwards to http:// upstreams only');
  if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost') throw new Error('the fault proxy forwards to loopback only');
  let rules: LiveRule[] = [];
  let accepted = 0;
  const log: LoggedRequest[] = [];
  const sockets = new Set<net.Socket>();
  /** The requests each client connection carried, marked closed with it. */
  const carried = new WeakMap<net.Socket, LoggedRequest[]>();
  /** Upstream requests in flight, destroyed by close(). */
  const upstreams = new Set<http.ClientRequest>();

  const pick = (req: http.IncomingMessage): LiveRule | undefined => {
    for (const r of rules) {
      const methods = r.method === undefined ? undefined : Array.isArray(r.method) ? r.method : [r.method];
      if (methods && !methods.includes(req.method ?? '')) continue;
      if (r.path && !r.path.test(req.url ?? '')) continue;
      if (r.range && !r.range.test(req.headers.range ?? '')) continue;
      if (r.fired >= (r.times ?? 1)) continue;
      r.seen++;
      if (r.seen <= (r.skip ?? 0)) continue;
      r.fired++;
      return r;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const entry: LoggedRequest = { method: req.method ?? '?', path: req.url ?? '/', authorized: req.headers.authorization !== undefined };
    log.push(entry);
    carried.get(req.socket)?.push(entry);
    const rule = pick(req);
    const action = rule?.action;
    if (action) entry.fault = action.kind;

    if (action?.kind === 'status') {
      req.resume();
      entry.status = action.status;
      const body = action.body ?? '';
      res.writeHead(action.status, { 'Content-Length': String(Buffer.byteLength(body)), ...(action.headers ?? {}) });
      res.end(body);
      return;
    }
    if (action?.kind === 'drop') {
      req.socket.destroy();
      return;
    }

    // The client went away (or the proxy is closing): drop the upstream side too.
    let clientGone = false;
    let up: http.ClientRequest | undefined;
    res.on('close', () => {
      clientGone = true;
      up?.destroy();
    });

    const forward = () => {
      if (clientGone) return;
      // A fresh connection per request (no shared keep-alive agent), so
      // nothing upstream outlives the client's request or close().
      const headers = { ...req.headers };
      if (action?.kind === 'whole') delete headers.range;
      const u = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers,
          agent: false,
        },
        (ures) => {
          entry.status = ures.statusCode;
          const status = ures.statusCode ?? 502;
          if (opts.keepAlive) {
            delete ures.headers.connection;
            delete ures.headers['keep-alive'];
          }
          if (!action || action.kind === 'delay' || action.kind === 'cut-request' || action.kind === 'whole') {
            res.writeHead(status, ures.headers);
            ures.pipe(res);
            return;
          }
          if (action.kind === 'headers') {
            res.writeHead(status, { ...ures.headers, ...action.headers });
            ures.pipe(res);
            return;
          }
          if (action.kind === 'drop-after-forward') {
            ures.resume();
            ures.on('end', () => req.socket.destroy());
            return;
          }
          if (action.kind === 'cut' || action.kind === 'stall') {
            res.writeHead(status, ures.headers);
            let sent = 0;
            if (action.kind === 'stall') {
              ures.on('data', (c: Buffer) => {
                if (sent < action.afterBytes) res.write(c.subarray(0, action.afterBytes - sent));
                sent += c.length;
              });
              return;
            }
            ures.on('data', (c: Buffer) => {
              if (sent >= action.afterBytes) return;
              const part = c.subarray(0, action.afterBytes - sent);
              sent += part.length;
              res.write(part);
              if (sent >= action.afterBytes) {
                // Let the written bytes leave before the connection goes.
                setTimeout(() => req.socket.destroy(), 20);
              }
            });
            ures.on('end', () => setTimeout(() => req.socket.destroy(), 20));
            return;
          }
          const chunks: Buffer[] = [];
          ures.on('data', (c: Buffer) => chunks.push(c));
          ures.on('end', () => {
            let body: Buffer = Buffer.concat(chunks);
            if (action.kind === 'truncate') body = body.subarray(0, Math.min(action.bytes, body.length));
            else if (action.kind === 'corrupt' && body.length > 0) {
              body = Buffer.from(body);
              const at = Math.min(action.offset ?? Math.floor(body.length / 2), body.length - 1);
              body[at] = body[at]! ^ 0xff;
            } else if (action.kind === 'replace') body = action.body;
            else if (action.kind === 'extend') body = Buffer.concat([body, Buffer.alloc(action.bytes, 0x5a)]);
            const headers = { ...ures.headers };
            delete headers['transfer-encoding'];
            headers['content-length'] = String(body.length);
            res.writeHead(status, headers);
            res.end(req.method === 'HEAD' ? undefined : body);
          });
        },
      );
      up = u;
      upstreams.add(u);
      u.on('close', () => upstreams.delete(u));
      u.on('error', () => {
        if (clientGone) return;
        if (!res.headersSent) {
          entry.status = 502;
          res.writeHead(502, { 'Content-Length': '0' });
          res.end();
        } else req.socket.destroy();
      });
      if (action?.kind === 'cut-request') {
        let n = 0;
        req.on('data', (c: Buffer) => {
          if (n >= action.afterBytes) return;
          const part = c.subarray(0, action.afterBytes - n);
          n += part.length;
          u.write(part);
          if (n >= action.afterBytes) {
            setTimeout(() => {
              u.destroy();
              req.socket.destroy();
            }, 20);
          }
        });
        req.on('end', () => {
          if (n < action.afterBytes) u.end();
        });
      } else {
        req.pipe(u);
      }
    };

    if (action?.kind === 'delay') setTimeout(forward, action.ms);
    else forward();
  });
  server.on('connection', (s) => {
    accepted++;
    sockets.add(s);
    const entries: LoggedRequest[] = [];
    carried.set(s, entries);
    s.on('close', () => {
      sockets.delete(s);
      for (const e of entries) e.closed = true;
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    log,
    connections: () => accepted,
    add(rule) {
      rules.push({ ...rule, seen: 0, fired: 0 });
    },
    reset() {
      rules = [];
      log.length = 0;
      accepted = 0;
    },
    count(method, path) {
      return log.filter((e) => (method === undefined || e.method === method) && (path === undefined || path.test(e.path))).length;
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        for (const u of upstreams) u.destroy();
        server.close(() => resolve());
      });
    },
  };
}
