/**
 * The live snapshot HTTP API as upstream's api_server serves it (docs §6.6):
 * `GET|POST /snapshot?dev_id=<id>&config=<new config path>`, answered with
 * `{"success": bool, "message": string}`: 400 for a missing or bad
 * argument, 404 for an unknown device, 500 when the snapshot fails. Served
 * on the control socket and, when serviceConfig.enable is set, on
 * serviceConfig.address (TCP, http://host:port) as upstream does.
 */
import http from 'node:http';
import { OverlaybdError, isOverlaybdError } from '../errors.js';

/** The device service as this API sees it. */
export interface SnapshotHost {
  hasDevice(devId: string): boolean;
  snapshot(devId: string, config: string): Promise<void>;
}

export interface ApiAnswer {
  status: number;
  /** Upstream's fields, plus `code` (ours) on failures: the OverlaybdError code. */
  body: { success: boolean; message: string; code?: string };
}

/** True for the paths this API owns. */
export function isSnapshotPath(url: string | undefined): boolean {
  return (url ?? '').split('?')[0] === '/snapshot';
}

// Failures the request's arguments caused (a bad or missing config or upper).
const BAD_ARGUMENT = new Set(['EINVAL', 'ENOENT', 'EROFS', 'EBUSY', 'CONFIG_INVALID', 'LSMT_TOO_MANY_LAYERS', 'LSMT_NOT_SEALED']);

export async function answerSnapshot(method: string | undefined, url: string | undefined, host: SnapshotHost): Promise<ApiAnswer> {
  const fail = (status: number, message: string, code = status === 404 ? 'ENOENT' : 'EINVAL'): ApiAnswer => ({
    status,
    body: { success: false, message, code },
  });
  if (method !== 'GET' && method !== 'POST') return fail(405, `${method} /snapshot: use GET or POST`, 'ENOTSUP');
  const q = new URL(url ?? '', 'http://x').searchParams;
  const devId = q.get('dev_id') ?? '';
  const config = q.get('config') ?? '';
  if (!devId || !config) {
    const missing = [!devId && 'dev_id', !config && 'config'].filter(Boolean).join(' and ');
    return fail(400, `snapshot request lacks ${missing} (/snapshot?dev_id=<id>&config=<new config path>)`);
  }
  if (!host.hasDevice(devId)) return fail(404, `no device with dev_id ${devId} in this service (see /list)`);
  try {
    await host.snapshot(devId, config);
    return { status: 200, body: { success: true, message: `snapshot of ${devId} created; its config is now ${config}'s content` } };
  } catch (e) {
    const code = isOverlaybdError(e) ? e.code : 'INTERNAL';
    const status = BAD_ARGUMENT.has(code) ? 400 : 500;
    return fail(status, (e as Error).message, code);
  }
}

export function replyJson(res: http.ServerResponse, a: ApiAnswer): void {
  res.writeHead(a.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(a.body));
}

/** Serves /snapshot on serviceConfig.address; resolves once listening. */
export async function startSnapshotApi(address: string, host: SnapshotHost): Promise<http.Server> {
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    throw new OverlaybdError('CONFIG_INVALID', `serviceConfig.address ${JSON.stringify(address)} is not a URL like http://127.0.0.1:9862`);
  }
  if (u.protocol !== 'http:') throw new OverlaybdError('CONFIG_INVALID', `serviceConfig.address ${address}: only http:// is served`);
  const server = http.createServer((req, res) => {
    if (!isSnapshotPath(req.url)) {
      replyJson(res, { status: 404, body: { success: false, message: `no endpoint ${req.url}; this API serves /snapshot`, code: 'ENOENT' } });
      return;
    }
    req.resume();
    void answerSnapshot(req.method, req.url, host).then((a) => replyJson(res, a));
  });
  const hostname = u.hostname.replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new OverlaybdError(e.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `serviceConfig.address ${address}: ${e.message}`, { cause: e })),
    );
    server.listen(Number(u.port || 80), hostname, () => resolve());
  });
  return server;
}
