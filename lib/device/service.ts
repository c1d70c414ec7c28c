/**
 * The device service (`overlaybd-tcmu`, `overlaybd serve`): one process
 * hosting any number of devices, each a config.v1.json attached through a
 * frontend, all sharing one image service (registry connections, cache,
 * exporter). It answers on a control socket: HTTP with JSON bodies over a
 * unix socket, so `overlaybd attach/detach/list` (and curl) can drive it.
 *
 * TCMU devices are also found rather than asked for: at start (the
 * takeover after a restart: the kernel devices stayed) and every second
 * after, the service serves every overlaybd UIO device nobody serves, as
 * upstream's snapshotter makes them through configfs. A scan of
 * /sys/class/uio was chosen over TCMU's netlink "config" group: it needs
 * no native netlink code, it also covers the restart, and a group member is
 * expected to answer the kernel's requests (tcmu-runner does), which a
 * listener that only watches would not. On close, TCMU devices stay in the
 * kernel for the next start, as upstream's overlaybd-tcmu leaves them.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ERROR_CODES, OverlaybdError, isOverlaybdError, type ErrorCode } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { ImageService } from '../service/image-service.js';
import type { GlobalConfig } from '../service/global-config.js';
import { openImageConfig } from '../service/open-config.js';
import { attachDevice, type AttachedDevice, type Frontend } from './attach.js';
import { snapshotDevice } from './snapshot.js';
import { answerSnapshot, isSnapshotPath, replyJson, startSnapshotApi } from './snapshot-api.js';
import { discoverTcmu, pruneTcmu, type TcmuDevice } from './tcmu.js';

/** How often overlaybd UIO devices made by others are looked for. */
const TCMU_SCAN_MS = 1000;
import { cleanStaleDevices } from './stale.js';
import { readDeviceState, stateFileFor, writeDeviceState, type DeviceRecord } from './state.js';

export interface DeviceInfo {
  id: string;
  path: string;
  config: string;
  frontend: Frontend;
  /** ublk: N of /dev/ublkbN. */
  devId?: number;
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
  /** Where the attached devices are recorded for a restart; default next to the socket (stateFileFor). */
  stateFile?: string;
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
  readonly stateFile: string;
  #devices = new Map<string, { dev: AttachedDevice; info: DeviceInfo }>();
  #server: http.Server;
  #log: Logger;
  #closing: Promise<void> | undefined;
  #api: http.Server | undefined;
  #scanTimer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;

  private constructor(images: ImageService, socket: string, runDir: string, stateFile: string, server: http.Server, log: Logger) {
    this.images = images;
    this.socket = socket;
    this.runDir = runDir;
    this.stateFile = stateFile;
    this.#server = server;
    this.#log = log;
  }

  static async start(opts: DeviceServiceOptions = {}): Promise<DeviceService> {
    const log = opts.logger ?? silentLogger;
    const images = await ImageService.create({ ...(opts.global !== undefined ? { global: opts.global } : {}), logger: log });
    const socket = path.resolve(opts.socket ?? images.global.controlSocket);
    const runDir = path.resolve(opts.runDir ?? defaultRunDir(socket));
    const server = http.createServer();
    const svc = new DeviceService(images, socket, runDir, opts.stateFile ?? stateFileFor(socket), server, log);
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
    const api = images.global.serviceConfig;
    if (api.enable) {
      try {
        svc.#api = await startSnapshotApi(api.address, svc);
      } catch (e) {
        await svc.close();
        throw e;
      }
    }
    if (fs.existsSync('/sys/module/target_core_user')) {
      await svc.scanTcmu();
      svc.#scanTimer = setInterval(() => void svc.scanTcmu(), TCMU_SCAN_MS).unref();
    }
    await svc.#recover();
    log.info('service.started', { socket, runDir });
    return svc;
  }

