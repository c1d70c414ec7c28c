/**
 * The FUSE + loop frontend on this host (root): a converted bookworm image
 * attached as /dev/loopN, its ext4 mounted; a writable device written with
 * O_DIRECT, committed and re-read; a corrupt layer failing with EIO; and
 * attach/detach in a loop leaking no loop device, mount, fd or thread.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attachDevice, type AttachedDevice } from '../lib/device/index.js';
import { nativeImageOf, openImage } from '../lib/image.js';
import { native } from '../lib/native.js';
import { commitLayer, createLayer } from '../lib/layer.js';
import { compareTrees, mergeLayers } from './helpers/convertor-tree.js';
import { localBookworm } from './helpers/remote-image.js';
import { FuseDevices, writeConfig as writeTestConfig } from './helpers/fuse-devices.js';
import { tempDir } from './helpers/vectors.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let tmp: ReturnType<typeof tempDir>;
let runDir: string;
let bookworm: { tar: string; layers: string[] };
const devices = new FuseDevices(() => runDir);
const attach = (cfg: string) => devices.attach(cfg);
const detach = (d: AttachedDevice) => devices.detach(d);
const writeConfig = (name: string, config: object) => writeTestConfig(tmp.dir, name, config);
const mounted = new Set<string>();

/** What this test file holds: loop devices backed by files under runDir, mounts under tmp. */
function holdings() {
  const loops = sh('losetup', ['-a']).split('\n').filter((l) => l.includes(runDir)).length;
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(tmp.dir)).length;
  return {
    loops,
    mounts,
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: fs.readdirSync('/proc/self/task').length,
    runDirs: fs.readdirSync(runDir).length,
  };
}

