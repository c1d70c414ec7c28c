/**
 * overlaybd-resize (§6.7) on a --mkfs image holding files written through a
 * mounted FUSE + loop device: growing to 2 GiB rewrites both header sizes
 * and grows the ext4 (e2fsck -fn clean, df bigger, files intact); shrinking
 * back does the reverse; a read-only image, a busy upper and bad arguments
 * are refused by name.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachDevice, createLayer, inspectLayer, openImage } from '../lib/index.js';
import { runTool } from './helpers/cli.js';
import { tempDir } from './helpers/vectors.js';

const GiB = 1024 ** 3;
const files: Record<string, Buffer> = {
  'a.txt': Buffer.from('hello resize\n'),
  'dir/big.bin': Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7919) & 0xff)),
  'dir/sub/c': Buffer.from('c'.repeat(10000)),
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let tmp: { dir: string; cleanup: () => void };
let config: string;
let upper: { data: string; index: string };
const mnt = () => path.join(tmp.dir, 'mnt');

/** Attaches the image, mounts it and runs `fn` on the mount point. */
async function mounted<T>(fn: (dir: string, dev: { file: string; path: string }) => T): Promise<T> {
  const dev = await attachDevice(config, { runDir: path.join(tmp.dir, 'run') });
  try {
    fs.mkdirSync(mnt(), { recursive: true });
    execFileSync('mount', ['-t', 'ext4', dev.path, mnt()]);
    try {
      return fn(mnt(), dev);
    } finally {
      execFileSync('umount', [mnt()]);
    }
  } finally {
    await dev.detach();
  }
}

/** e2fsck -fn on the exported file of the (unmounted) device. */
async function fsck(): Promise<{ status: number | null; out: string }> {
  const dev = await attachDevice(config, { runDir: path.join(tmp.dir, 'run') });
  try {
    const r = spawnSync('e2fsck', ['-fn', dev.file], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    await dev.detach();
  }
}

async function sizes(): Promise<{ image: number; data: number; index: number }> {
  const img = await openImage({ lowers: [], upper });
  const image = img.size;
  await img.close();
  return {
    image,
    data: (await inspectLayer(upper.data)).header.virtualSize,
    index: (await inspectLayer(upper.index)).header.virtualSize,
  };
}

function check(dir: string): void {
  for (const [name, content] of Object.entries(files)) expect(sha(fs.readFileSync(path.join(dir, name))), name).toBe(sha(content));
}

const fsBytes = (dir: string) => {
  const s = fs.statfsSync(dir);
  return s.blocks * s.bsize;
};

beforeAll(async () => {
  tmp = tempDir('obd-resize-');
  upper = { data: path.join(tmp.dir, 'u.data'), index: path.join(tmp.dir, 'u.index') };
  await createLayer({ ...upper, virtualSize: GiB, mkfs: true });
  config = path.join(tmp.dir, 'config.v1.json');
  fs.writeFileSync(config, JSON.stringify({ upper }));
  await mounted((dir) => {
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), content);
    }
  });
}, 120_000);

afterAll(() => {
  spawnSync('umount', ['-l', mnt()]);
  tmp?.cleanup();
});

describe('overlaybd-resize', () => {
  it('grows the layer and the ext4 on it', async () => {
    const before = await mounted((dir) => fsBytes(dir));
    const r = runTool('overlaybd-resize', ['--config', config, '--size', '2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Success: filesystem resized to 2 GB \(\d+\.\d{3} seconds\)\n$/);
    expect(await sizes()).toEqual({ image: 2 * GiB, data: 2 * GiB, index: 2 * GiB });
    const f = await fsck();
    expect(f.status, f.out).toBe(0);
    const after = await mounted((dir) => {
      check(dir);
      return fsBytes(dir);
    });
    expect(after).toBeGreaterThan(before + 0.9 * GiB);
  }, 180_000);

  it('shrinks the ext4 first, then the layer', async () => {
    const r = runTool('overlaybd', ['resize', '--config', config, '--size', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await sizes()).toEqual({ image: GiB, data: GiB, index: GiB });
    const f = await fsck();
    expect(f.status, f.out).toBe(0);
    const bytes = await mounted((dir) => {
      check(dir);
      return fsBytes(dir);
    });
    expect(bytes).toBeLessThanOrEqual(GiB);
  }, 180_000);

  it('grows a sparse upper: its data file follows the size', async () => {
    const sp = { data: path.join(tmp.dir, 's.data'), index: path.join(tmp.dir, 's.index') };
    await createLayer({ ...sp, virtualSize: GiB, sparse: true, mkfs: true });
    const cfg = path.join(tmp.dir, 'sparse.json');
    fs.writeFileSync(cfg, JSON.stringify({ upper: sp }));
    const r = runTool('overlaybd-resize', ['--config', cfg, '--size', '2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.statSync(sp.data).size).toBe(4096 + 2 * GiB);
    expect((await inspectLayer(sp.data)).header.virtualSize).toBe(2 * GiB);
    const dev = await attachDevice(cfg, { runDir: path.join(tmp.dir, 'run') });
    try {
      const f = spawnSync('e2fsck', ['-fn', dev.file], { encoding: 'utf8' });
      expect(f.status, f.stdout + f.stderr).toBe(0);
      expect(f.stdout).toMatch(/\/524288 blocks/);
    } finally {
      await dev.detach();
    }
  }, 180_000);

  it('refuses a read-only image, a busy upper and bad arguments by name', async () => {
    const ro = path.join(tmp.dir, 'ro.json');
    fs.writeFileSync(ro, JSON.stringify({ lowers: [] }));
    const rofs = runTool('overlaybd-resize', ['--config', ro, '--size', '2']);
    expect(rofs.code).toBe(1);
    expect(rofs.stderr).toMatch(/^overlaybd-resize: EROFS: .*ro\.json: the image is read-only \(no upper layer\)/);

    const dev = await attachDevice(config, { runDir: path.join(tmp.dir, 'run') });
    try {
      const busy = runTool('overlaybd-resize', ['--config', config, '--size', '2']);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/EBUSY/);
    } finally {
      await dev.detach();
    }

    const usage: [string[], RegExp][] = [
      [['--size', '2'], /--config is required/],
      [['--config', config], /--size is required/],
      [['--config', config, '--size', '0'], /--size expects a positive whole number of GiB, got '0'/],
      [['--config', config, '--size', '1.5'], /--size expects a positive whole number of GiB, got '1\.5'/],
      [['--config', config, '--size', '2', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of usage) {
      const r = runTool('overlaybd-resize', args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
    }
    const missing = runTool('overlaybd-resize', ['--config', path.join(tmp.dir, 'nope.json'), '--size', '2']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT: cannot read .*nope\.json/);
    expect(await sizes()).toEqual({ image: GiB, data: GiB, index: GiB });
  }, 180_000);
});
