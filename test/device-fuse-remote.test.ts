/**
 * A lazy (remote) image as a FUSE + loop device: the bookworm image read on
 * demand from a real docker-registry through the image service's cache,
 * mounted and read; then the registry stops and reads of data not cached
 * fail with EIO within the read deadline instead of hanging.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachDevice } from '../lib/device/index.js';
import { ImageService } from '../lib/service/index.js';
import { remoteBookworm, type RemoteBookworm } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

let remote: RemoteBookworm;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  remote = await remoteBookworm();
  tmp = tempDir('obd-fuse-remote-');
}, 600_000);

afterAll(async () => {
  await remote?.close();
  tmp?.cleanup();
});

describe('FUSE + loop over a remote image', () => {
  it('mounts the lazy image, and fails with EIO once the registry is gone', async () => {
    const gfile = path.join(tmp.dir, 'overlaybd.json');
    fs.writeFileSync(gfile, JSON.stringify({ cacheConfig: { cacheType: 'file', cacheDir: path.join(tmp.dir, 'cache'), cacheSizeGB: 4 } }));
    const svc = await ImageService.create({ global: gfile, dockerConfig: false, overrides: { readTimeoutMs: 2000, retries: 2 } });
    const runDir = path.join(tmp.dir, 'run');
    const mnt = path.join(tmp.dir, 'mnt');
    fs.mkdirSync(mnt);
    let mounted = false;
    const d = await attachDevice(remote.writeConfig(path.join(tmp.dir, 'img')), { service: svc, runDir });
    try {
      execFileSync('mount', ['-t', 'ext4', '-o', 'ro', d.path, mnt]);
      mounted = true;
      expect(spawnSync('chroot', [mnt, 'cat', '/etc/debian_version'], { encoding: 'utf8' }).stdout).toMatch(/^12\./);
      execFileSync('umount', [mnt]);
      mounted = false;

      await remote.registry.stop();
      const t0 = Date.now();
      // 256 MiB from 64 MiB on: data blocks of the image that nothing has read yet.
      const r = spawnSync('dd', [`if=${d.path}`, 'of=/dev/null', 'bs=1M', 'skip=64', 'count=256', 'iflag=direct'], { encoding: 'utf8', timeout: 60_000 });
      expect(r.signal).toBeNull();
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/Input\/output error/);
      expect(Date.now() - t0).toBeLessThan(30_000);
    } finally {
      if (mounted) spawnSync('umount', ['-l', mnt]);
      await d.detach();
      await svc.close();
    }
    expect(execFileSync('losetup', ['-a'], { encoding: 'utf8' })).not.toContain(runDir);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(runDir);
  });
});