function mountRo(dev: string, name: string): string {
  const dir = path.join(tmp.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  sh('mount', ['-t', 'ext4', '-o', 'ro', dev, dir]);
  mounted.add(dir);
  return dir;
}

function umount(dir: string): void {
  sh('umount', [dir]);
  mounted.delete(dir);
}

beforeAll(async () => {
  tmp = tempDir('obd-fuse-');
  runDir = path.join(tmp.dir, 'run');
  fs.mkdirSync(runDir);
  bookworm = await localBookworm('lz4');
});

// Clean up whatever a failed test left: mounts first, then devices.
afterEach(async () => {
  for (const dir of mounted) spawnSync('umount', ['-l', dir]);
  mounted.clear();
  await devices.detachAll();
});

afterAll(() => {
  tmp?.cleanup();
});

describe('FUSE + loop devices', () => {
  it('serves a bookworm image: mount the ext4 read-only and read its files', async () => {
    const cfg = writeConfig('ro', { lowers: [{ file: bookworm.layers[0] }] });
    const d = await attach(cfg);
    expect(d.path).toMatch(/^\/dev\/loop\d+$/);
    expect(d.file).toBe(path.join(runDir, d.id, 'disk'));
    // Read-only (no upper) and direct I/O on the FUSE file.
    expect(sh('losetup', ['-n', '-l', '-O', 'DIO,RO,BACK-FILE', d.path]).trim().split(/\s+/)).toEqual(['1', '1', d.file]);
    expect(Number(sh('blockdev', ['--getsize64', d.path]))).toBe(2 * 1024 ** 3);

    const root = mountRo(d.path, 'mnt-ro');
    await expect(d.detach()).rejects.toMatchObject({ code: 'EBUSY' }); // mounted: left alone
    const version = fs.readFileSync(path.join(root, 'etc/debian_version'), 'utf8');
    expect(version).toMatch(/^12\./);
    expect(spawnSync('chroot', [root, 'cat', '/etc/debian_version'], { encoding: 'utf8' }).stdout).toBe(version);
    // The whole tree, file by file, against the source tar.
    const expected = path.join(tmp.dir, 'expected');
    mergeLayers([bookworm.tar], expected, path.join(tmp.dir, 'scratch'));
    expect(compareTrees(expected, root)).toEqual([]);
    fs.rmSync(expected, { recursive: true, force: true });
    umount(root);

    await detach(d);
    expect(sh('losetup', ['-a'])).not.toContain(d.file);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(runDir);
    expect(fs.existsSync(path.join(runDir, d.id))).toBe(false);
  });

  it('writes through the loop device with O_DIRECT; commit and re-read give the same bytes', async () => {
    const up = { data: path.join(tmp.dir, 'upper.data'), index: path.join(tmp.dir, 'upper.index') };
    await createLayer({ ...up, virtualSize: 2 * 1024 ** 3 });
    const cfg = writeConfig('rw', { lowers: [{ file: bookworm.layers[0] }], upper: up });
    const d = await attach(cfg);
    expect(sh('losetup', ['-n', '-l', '-O', 'DIO,RO', d.path]).trim().split(/\s+/)).toEqual(['1', '0']);

    const MiB = 1 << 20;
    const at = 1024 * MiB; // past the ext4 data of bookworm, inside the 2 GiB device
    const pattern = randomBytes(4 * MiB);
    const src = path.join(tmp.dir, 'pattern');
    fs.writeFileSync(src, pattern);
    sh('dd', [`if=${src}`, `of=${d.path}`, 'bs=1M', `seek=${at / MiB}`, 'oflag=direct', 'conv=fsync', 'status=none']);
    // Discard the second MiB (loop: fallocate PUNCH_HOLE, which must read as zeros).
    sh('blkdiscard', ['-o', String(at + MiB), '-l', String(MiB), d.path]);
    const expected = Buffer.from(pattern);
    expected.fill(0, MiB, 2 * MiB);
    sh('blockdev', ['--flushbufs', d.path]);
    const back = execFileSync('dd', [`if=${d.path}`, 'bs=1M', `skip=${at / MiB}`, 'count=4', 'iflag=direct', 'status=none'], { maxBuffer: 8 * MiB });
    expect(sha(back)).toBe(sha(expected));
    // The ext4 below is untouched.
    const root = mountRo(d.path, 'mnt-rw');
    expect(fs.readFileSync(path.join(root, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
    umount(root);
    await detach(d);

    const committed = path.join(tmp.dir, 'committed.lsmt');
    await commitLayer({ ...up, out: committed });
    const img = await openImage({ lowers: [bookworm.layers[0]!, committed] });
    try {
      expect(sha(await img.read(at, 4 * MiB))).toBe(sha(expected));
    } finally {
      await img.close();
    }
  });

  it('fails reads of a corrupt layer with EIO, and still detaches', async () => {
    const bad = path.join(tmp.dir, 'corrupt.blob');
    fs.copyFileSync(bookworm.layers[0]!, bad);
    // Flip bytes in the middle of the compressed data (block CRCs catch it).
    const fd = fs.openSync(bad, 'r+');
    const size = fs.fstatSync(fd).size;
    for (let off = Math.floor(size / 4); off < (size * 3) / 4; off += 1 << 20) fs.writeSync(fd, randomBytes(64), 0, 64, off);
    fs.closeSync(fd);
    const d = await attach(writeConfig('bad', { lowers: [{ file: bad }] }));
    const r = spawnSync('dd', [`if=${d.path}`, 'of=/dev/null', 'bs=1M', 'count=512', 'iflag=direct'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBeNull(); // it ended (no hang)
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Input\/output error/);
    await detach(d);
    expect(sh('losetup', ['-a'])).not.toContain(d.file);
  });

  it('closing an export under an attached loop device fails its I/O instead of hanging', async () => {
    const img = await openImage({ lowers: [bookworm.layers[0]!] });
    const dir = path.join(runDir, 'manual');
    fs.mkdirSync(dir);
    const exp = (await native().fuseExport(nativeImageOf(img), dir)) as { file: string; close(): Promise<void> };
    let loop = '';
    try {
      loop = sh('losetup', ['--find', '--show', '--direct-io=on', '--read-only', exp.file]).trim();
      const t0 = Date.now();
      await exp.close(); // the loop device still holds the file: the connection is aborted
      expect(Date.now() - t0).toBeLessThan(5000);
      const r = spawnSync('dd', [`if=${loop}`, 'of=/dev/null', 'bs=4096', 'count=1', 'skip=100', 'iflag=direct'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.signal).toBeNull();
      expect(r.status).not.toBe(0);
    } finally {
      if (loop) sh('losetup', ['-d', loop]);
      await exp.close();
      await img.close();
    }
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(dir);
    fs.rmdirSync(dir);
  });

  it('refuses TCMU and ublk with ENOTSUP naming what the kernel lacks', async () => {
    const cfg = writeConfig('ro2', { lowers: [{ file: bookworm.layers[0] }] });
    await expect(attachDevice(cfg, { frontend: 'tcmu', runDir })).rejects.toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/target_core_user/) });
    await expect(attachDevice(cfg, { frontend: 'ublk', runDir })).rejects.toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/ublk/) });
  });

  it('attaches and detaches 20 times without leaking loops, mounts, fds or threads', async () => {
    const cfg = writeConfig('loop', { lowers: [{ file: bookworm.layers[0] }] });
    await detach(await attach(cfg)); // warm up the libuv pool
    const before = holdings();
    for (let i = 0; i < 20; i++) {
      const d = await attach(cfg);
      const head = execFileSync('dd', [`if=${d.path}`, 'bs=4096', 'count=1', 'skip=0', 'iflag=direct', 'status=none']);
      expect(head.length).toBe(4096);
      await detach(d);
    }
    expect(holdings()).toEqual(before);
  });
});
