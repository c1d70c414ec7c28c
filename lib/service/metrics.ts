/**
 * The Prometheus exporter of the image service (docs/overlaybd-format.md
 * §6.5): upstream's metric names and labels in text format 0.0.4 at
 * `uriPrefix`. Every `updateIntervalUs` it takes a snapshot of the
 * service's cumulative I/O counters and turns the change since the previous
 * one into throughput and QPS, as upstream's per-window counters do.
 */
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import { Gauge, Registry } from 'prom-client';
import { OverlaybdError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';

/** Cumulative since the service started, except maxLatencyUs: the max since the previous snapshot() call. */
export interface TypeStats {
  count: number;
  bytes: number;
  maxLatencyUs: number;
}

/** `pread`: reads served by the cache layer; `download`: fetches from the registry. */
export interface IoStatsSnapshot {
  pread: TypeStats;
  download: TypeStats;
}

export interface ExporterOptions {
  /** 0 picks a free port (tests). */
  port: number;
  uriPrefix: string;
  updateIntervalUs: number;
  /** Default: every interface, as upstream. */
  host?: string;
  /** The `node` label; default: the host name, as upstream. */
  node?: string;
  logger?: Logger;
}

export interface Exporter {
  url: string;
  close(): Promise<void>;
}

const TYPES = ['pread', 'download'] as const;
// Upstream declares a `mode` label but never gives it a value.
const MODE = '';

function listen(server: http.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const what = `metrics exporter: cannot listen on ${host} port ${port}`;
      if (e.code === 'EADDRINUSE') reject(new OverlaybdError('EBUSY', `${what}: port ${port} is already in use`, { cause: e }));
      else if (e.code === 'EACCES') reject(new OverlaybdError('EPERM', `${what}: ${e.message}`, { cause: e }));
      else reject(new OverlaybdError('EIO', `${what}: ${e.message}`, { cause: e }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

export async function startExporter(opts: ExporterOptions, snapshot: () => IoStatsSnapshot): Promise<Exporter> {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new OverlaybdError('EINVAL', `metrics exporter: port ${opts.port} is not 0..65535`);
  if (!opts.uriPrefix.startsWith('/')) throw new OverlaybdError('EINVAL', `metrics exporter: uriPrefix ${JSON.stringify(opts.uriPrefix)} must start with /`);
  if (!(opts.updateIntervalUs >= 1000)) throw new OverlaybdError('EINVAL', `metrics exporter: updateIntervalUs ${opts.updateIntervalUs} must be at least 1000`);
  const node = opts.node ?? os.hostname();
  const logger = opts.logger ?? silentLogger;

  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[]) => new Gauge({ name, help, labelNames, registers: [registry] });
  const alive = gauge('OverlayBD_Alive', 'overlaybd is running', ['node']);
  const throughput = gauge('OverlayBD_Read_Throughtput', 'Bytes / sec', ['node', 'type', 'mode']);
  const qps = gauge('OverlayBD_QPS', 'reads / sec', ['node', 'type', 'mode']);
  const latency = gauge('OverlayBD_MaxLatency', 'us', ['node', 'type', 'mode']);
  const count = gauge('OverlayBD_Count', 'Bytes', ['node', 'type']);
  alive.set({ node }, 1);

  let prev = snapshot();
  let prevAt = performance.now();
  const publish = (s: IoStatsSnapshot, seconds: number) => {
    for (const type of TYPES) {
      const cur = s[type];
      const old = prev[type];
      const labels = { node, type, mode: MODE };
      throughput.set(labels, seconds > 0 ? (cur.bytes - old.bytes) / seconds : 0);
      qps.set(labels, seconds > 0 ? (cur.count - old.count) / seconds : 0);
      latency.set(labels, cur.maxLatencyUs);
      count.set({ node, type }, cur.bytes);
    }
  };
  publish(prev, 0);
  const timer = setInterval(() => {
    try {
      const s = snapshot();
      const now = performance.now();
      publish(s, (now - prevAt) / 1000);
      prev = s;
      prevAt = now;
    } catch (e) {
      logger.warn('service.metrics.snapshot_failed', { error: (e as Error).message });
    }
  }, opts.updateIntervalUs / 1000);
  timer.unref();

  // Upstream routes every path under the prefix to the exporter.
  const prefix = opts.uriPrefix.replace(/\/+$/, '');
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    const match = pathname === prefix || pathname.startsWith(`${prefix}/`);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(match ? 405 : 404, { 'Content-Type': 'text/plain' }).end(match ? 'method not allowed\n' : 'not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  const host = opts.host ?? '0.0.0.0';
  let addr: net.AddressInfo;
  try {
    addr = await listen(server, opts.port, host);
  } catch (e) {
    clearInterval(timer);
    throw e;
  }
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${urlHost}:${addr.port}${opts.uriPrefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
