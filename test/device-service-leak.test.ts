/**
 * The device service in this process, driven through its control socket:
 * 200 attach/detach cycles of a FUSE device leave the loop devices, FUSE
 * mounts, run dirs, fds and threads as they were.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callService, DeviceService, type DeviceInfo } from '../lib/device/index.js';
import { localBookworm } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

const CYCLES = 200;

let tmp: ReturnType<typeof tempDir>;
let svc: DeviceService;
let config: string;

/** What the service holds: loops backed by its run dir, mounts under it, its entries, and this process's fds and threads. */
function holdings() {
  const loops = execFileSync('losetup', ['-a'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(svc.runDir)).length;
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(svc.runDir)).length;
  return {
    loops,
    mounts,
    runDirs: fs.readdirSync(svc.runDir).length,
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: fs.readdirSync('/proc/self/task').length,
  };
}

const attach = async () => (await callService(svc.socket, 'POST', '/attach', { config })) as DeviceInfo;
const detach = (d: DeviceInfo) => callService(svc.socket, 'POST', '/detach', { device: d.path });

beforeAll(async () => {
  tmp = tempDir('obd-svc-leak-');
  const bw = await localBookworm('lz4');
  config = path.join(tmp.dir, 'config.v1.json');
  fs.writeFileSync(config, JSON.stringify({ lowers: bw.layers.map((file) => ({ file })) }));
  const global = { cacheConfig: { cacheDir: path.join(tmp.dir, 'cache') }, enableAudit: false };
  fs.writeFileSync(path.join(tmp.dir, 'overlaybd.json'), JSON.stringify(global));
  svc = await DeviceService.start({ global: path.join(tmp.dir, 'overlaybd.json'), socket: path.join(tmp.dir, 'ctl.sock') });
}, 600_000);

afterAll(async () => {
  await svc?.close();
  tmp?.cleanup();
});

describe('device service attach/detach cycles', () => {
  it(`leaks nothing over ${CYCLES} FUSE attach/detach cycles`, async () => {
    expect(svc.runDir).toBe(path.join(tmp.dir, 'ctl.d'));
    // Warm up: the libuv pool, libfuse's and the image's first threads, the HTTP connection.
    for (let i = 0; i < 2; i++) await detach(await attach());
    const before = holdings();
    expect(before).toMatchObject({ loops: 0, mounts: 0, runDirs: 0 });
    for (let i = 0; i < CYCLES; i++) {
      const d = await attach();
      expect(d.path).toMatch(/^\/dev\/loop\d+$/);
      // A live device: its first block is the ext4 boot area, then the superblock magic at 1080.
      const head = execFileSync('dd', [`if=${d.path}`, 'bs=4096', 'count=1', 'iflag=direct', 'status=none']);
      expect(head.readUInt16LE(1080)).toBe(0xef53);
      await detach(d);
    }
    expect(await callService(svc.socket, 'GET', '/list')).toEqual([]);
    expect(holdings()).toEqual(before);
  }, 900_000);
});
