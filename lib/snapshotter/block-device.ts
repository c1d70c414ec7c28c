/**
 * attachAndMountBlockDevice / unmountAndDetachBlockDevice
 * (accelerated-container-image.md §1.6) through our device service: the
 * same control-socket requests `overlaybd attach` and `overlaybd detach`
 * make, then mount(8) of the filesystem on `block/mountpoint`. The device
 * path is kept in `block/backstore_mark`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { OverlaybdError } from '../errors.js';
import type { Logger } from '../log.js';
import { callService, type DeviceInfo } from '../device/service.js';
import type { RwMode, SnapshotterConfig } from './config.js';
import type { Layout } from './layout.js';

const execFileP = promisify(execFile);

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

function mountInfo(): MountInfo[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [pre, post = ''] = l.split(' - ');
      const f = pre!.split(' ');
      const p = post.split(' ');
      return { mountPoint: unescape(f[4] ?? ''), fsType: p[0] ?? '', superOptions: p[2] ?? '' };
    });
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount that holds `p` (resolved): the last one mounted on the longest prefix of its path. */
export function mountHolding(p: string): MountInfo | undefined {
  const real = fs.realpathSync(p);
  let best: MountInfo | undefined;
  for (const m of mountInfo()) {
    const under = m.mountPoint === '/' || real === m.mountPoint || real.startsWith(m.mountPoint + '/');
    if (under && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

export function isMountPoint(dir: string): boolean {
  return mountInfo().some((m) => m.mountPoint === dir);
}

/** Some overlay mount names `dir` in its options (a container still runs on it). */
export function overlayUses(dir: string): boolean {
  return mountInfo().some((m) => m.fsType === 'overlay' && m.superOptions.includes(dir));
}

const EROFS_MAGIC = 0xe0f5e1e2;

function isErofs(dev: string): boolean {
  const fd = fs.openSync(dev, 'r');
  try {
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 1024) === 4 && b.readUInt32LE(0) === EROFS_MAGIC;
  } finally {
    fs.closeSync(fd);
  }
}

export class BlockDevices {
  /** The warm-ups running (undefined when none), and the newest snapshot waiting for one. */
  #warming: Promise<void> | undefined;
  #nextWarm: string | undefined;

  constructor(
    readonly layout: Layout,
    readonly config: SnapshotterConfig,
    readonly log: Logger,
  ) {}

  /**
   * Asks the device service, in the background, to read a pulled layer's
   * headers and indexes (and the filesystem's first blocks) into its cache,
   * so the first container's attach waits less on the registry. One at a
   * time: a pull takes its layers bottom up and each layer's config holds
   * the ones below, so only the newest asked for while one runs is done
   * next. Failures are only logged: the attach reads what it needs anyway.
   */
  warmSoon(id: string): void {
    this.#nextWarm = id;
    this.#warming ??= this.#warmQueued();
  }

  async #warmQueued(): Promise<void> {
    for (let id = this.#nextWarm; id !== undefined; id = this.#nextWarm) {
      this.#nextWarm = undefined;
      const config = this.layout.configPath(id);
      try {
        const r = (await callService(this.config.deviceSocket, 'POST', '/warm', { config })) as { ms?: number };
        this.log.debug('block.warmed', { id, ms: r.ms });
      } catch (e) {
        this.log.debug('block.warm_failed', { id, error: (e as Error).message });
      }
    }
    this.#warming = undefined;
  }

  /** The device path of an attached snapshot (its backstore_mark), else undefined. */
  devicePath(id: string): string | undefined {
    try {
      return fs.readFileSync(path.join(this.layout.block(id), 'backstore_mark'), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Attaches `id`'s config.v1.json and, unless `mode` is dev, mounts it on
   * block/mountpoint: read-only for overlayfs, read-write for dir. A no-op
   * when already mounted (or attached, for dev).
   */
  async attachAndMount(id: string, mode: RwMode, fsTypeSpec: string): Promise<void> {
    const mountpoint = this.layout.mountpoint(id);
    if (mode === 'dev' ? this.devicePath(id) !== undefined : isMountPoint(mountpoint)) return;
    const config = this.layout.configPath(id);
    const t0 = performance.now();
    let info: DeviceInfo;
    try {
      info = (await callService(this.config.deviceSocket, 'POST', '/attach', { config, frontend: this.config.deviceFrontend })) as DeviceInfo;
    } catch (e) {
      let result = '';
      try {
        result = fs.readFileSync(path.join(this.layout.block(id), 'init-debug.log'), 'utf8').trim();
      } catch {
        /* none */
      }
      // The device service's codes (ENOENT for "no service") must not read as a missing snapshot.
      throw new OverlaybdError('EIO', `failed to attach ${config}: ${(e as Error).message}${result ? ` (${result})` : ''}`, { cause: e });
    }
    fs.writeFileSync(path.join(this.layout.block(id), 'backstore_mark'), info.path);
    const attachMs = Math.round(performance.now() - t0);
    const [fsType0 = 'ext4', mountOpts = ''] = fsTypeSpec.split(';');
    const fsType = isErofs(info.path) ? 'erofs' : fsType0;
    if (mode === 'dev') {
      this.log.info('block.attached', { id, device: info.path, attachMs });
      return;
    }
    const opts = [mode === 'overlayfs' ? 'ro' : 'rw', ...(mountOpts ? [mountOpts] : fsType === 'ext4' ? ['discard'] : fsType === 'xfs' ? ['nouuid', 'discard'] : [])];
    fs.mkdirSync(mountpoint, { recursive: true, mode: 0o711 });
    const t1 = performance.now();
    try {
      await execFileP('mount', ['-t', fsType, '-o', opts.join(','), info.path, mountpoint]);
    } catch (e) {
      await callService(this.config.deviceSocket, 'POST', '/detach', { device: info.path }).catch(() => {});
      fs.rmSync(path.join(this.layout.block(id), 'backstore_mark'), { force: true });
      throw new OverlaybdError('EIO', `mount -t ${fsType} ${info.path} ${mountpoint}: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, { cause: e });
    }
    this.log.info('block.mounted', { id, device: info.path, fsType, mountpoint, attachMs, mountMs: Math.round(performance.now() - t1) });
  }

  /** Unmounts and detaches `id`'s device, unless an overlay still uses its mountpoint (and not `force`). */
  async unmountAndDetach(id: string, force = false): Promise<void> {
    const mountpoint = this.layout.mountpoint(id);
    if (!force && overlayUses(mountpoint)) {
      this.log.info('block.in_use', { id, mountpoint });
      return;
    }
    while (isMountPoint(mountpoint)) await execFileP('umount', [mountpoint]);
    const mark = path.join(this.layout.block(id), 'backstore_mark');
    let device = '';
    try {
      device = fs.readFileSync(mark, 'utf8').trim();
    } catch (e) {
      this.log.warn('block.no_backstore_mark', { id, error: (e as Error).message });
      return;
    }
    try {
      await callService(this.config.deviceSocket, 'POST', '/detach', { device });
    } catch (e) {
      // ENOENT: the service no longer has it (or is gone, and its FUSE devices with it).
      if (!(e instanceof OverlaybdError && e.code === 'ENOENT')) throw new OverlaybdError('EIO', `detach ${device}: ${(e as Error).message}`, { cause: e });
      this.log.warn('block.detach_gone', { id, device, error: e.message });
    }
    fs.rmSync(mark, { force: true });
    this.log.info('block.detached', { id, device });
  }
}
