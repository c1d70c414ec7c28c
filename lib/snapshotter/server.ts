/**
 * containerd's Snapshots gRPC service over a Snapshotter, on a unix socket.
 * Errors map to the gRPC codes containerd's errdefs.FromGRPC turns back
 * into ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition and
 * ErrInvalidArgument (the remote-snapshot protocol depends on
 * AlreadyExists); anything else is Unknown.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { isOverlaybdError, OverlaybdError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { serviceDefinition } from '../containerd/proto.js';
import type { Info } from './metastore.js';
import type { Mount } from './mounts.js';
import type { Snapshotter } from './snapshotter.js';
import type { SnapshotterMetrics } from './metrics.js';

const STATUS_OF: Partial<Record<string, grpc.status>> = {
  ENOENT: grpc.status.NOT_FOUND,
  EEXIST: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  EINVAL: grpc.status.INVALID_ARGUMENT,
  ENOTSUP: grpc.status.UNIMPLEMENTED,
  CONFIG_INVALID: grpc.status.INVALID_ARGUMENT,
  USAGE: grpc.status.INVALID_ARGUMENT,
};

export function grpcStatusOf(e: unknown): grpc.status {
  return (isOverlaybdError(e) && STATUS_OF[e.code]) || grpc.status.UNKNOWN;
}

interface Timestamp {
  seconds: string;
  nanos: number;
}

function timestamp(us: number): Timestamp {
  return { seconds: String(Math.floor(us / 1e6)), nanos: (us % 1e6) * 1000 };
}

function infoMessage(i: Info) {
  return { name: i.name, parent: i.parent, kind: i.kind, createdAt: timestamp(i.createdUs), updatedAt: timestamp(i.updatedUs), labels: i.labels };
}

function mountMessage(m: Mount) {
  return { type: m.type, source: m.source, target: m.target ?? '', options: m.options };
}

type Req = Record<string, unknown> & { key?: string; parent?: string; name?: string; labels?: Record<string, string> };

/** The grpc-js handlers; `metrics` observes each call under upstream's function names. */
export function snapshotsHandlers(sn: Snapshotter, log: Logger, metrics?: SnapshotterMetrics): grpc.UntypedServiceImplementation {
  const unary = (fn: string, body: (req: Req) => Promise<unknown>): grpc.handleUnaryCall<Req, unknown> => {
    return (call, callback) => {
      const end = metrics?.start(fn);
      const t0 = performance.now();
      // Each call's duration at debug level: where a container start spends its time.
      const took = () => ({ function: fn, key: call.request.key ?? call.request.name, ms: Math.round(performance.now() - t0) });
      body(call.request).then(
        (res) => {
          end?.(false);
          log.debug('grpc.call', took());
          callback(null, res);
        },
        (e: unknown) => {
          end?.(true);
          const code = grpcStatusOf(e);
          const level = code === grpc.status.UNKNOWN ? 'error' : 'debug';
          log[level]('grpc.error', { ...took(), code: grpc.status[code], error: (e as Error).message });
          callback({ code, details: (e as Error).message });
        },
      );
    };
  };
  const labels = (r: Req) => r.labels ?? {};
  return {
    Prepare: unary('Prepare', async (r) => ({ mounts: (await sn.prepare(r.key ?? '', r.parent ?? '', labels(r))).map(mountMessage) })),
    View: unary('View', async (r) => ({ mounts: (await sn.view(r.key ?? '', r.parent ?? '', labels(r))).map(mountMessage) })),
    Mounts: unary('Mounts', async (r) => ({ mounts: (await sn.mounts(r.key ?? '')).map(mountMessage) })),
    Commit: unary('Commit', async (r) => {
      await sn.commit(r.name ?? '', r.key ?? '', labels(r));
      return {};
    }),
    Remove: unary('Remove', async (r) => {
      await sn.remove(r.key ?? '');
      return {};
    }),
    Stat: unary('Stat', async (r) => ({ info: infoMessage(await sn.stat(r.key ?? '')) })),
    Update: unary('Update', async (r) => {
      const info = (r.info ?? {}) as { name?: string; labels?: Record<string, string> };
      const paths = ((r.updateMask ?? {}) as { paths?: string[] }).paths ?? [];
      return { info: infoMessage(await sn.update({ name: info.name ?? '', labels: info.labels ?? {} }, paths)) };
    }),
    Usage: unary('Usage', async (r) => {
      const u = await sn.usage(r.key ?? '');
      return { size: String(u.size), inodes: String(u.inodes) };
    }),
    Cleanup: unary('Cleanup', async () => {
      await sn.cleanup();
      return {};
    }),
    List: (call: grpc.ServerWritableStream<{ filters?: string[] }, unknown>) => {
      const end = metrics?.start('Walk');
      sn.list(call.request.filters ?? []).then(
        (infos) => {
          end?.(false);
          // Batches keep each message small, as containerd's service does.
          for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100).map(infoMessage) });
          call.end();
        },
        (e: unknown) => {
          end?.(true);
          log.debug('grpc.error', { function: 'Walk', code: grpc.status[grpcStatusOf(e)], error: (e as Error).message });
          call.emit('error', { code: grpcStatusOf(e), details: (e as Error).message });
        },
      );
    },
  };
}

export interface SnapshotsServer {
  address: string;
  /** Graceful stop: finishes the calls in flight. */
  stop(): Promise<void>;
}

/** Serves on `address`: its parent dir made 0700, a stale socket removed. */
export async function serveSnapshots(sn: Snapshotter, address: string, opts: { logger?: Logger; metrics?: SnapshotterMetrics } = {}): Promise<SnapshotsServer> {
  const log = opts.logger ?? silentLogger;
  fs.mkdirSync(path.dirname(address), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(address), 0o700);
  try {
    if (fs.lstatSync(address).isSocket()) fs.unlinkSync(address);
    else throw new OverlaybdError('EEXIST', `snapshotter address ${address} exists and is not a socket`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const server = new grpc.Server();
  server.addService(serviceDefinition('snapshots'), snapshotsHandlers(sn, log, opts.metrics));
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new OverlaybdError('EIO', `cannot listen on ${address}: ${err.message}`, { cause: err })) : resolve())),
  );
  log.info('snapshotter.listening', { address });
  return {
    address,
    // Calls in flight may finish; a client that holds a stream open past 10 s is cut.
    stop: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 10_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
