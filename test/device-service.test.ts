/**
 * The device service as a user runs it: `overlaybd serve` in the
 * background, `overlaybd attach/list/detach` against its control socket,
 * the device mounted and read, and SIGTERM detaching what is left.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callService, defaultRunDir } from '../lib/device/service.js';
import { runTool, spawnTool, waitFor } from './helpers/cli.js';
import { localBookworm, writeGlobalConfig } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** Loop devices backed by this service's FUSE files (its run dir, from the socket): not the machine's others. */
const loops = () => sh('losetup', ['-a']).split('\n').filter((l) => l.includes(defaultRunDir(socket))).length;

let tmp: { dir: string; cleanup: () => void };
let config: string;
let socket: string;
let global: string;

beforeAll(async () => {
  tmp = tempDir('obd-devsvc-');
  const bw = await localBookworm('lz4');
  config = path.join(tmp.dir, 'config.v1.json');
  fs.writeFileSync(config, JSON.stringify({ lowers: bw.layers.map((file) => ({ file })) }));
  socket = path.join(tmp.dir, 'ctl.sock');
  global = writeGlobalConfig(tmp.dir, { enableAudit: false, controlSocket: socket }).file;
}, 600_000);

afterAll(() => {
  spawnSync('umount', ['-l', path.join(tmp.dir, 'mnt')]);
  tmp?.cleanup();
});

describe('overlaybd serve', () => {
  it('attaches, lists, serves and detaches devices over its control socket, and detaches the rest on SIGTERM', async () => {
    expect(loops()).toBe(0);
    const svc = spawnTool('overlaybd', ['serve', '--global', global]);
    try {
      await waitFor(() => fs.existsSync(socket), 'the control socket');
      // --socket is not needed: the client reads controlSocket from the same global config.
      const a = runTool('overlaybd', ['attach', '--global', global, config]);
      expect(a.stderr).toBe('');
      expect(a.code).toBe(0);
      const dev = a.stdout.trim();
      expect(dev).toMatch(/^\/dev\/loop\d+$/);
      const b = runTool('overlaybd', ['attach', '--socket', socket, config]);
      expect(b.code).toBe(0);
      const list = JSON.parse(runTool('overlaybd', ['list', '--socket', socket]).stdout);
      expect(list.map((d: { path: string }) => d.path).sort()).toEqual([dev, b.stdout.trim()].sort());
      expect(list[0]).toMatchObject({ frontend: 'fuse', config });
      expect(loops()).toBe(2);
      // A warm-up (what the snapshotter asks on a pull) reads the image and attaches nothing.
      const warmed = (await callService(socket, 'POST', '/warm', { config })) as { ms: number };
      expect(warmed.ms).toBeGreaterThanOrEqual(0);
      expect(loops()).toBe(2);
      await expect(callService(socket, 'POST', '/warm', { config: path.join(tmp.dir, 'none.json') })).rejects.toThrow(/none\.json/);

      const mnt = path.join(tmp.dir, 'mnt');
      fs.mkdirSync(mnt);
      sh('mount', ['-t', 'ext4', '-o', 'ro', dev, mnt]);
      try {
        expect(fs.readFileSync(path.join(mnt, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
        // A mounted device is not detached from under its filesystem.
        const busy = runTool('overlaybd', ['detach', '--socket', socket, dev]);
        expect(busy.code).toBe(1);
        expect(busy.stderr).toMatch(/EBUSY/);
      } finally {
        sh('umount', [mnt]);
      }
      expect(runTool('overlaybd', ['detach', '--socket', socket, dev]).code).toBe(0);
      const left = JSON.parse(runTool('overlaybd', ['list', '--socket', socket]).stdout);
      expect(left).toHaveLength(1);
      const missing = runTool('overlaybd', ['detach', '--socket', socket, dev]);
      expect(missing.stderr).toMatch(/ENOENT: no device/);
      const unsupported = runTool('overlaybd', ['attach', '--socket', socket, '--frontend', 'ublk', config]);
      expect(unsupported.stderr).toMatch(/ENOTSUP/);
    } finally {
      svc.child.kill('SIGTERM');
      await new Promise((r) => svc.child.once('exit', r));
    }
    expect(svc.child.exitCode).toBe(0);
    expect(loops()).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
  }, 180_000);

  it('names the socket when no service answers', () => {
    const r = runTool('overlaybd', ['list', '--socket', path.join(tmp.dir, 'nobody.sock')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENOENT: no device service answers on .*nobody\.sock/);
  });
});
