/**
 * The device service (`overlaybd-tcmu`, `overlaybd serve`): one process
 * hosting any number of devices, each a config.v1.json attached through a
 * frontend, all sharing one image service (registry connections, cache,
 * exporter). It answers on a control socket: HTTP with JSON bodies over a
 * unix socket, so `overlaybd attach/detach/list` (and curl) can drive it.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ERROR_CODES, OverlaybdError, isOverlaybdError, type ErrorCode } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { ImageService } from '../service/image-service.js';
import type { GlobalConfig } from '../service/global-config.js';
import { attachDevice, type AttachedDevice, type Frontend } from './attach.js';
import { cleanStaleDevices } from './stale.js';

export interface DeviceInfo {
  id: string;
  path: string;
  config: string;
  frontend: Frontend;
}

export interface DeviceServiceOptions {
  /** overlaybd.json (argv[1] of overlaybd-tcmu); default /etc/overlaybd/overlaybd.json or upstream's defaults. */
  global?: string | GlobalConfig;
  /** Control socket path; default the global config's controlSocket. */
  socket?: string;
  /**
   * Where FUSE mount points are made; owned by this service, which cleans up
   * what a killed predecessor left there. Default: `<socket dir>/<socket
   * name without .sock>.d` (/run/overlaybd/overlaybd.d), one per socket.
   */
  runDir?: string;
  logger?: Logger;
}

/** The run dir that belongs to a control socket. */
export function defaultRunDir(socket: string): string {
  return path.join(path.dirname(socket), `${path.basename(socket, '.sock')}.d`);
}

export class DeviceService {
  readonly socket: string;
  readonly runDir: string;
  readonly images: ImageService;
  #devices = new Map<string, { dev: AttachedDevice; info: DeviceInfo }>();
  #server: http.Server;
  #log: Logger;
  #closing: Promise<void> | undefined;

  private constructor(images: ImageService, socket: string, runDir: string, server: http.Server, log: Logger) {
    this.images = images;
    this.socket = socket;
    this.runDir = runDir;
    this.#server = server;
    this.#log = log;
  }

  static async start(opts: DeviceServiceOptions = {}): Promise<DeviceService> {
    const log = opts.logger ?? silentLogger;
    const images = await ImageService.create({ ...(opts.global !== undefined ? { global: opts.global } : {}), logger: log });
    const socket = path.resolve(opts.socket ?? images.global.controlSocket);
    const runDir = path.resolve(opts.runDir ?? defaultRunDir(socket));
    const server = http.createServer();
    const svc = new DeviceService(images, socket, runDir, server, log);
    server.on('request', (req, res) => void svc.#handle(req, res));
    try {
      // Whoever answers on the socket owns runDir: only a free socket lets us clean it.
      await claimSocket(socket);
      await cleanStaleDevices(runDir, log);
      await listen(server, socket);
    } catch (e) {
      await images.close();
      throw e;
    }
    log.info('service.started', { socket, runDir });
    return svc;
  }

  list(): DeviceInfo[] {
    return [...this.#devices.values()].map((d) => d.info);
  }

  async attach(config: string, frontend: Frontend = 'fuse'): Promise<DeviceInfo> {
    const abs = path.resolve(config);
    let dev: AttachedDevice;
    try {
      dev = await attachDevice(abs, { frontend, service: this.images, runDir: this.runDir });
    } catch (e) {
      this.#log.error('device.attach_failed', { config: abs, frontend, code: isOverlaybdError(e) ? e.code : 'INTERNAL', error: (e as Error).message });
      throw e;
    }
    const info: DeviceInfo = { id: dev.id, path: dev.path, config: abs, frontend };
    this.#devices.set(dev.id, { dev, info });
    this.#log.info('device.attached', { ...info });
    return info;
  }

  /** Detaches by id or block device path. */
  async detach(which: string): Promise<void> {
    const entry = [...this.#devices.values()].find((d) => d.info.id === which || d.info.path === which);
    if (!entry) throw new OverlaybdError('ENOENT', `no device ${which} in this service`);
    try {
      await entry.dev.detach();
    } catch (e) {
      this.#log.warn('device.detach_failed', { ...entry.info, code: isOverlaybdError(e) ? e.code : 'INTERNAL', error: (e as Error).message });
      throw e;
    }
    this.#devices.delete(entry.info.id);
    this.#log.info('device.detached', { ...entry.info });
  }

  /** Detaches every device, stops the socket and the image service. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
      fs.rmSync(this.socket, { force: true });
      for (const { info } of [...this.#devices.values()]) {
        await this.detach(info.id).catch(() => {}); // logged by detach
      }
      await this.images.close();
      this.#log.info('service.stopped', { socket: this.socket });
    })();
    return this.#closing;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const body = req.method === 'POST' ? await readJson(req) : {};
      if (req.method === 'GET' && req.url === '/list') return reply(200, this.list());
      if (req.method === 'POST' && req.url === '/attach') {
        const config = stringField(body, 'config');
        const frontend = (body.frontend ?? 'fuse') as Frontend;
        return reply(200, await this.attach(config, frontend));
      }
      if (req.method === 'POST' && req.url === '/detach') {
        await this.detach(stringField(body, 'device'));
        return reply(200, { success: true });
      }
      reply(404, { code: 'ENOENT', message: `no endpoint ${req.method} ${req.url}` });
    } catch (e) {
      const code = isOverlaybdError(e) ? e.code : 'INTERNAL';
      reply(code === 'EINVAL' || code === 'CONFIG_INVALID' ? 400 : 500, { code, message: (e as Error).message });
    }
  }
}

function stringField(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v.length === 0) throw new OverlaybdError('EINVAL', `request body: ${key} must be a non-empty string`);
  return v;
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const c of req) {
    text += c;
    if (text.length > 1 << 20) throw new OverlaybdError('EINVAL', 'request body over 1 MiB');
  }
  try {
    const v = JSON.parse(text || '{}') as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new OverlaybdError('EINVAL', `request body is not a JSON object: ${(e as Error).message}`);
  }
}

/** EBUSY when a live service answers on the socket; a stale socket file (no one answering) is removed. */
async function claimSocket(socket: string): Promise<void> {
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  if (fs.existsSync(socket)) {
    if (await answers(socket)) throw new OverlaybdError('EBUSY', `${socket}: another device service answers there`);
    fs.rmSync(socket, { force: true });
  }
}

async function listen(server: http.Server, socket: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/list', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** A client call to a running service; errors come back as OverlaybdError with the service's code. */
export async function callService(socket: string, method: 'GET' | 'POST', urlPath: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: urlPath, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let v: { code?: string; message?: string } | unknown;
        try {
          v = JSON.parse(text);
        } catch {
          return reject(new OverlaybdError('EIO', `${socket}: answer is not JSON: ${text.slice(0, 200)}`));
        }
        if (res.statusCode === 200) return resolve(v);
        const err = v as { code?: string; message?: string };
        const code = (ERROR_CODES as string[]).includes(err.code ?? '') ? (err.code as ErrorCode) : 'EIO';
        reject(new OverlaybdError(code, err.message ?? `HTTP ${res.statusCode}`));
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new OverlaybdError(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'ENOENT' : 'EIO',
          `no device service answers on ${socket} (${e.code ?? e.message}): start overlaybd-tcmu or overlaybd serve`,
        ),
      );
    });
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