  list(): DeviceInfo[] {
    return [...this.#devices.values()].map((d) => {
      if (!d.info.path) d.info.path = d.dev.path; // a found TCMU device whose LUN came later
      return d.info;
    });
  }

  /** Serves overlaybd UIO devices nobody serves, forgets the ones the kernel removed. */
  scanTcmu(): Promise<void> {
    this.#scanning ??= (async () => {
      for (const id of await pruneTcmu()) {
        const d = this.#devices.get(id);
        this.#devices.delete(id);
        if (d) this.#log.info('device.removed', { ...d.info });
      }
      const open = (config: string) => openImageConfig(config, { service: this.images });
      const found = await discoverTcmu(open, (uio, name, e) => this.#log.error('device.serve_failed', { uio, name, error: String(e) }));
      for (const dev of found) {
        const info: DeviceInfo = { id: dev.id, path: dev.path, config: dev.config, frontend: 'tcmu' };
        this.#devices.set(dev.id, { dev, info });
        this.#log.info('device.found', { ...info, ringReset: dev.ringReset });
      }
    })().finally(() => (this.#scanning = undefined));
    return this.#scanning;
  }

  async attach(config: string, frontend: Frontend = 'fuse'): Promise<DeviceInfo> {
    const abs = path.resolve(config);
    const t0 = performance.now();
    let dev: AttachedDevice;
    try {
      dev = await attachDevice(abs, { frontend, service: this.images, runDir: this.runDir });
    } catch (e) {
      this.#log.error('device.attach_failed', { config: abs, frontend, code: isOverlaybdError(e) ? e.code : 'INTERNAL', error: (e as Error).message });
      throw e;
    }
    const info: DeviceInfo = { id: dev.id, path: dev.path, config: abs, frontend, ...(dev.devId !== undefined ? { devId: dev.devId } : {}) };
    this.#devices.set(dev.id, { dev, info });
    this.#save();
    this.#log.info('device.attached', { ...info, ms: Math.round(performance.now() - t0), ...dev.timings });
    return info;
  }

  /**
   * Opens a config's image, reads the start of its device and closes it,
   * attaching nothing: the layers' headers, indexes and jump tables and the
   * filesystem's superblock are then in the cache, so a later attach of
   * the image opens without waiting on the registry. The
   * snapshotter asks for it when a pull takes a layer remotely.
   */
  async warm(config: string): Promise<{ ms: number }> {
    const abs = path.resolve(config);
    const t0 = performance.now();
    // Only reads: no prefetch, no result file, and no recording into a trace a device is recording.
    const image = await this.images.openImage(abs, { autoPrefetch: false, reportResult: false, recordTrace: false });
    try {
      await image.read(0, WARM_BYTES);
    } finally {
      await image.close();
    }
    const ms = Math.round(performance.now() - t0);
    this.#log.info('image.warmed', { config: abs, ms });
    return { ms };
  }

  /**
   * Re-attaches the devices a previous service recorded and did not detach
   * (it was killed): ublk devices are taken over from the kernel; the
   * others cannot outlive their server and are dropped with an error log.
   */
  async #recover(): Promise<void> {
    let records: DeviceRecord[];
    try {
      records = readDeviceState(this.stateFile);
    } catch (e) {
      this.#log.error('service.state_unreadable', { file: this.stateFile, error: String(e) });
      records = [];
    }
    for (const r of records) {
      if (r.frontend === 'tcmu') continue; // the UIO scan takes TCMU devices over
      if (r.frontend !== 'ublk' || r.devId === undefined) {
        this.#log.error('device.not_recovered', { ...r, error: `the ${r.frontend} frontend cannot take over a device after a restart` });
        continue;
      }
      try {
        const dev = await attachDevice(r.config, { frontend: 'ublk', service: this.images, ublk: { devId: r.devId, recover: true } });
        const info: DeviceInfo = { id: dev.id, path: dev.path, config: r.config, frontend: 'ublk', devId: r.devId };
        this.#devices.set(dev.id, { dev, info });
        this.#log.info('device.recovered', { ...info });
      } catch (e) {
        this.#log.error('device.not_recovered', { ...r, error: String(e) });
      }
    }
    this.#save();
  }

  /** Records the devices for a restart; a failure is logged (the devices still work). */
  #save(): void {
    try {
      writeDeviceState(this.stateFile, this.list());
    } catch (e) {
      this.#log.error('service.state_unwritable', { file: this.stateFile, error: String(e) });
    }
  }

  /** Detaches by id or block device path. */
  async detach(which: string): Promise<void> {
    const entry = this.#find(which);
    if (!entry) throw new OverlaybdError('ENOENT', `no device ${which} in this service`);
    try {
      await entry.dev.detach();
    } catch (e) {
      this.#log.warn('device.detach_failed', { ...entry.info, code: isOverlaybdError(e) ? e.code : 'INTERNAL', error: (e as Error).message });
      throw e;
    }
    this.#devices.delete(entry.info.id);
    this.#save();
    this.#log.info('device.detached', { ...entry.info });
  }

  /** A device by its id, block device path or upstream dev_id. */
  #find(which: string): { dev: AttachedDevice; info: DeviceInfo } | undefined {
    return [...this.#devices.values()].find((d) => d.info.id === which || d.info.path === which || d.dev.upstreamId === which);
  }

  hasDevice(id: string): boolean {
    return this.#find(id) !== undefined;
  }

  /** Live snapshot of a device (§6.6): see snapshotDevice. */
  async snapshot(id: string, config: string): Promise<void> {
    const entry = this.#find(id);
    if (!entry) throw new OverlaybdError('ENOENT', `no device ${id} in this service`);
    if (!entry.dev.image) throw new OverlaybdError('ENOTSUP', `device ${id} (${entry.info.frontend}) does not expose its image for snapshots`);
    await snapshotDevice({ config: entry.info.config, image: entry.dev.image }, config);
    this.#log.info('device.snapshot', { ...entry.info, next: config });
  }

  /** Detaches every device, stops the socket and the image service. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
      if (this.#api) await new Promise<void>((resolve) => this.#api!.close(() => resolve()));
      fs.rmSync(this.socket, { force: true });
      clearInterval(this.#scanTimer);
      await this.#scanning;
      for (const { dev, info } of [...this.#devices.values()]) {
        if (info.frontend === 'tcmu') {
          await (dev as TcmuDevice).release().catch((e: unknown) => this.#log.error('device.release_failed', { ...info, error: String(e) }));
          this.#devices.delete(info.id);
          continue;
        }
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
    if (isSnapshotPath(req.url)) {
      req.resume();
      return replyJson(res, await answerSnapshot(req.method, req.url, this));
    }
    try {
      const body = req.method === 'POST' ? await readJson(req) : {};
      if (req.method === 'GET' && req.url === '/list') return reply(200, this.list());
      if (req.method === 'POST' && req.url === '/attach') {
        const config = stringField(body, 'config');
        const frontend = (body.frontend ?? 'fuse') as Frontend;
        return reply(200, await this.attach(config, frontend));
      }
      if (req.method === 'POST' && req.url === '/warm') return reply(200, await this.warm(stringField(body, 'config')));
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

/**
 * What a warm-up reads from the device's start: ext4's superblock and group
 * descriptors (for bookworm, all of it lies in the blob's first 256 KiB; the
 * mount still reads one more unit, which 4 MiB here did not reach either).
 */
const WARM_BYTES = 1 << 20;

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
