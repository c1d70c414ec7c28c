/**
 * `overlaybd serve` killed with SIGKILL while it hosts FUSE devices: the
 * FUSE connections die with it, so its loop devices fail I/O with EIO
 * instead of hanging; the next service on the same control socket cleans
 * up what is left under its run dir (dead mounts, loop devices; a mounted
 * one goes away when it is unmounted), logs it, and attaches again.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callService, type DeviceInfo } from '../lib/device/index.js';
import { spawnTool, waitFor } from './helpers/cli.js';
import { localBookworm, writeGlobalConfig } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

let tmp: ReturnType<typeof tempDir>;
let config: string;
let global: string;
let socket: string;
let runDir: string;
const mnt = () => path.join(tmp.dir, 'mnt');

const loopsUnderRunDir = () =>
  execFileSync('losetup', ['-a'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(runDir));
const mountsUnderRunDir = () =>
  fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(runDir));

/** What a loop device is bound to now ('' when unbound); after a lazy unmount the kernel no longer shows the run dir in it. */
function backingFile(dev: string): string {
  try {
    return fs.readFileSync(`/sys/block/${path.basename(dev)}/loop/backing_file`, 'utf8').trim();
  } catch {
    return '';
  }
}

async function startService() {
  const svc = spawnTool('overlaybd', ['serve', '--global', global]);
  await waitFor(() => fs.existsSync(socket) || svc.child.exitCode !== null, 'the control socket');
  expect(svc.child.exitCode).toBeNull();
  return svc;
}

/** The service's JSON log records (stderr is a pipe: one object a line). */
function records(stderr: string): { event: string; [k: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string });
}

const attach = async () => (await callService(socket, 'POST', '/attach', { config })) as DeviceInfo;

beforeAll(async () => {
  tmp = tempDir('obd-svc-restart-');
  const bw = await localBookworm('lz4');
  config = path.join(tmp.dir, 'config.v1.json');
  fs.writeFileSync(config, JSON.stringify({ lowers: bw.layers.map((file) => ({ file })) }));
  socket = path.join(tmp.dir, 'ctl.sock');
  runDir = path.join(tmp.dir, 'ctl.d');
  global = writeGlobalConfig(tmp.dir, { enableAudit: false, controlSocket: socket }).file;
  fs.mkdirSync(mnt());
}, 600_000);

afterAll(() => {
  spawnSync('umount', ['-l', mnt()]);
  for (const m of mountsUnderRunDir()) spawnSync('umount', ['-l', m.split(' ')[4]!]);
  tmp?.cleanup();
});

describe('overlaybd serve killed with SIGKILL', () => {
  it('leaves devices that fail with EIO; the next start cleans them up and attaches again', async () => {
    const first = await startService();
    let mounted = false;
    try {
      const idle = await attach();
      const busy = await attach();
      execFileSync('mount', ['-t', 'ext4', '-o', 'ro', busy.path, mnt()]);
      mounted = true;
      expect(fs.readFileSync(path.join(mnt(), 'etc/debian_version'), 'utf8')).toMatch(/^12\./);

      first.child.kill('SIGKILL');
      await new Promise((r) => first.child.once('exit', r));
      expect(first.child.signalCode).toBe('SIGKILL');

      // The dead FUSE connection: reads end with EIO, no hang.
      const r = spawnSync('dd', [`if=${idle.path}`, 'of=/dev/null', 'bs=4096', 'count=1', 'skip=1000', 'iflag=direct'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.signal).toBeNull();
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/Input\/output error/);
      // The mounted filesystem too, for data it has not cached.
      const cat = spawnSync('cat', [path.join(mnt(), 'usr/bin/bash')], { timeout: 60_000 });
      expect(cat.signal).toBeNull();
      expect(cat.status).not.toBe(0);
      expect(loopsUnderRunDir()).toHaveLength(2);
      expect(mountsUnderRunDir()).toHaveLength(2);

      const second = await startService();
      try {
        await waitFor(() => second.stderr.includes('service.started'), 'service.started');
        const log = records(second.stderr);
        const cleaned = log.find((l) => l.event === 'service.stale_cleaned');
        expect(cleaned).toMatchObject({ runDir, loops: 2, loopsInUse: [busy.path], mounts: 2, dirs: 2, errors: 0 });
        expect(log.filter((l) => l.event === 'service.stale_loop').map((l) => l.device).sort()).toEqual([idle.path, busy.path].sort());
        // The idle loop device is gone; the mounted one stays, marked to go when its user unmounts it.
        expect(loopsUnderRunDir()).toEqual([]);
        expect(backingFile(idle.path)).not.toContain(idle.id);
        const sys = `/sys/block/${path.basename(busy.path)}/loop`;
        expect(fs.readFileSync(`${sys}/autoclear`, 'utf8').trim()).toBe('1');
        const held = backingFile(busy.path);
        expect(held).toMatch(/\/disk$/);
        expect(mountsUnderRunDir()).toEqual([]);
        expect(fs.readdirSync(runDir)).toEqual([]);

        // What the user does: unmount (the loop device then detaches itself) and attach again.
        execFileSync('umount', [mnt()]);
        mounted = false;
        await waitFor(() => backingFile(busy.path) !== held, 'the autoclear loop device to go');
        const again = await attach();
        execFileSync('mount', ['-t', 'ext4', '-o', 'ro', again.path, mnt()]);
        mounted = true;
        expect(spawnSync('chroot', [mnt(), 'cat', '/etc/debian_version'], { encoding: 'utf8' }).stdout).toMatch(/^12\./);
        execFileSync('umount', [mnt()]);
        mounted = false;
      } finally {
        second.child.kill('SIGTERM');
        await new Promise((r) => second.child.once('exit', r));
      }
      expect(second.child.exitCode).toBe(0);
      expect(loopsUnderRunDir()).toEqual([]);
      expect(mountsUnderRunDir()).toEqual([]);
    } finally {
      if (mounted) spawnSync('umount', ['-l', mnt()]);
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
    }
  }, 300_000);
});
