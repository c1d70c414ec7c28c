/**
 * A connection to containerd's gRPC socket: one client per service, the
 * namespace (and a lease, once taken) sent as gRPC metadata on every call,
 * and errors that name the service, the call and its subject.
 */
import * as grpc from '@grpc/grpc-js';
import { OverlaybdError } from '../errors.js';
import { serviceClient, type ServiceName } from './proto.js';

/** ctr's defaults. */
export const DEFAULT_ADDRESS = '/run/containerd/containerd.sock';
export const DEFAULT_NAMESPACE = 'default';

const NAMESPACE_HEADER = 'containerd-namespace';
const LEASE_HEADER = 'containerd-lease';

export interface ConnectionOptions {
  /** Unix socket path (or a `unix://` address). */
  address?: string;
  namespace?: string;
  /** Deadline of each unary call (default 10 min: an Apply of a large layer takes a while). */
  callTimeoutMs?: number;
  /** Cancels the calls in flight when it aborts; later calls (cleanup) still go out. */
  signal?: AbortSignal;
}

/** A failed containerd call; `grpcCode` is the gRPC status (grpc.status.NOT_FOUND ...). */
export class ContainerdError extends OverlaybdError {
  override name = 'ContainerdError';
  readonly grpcCode: grpc.status;
  /** `service.Method`, e.g. `content.Write`. */
  readonly call: string;

  constructor(call: string, grpcCode: grpc.status, message: string, options?: { cause?: unknown; unreachable?: boolean }) {
    super(options?.unreachable ? 'CONTAINERD_UNREACHABLE' : 'CONTAINERD_ERROR', message, options);
    this.grpcCode = grpcCode;
    this.call = call;
  }
}

/** True when `e` is a containerd call that failed with gRPC status `code`. */
export function isGrpcStatus(e: unknown, code: grpc.status): e is ContainerdError {
  return e instanceof ContainerdError && e.grpcCode === code;
}

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type UnaryMethod = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type DuplexMethod = (md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, unknown>;

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

export class ContainerdConnection {
  readonly address: string;
  readonly namespace: string;
  private readonly socketPath: string;
  private readonly callTimeoutMs: number;
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private lease: string | undefined;
  private readonly inFlight = new Set<{ cancel(): void }>();
  private readonly onAbort = () => {
    for (const c of this.inFlight) c.cancel();
  };
  private readonly signal: AbortSignal | undefined;

  constructor(opts: ConnectionOptions = {}) {
    const address = opts.address ?? DEFAULT_ADDRESS;
    this.socketPath = address.replace(/^unix:\/\//, '');
    if (this.socketPath.length === 0) throw new OverlaybdError('CONFIG_INVALID', 'containerd address is empty');
    this.address = address;
    this.namespace = opts.namespace ?? DEFAULT_NAMESPACE;
    if (!/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(this.namespace)) {
      throw new OverlaybdError('CONFIG_INVALID', `containerd namespace "${this.namespace}": want letters, digits and . _ - inside`);
    }
    this.callTimeoutMs = opts.callTimeoutMs ?? 600_000;
    this.signal = opts.signal;
    this.signal?.addEventListener('abort', this.onAbort);
  }

  private track<C extends { cancel(): void; once(ev: 'status' | 'close', f: () => void): unknown }>(c: C): C {
    this.inFlight.add(c);
    c.once('status', () => this.inFlight.delete(c));
    return c;
  }

  /** Sends `containerd-lease: id` on the calls that follow (undefined stops it). */
  useLease(id: string | undefined): void {
    this.lease = id;
  }

  private client(service: ServiceName): grpc.Client {
    let c = this.clients.get(service);
    if (!c) {
      const Ctor = serviceClient(service);
      c = new Ctor(`unix:${this.socketPath}`, grpc.credentials.createInsecure(), {
        'grpc.max_receive_message_length': 64 << 20,
        'grpc.max_send_message_length': 64 << 20,
      });
      this.clients.set(service, c);
    }
    return c;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(NAMESPACE_HEADER, this.namespace);
    if (this.lease) md.set(LEASE_HEADER, this.lease);
    return md;
  }

  /** A gRPC failure as a ContainerdError: `containerd content.Write sha256:..: <status>`. */
  error(call: string, subject: string, e: unknown): ContainerdError {
    const se = e as Partial<grpc.ServiceError>;
    const code = typeof se.code === 'number' ? se.code : grpc.status.UNKNOWN;
    const detail = (se.details || (e as Error)?.message || String(e)).replace(/\s*Resolution note:\s*$/, '');
    const status = `${grpc.status[code] ?? code}: ${detail}`;
    const what = `containerd ${call}${subject ? ' ' + subject : ''}`;
    // UNAVAILABLE is also containerd's answer for a locked ingest ref: only a failed connection is "not reachable".
    const unreachable = code === grpc.status.UNAVAILABLE && /No connection established|connect E[A-Z]+|ECONNRESET|Connection dropped/.test(detail);
    const msg = unreachable ? `${what}: containerd at ${this.socketPath} is not reachable (is it running?): ${status}` : `${what}: ${status}`;
    return new ContainerdError(call, code, msg, { cause: e, unreachable });
  }

  /** One unary call: `service.Method(req)`; `subject` names what it is about in errors. */
  call<T = Record<string, unknown>>(service: ServiceName, method: string, req: object, subject = ''): Promise<T> {
    const fn = (this.client(service) as unknown as Record<string, UnaryMethod>)[lowerFirst(method)];
    const name = `${service}.${method}`;
    if (typeof fn !== 'function') return Promise.reject(new OverlaybdError('INTERNAL', `containerd API has no call ${name}`));
    return new Promise<T>((resolve, reject) => {
      const c = fn.call(this.client(service), req, this.metadata(), { deadline: Date.now() + this.callTimeoutMs }, (err, res) => {
        this.inFlight.delete(c);
        if (err) reject(this.error(name, subject, err));
        else resolve(res as T);
      });
      this.track(c);
    });
  }

  /** A bidirectional stream (content.Write); the caller maps its errors with error(). */
  duplex(service: ServiceName, method: string): grpc.ClientDuplexStream<unknown, unknown> {
    const fn = (this.client(service) as unknown as Record<string, DuplexMethod>)[lowerFirst(method)];
    if (typeof fn !== 'function') throw new OverlaybdError('INTERNAL', `containerd API has no call ${service}.${method}`);
    return this.track(fn.call(this.client(service), this.metadata(), { deadline: Date.now() + this.callTimeoutMs }));
  }

  close(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
