/**
 * The snapshotter's Prometheus exporter (accelerated-container-image.md
 * §1.11): `grpc_error_count{function}`, `grpc_latency_seconds{function}`
 * (exponential buckets 0.0001 x 2^k, 20 of them), `is_alive`, and the
 * default process collectors, at `http://<host>:<port><uriPrefix>`.
 * Upstream only ever sets is_alive to 0 at shutdown; we set 1 while
 * serving, which is what the name promises (docs/decisions.md).
 */
import http from 'node:http';
import type net from 'node:net';
import { collectDefaultMetrics, Counter, exponentialBuckets, Gauge, Histogram, Registry } from 'prom-client';
import { OverlaybdError } from '../errors.js';

export interface SnapshotterMetrics {
  /** Starts timing a call of `fn`; the returned function ends it, counting an error when `failed`. */
  start(fn: string): (failed: boolean) => void;
  registry: Registry;
}

export function createSnapshotterMetrics(): SnapshotterMetrics & { alive: Gauge } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const errors = new Counter({ name: 'grpc_error_count', help: 'Error count of the snapshotter gRPC functions', labelNames: ['function'], registers: [registry] });
  const latency = new Histogram({
    name: 'grpc_latency_seconds',
    help: 'Latency of the snapshotter gRPC functions',
    labelNames: ['function'],
    buckets: exponentialBuckets(0.0001, 2, 20),
    registers: [registry],
  });
  const alive = new Gauge({ name: 'is_alive', help: 'Whether the snapshotter is serving', registers: [registry] });
  return {
    registry,
    alive,
    start(fn) {
      const t0 = process.hrtime.bigint();
      return (failed) => {
        latency.observe({ function: fn }, Number(process.hrtime.bigint() - t0) / 1e9);
        if (failed) errors.inc({ function: fn });
      };
    },
  };
}

export interface MetricsExporter {
  url: string;
  close(): Promise<void>;
}

/** Serves `registry` under `uriPrefix` on `host:port` (0 picks a free port). */
export async function startMetricsExporter(registry: Registry, opts: { port: number; uriPrefix: string; host?: string }): Promise<MetricsExporter> {
  const prefix = opts.uriPrefix.replace(/\/+$/, '');
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname !== prefix && pathname !== `${prefix}/`) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body),
      (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  const host = opts.host ?? '0.0.0.0';
  const addr = await new Promise<net.AddressInfo>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new OverlaybdError(e.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `snapshotter metrics: cannot listen on ${host} port ${opts.port}: ${e.message}`, { cause: e })),
    );
    server.listen(opts.port, host, () => resolve(server.address() as net.AddressInfo));
  });
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}${opts.uriPrefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
