/**
 * Layer outputs appear atomically: complete at their final name or not at
 * all, never over something that is not a regular file, and never a
 * temporary left behind (failures, races, ENOSPC, signals).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OverlaybdError } from '../lib/errors.js';
import { openImage } from '../lib/image.js';
import { commitLayer, createLayer, inspectLayer } from '../lib/layer.js';
import { compress as zfileCompress } from '../lib/zfile.js';
import { runTool, spawnTool } from './helpers/cli.js';
import { ROOT, tempDir, vector } from './helpers/vectors.js';

const tmp = tempDir('obd-layer-out-');
afterAll(tmp.cleanup);
const MiB = 1 << 20;

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A fresh directory under the test's temp dir. */
function subdir(name: string): string {
  const d = path.join(tmp.dir, name);
  fs.mkdirSync(d);
  return d;
}

async function rejection(p: Promise<unknown>): Promise<OverlaybdError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OverlaybdError);
  return e as OverlaybdError;
}

/**
 * Waits until `writing()` sees the tool's temporary holding data, then sends
 * `signal`; resolves to the exit code. `seen` says the signal landed while
 * the tool was still writing, which the caller must check.
 */
async function interruptWhileWriting(
  child: ChildProcess,
  writing: () => boolean,
  signal: NodeJS.Signals,
): Promise<{ seen: boolean; code: number | null }> {
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let seen = false;
  for (let i = 0; i < 2000 && !seen && child.exitCode === null; i++) {
    seen = writing();
    if (!seen) await new Promise((r) => setTimeout(r, 25));
  }
  if (seen) child.kill(signal);
  return { seen, code: await exited };
}

/** True when `dir` holds the temporary of output `name` and it has data. */
function partialHasData(dir: string, name: string): boolean {
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(`.${name}.partial.`))
    .some((d) => {
      const f = path.join(dir, d, name);
      return fs.existsSync(f) && fs.statSync(f).size > 0;
    });
}

/** A sparse writable layer holding `mib` MiB of random data (does not compress). */
async function randomLayer(dir: string, mib: number): Promise<{ data: string; index: string }> {
  const data = path.join(dir, 'big.data');
  const index = path.join(dir, 'big.index');
  await createLayer({ data, index, virtualSize: 1024 * MiB, sparse: true });
  const img = await openImage({ lowers: [], upper: { data } });
  for (let i = 0; i < mib; i += 4) await img.write(crypto.randomBytes(4 * MiB), i * MiB);
  await img.flush();
  await img.close();
  return { data, index };
}

describe('commit outputs', () => {
  let data: string, index: string;
  beforeAll(async () => {
    ({ data, index } = await randomLayer(subdir('src'), 16));
  });

  it('two concurrent commits to one output: one wins, the file is complete, no temporaries', async () => {
    const dir = subdir('race');
    const out = path.join(dir, 'out.commit');
    for (let round = 0; round < 3; round++) {
      fs.rmSync(out, { force: true });
      const runs = [0, 1].map(() => commitLayer({ data, index, out, zfile: { algorithm: 'lz4' } }));
      const results = await Promise.allSettled(runs);
      const ok = results.filter((r) => r.status === 'fulfilled');
      // Without -f exactly one may publish; the other fails cleanly with EEXIST.
      expect(ok).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as OverlaybdError).code).toBe('EEXIST');
      }
      expect(fs.readdirSync(dir)).toEqual(['out.commit']);
      const info = await inspectLayer(out);
      expect(info.zfile).toBeDefined();
      expect(info.trailer).toBeDefined();
      const img = await openImage({ lowers: [out] });
      expect(img.size).toBe(1024 * MiB);
      await img.close();
    }
  });

  it('with force both commits resolve and the survivor is complete', async () => {
    const dir = subdir('race-force');
    const out = path.join(dir, 'out.commit');
    const results = await Promise.allSettled(
      [0, 1].map(() => commitLayer({ data, index, out, force: true, zfile: { algorithm: 'lz4' }, tar: true })),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(fs.readdirSync(dir)).toEqual(['out.commit']);
    const info = await inspectLayer(out);
    expect(info.tar.wrapped).toBe(true);
    expect(info.trailer).toBeDefined();
  });

  it('force replaces a regular file but never a device node', async () => {
    const dir = subdir('device');
    const dev = path.join(dir, 'null');
    const mk = spawnSync('mknod', [dev, 'c', '1', '3']);
    expect(mk.status).toBe(0);
    const before = fs.statSync(dev);
    expect(before.isCharacterDevice()).toBe(true);
    const small = { data: vector('lsmt/A.rw.data'), index: vector('lsmt/A.rw.index') };
    const e = await rejection(commitLayer({ ...small, out: dev, force: true }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toContain(dev);
    expect(e.message).toMatch(/not a regular file/);
    const e2 = await rejection(zfileCompress(vector('lsmt/A.commit'), dev, { force: true }));
    expect(e2.code).toBe('EINVAL');
    const after = fs.statSync(dev);
    expect(after.isCharacterDevice()).toBe(true);
    expect(after.rdev).toBe(before.rdev);
    expect(fs.readdirSync(dir)).toEqual(['null']);
    // A regular file is replaced as before.
    const reg = path.join(dir, 'reg.commit');
    fs.writeFileSync(reg, 'old');
    await commitLayer({ ...small, out: reg, force: true, uuid: 'AAAAAAAA-0000-4000-8000-000000000001', message: 'vector layer A' });
    expect(sha256(reg)).toBe(sha256(vector('lsmt/A.commit')));
    expect(fs.readdirSync(dir).sort()).toEqual(['null', 'reg.commit']);
  });

  it('SIGTERM during overlaybd-commit removes the temporary and exits 143', async () => {
    const big = await randomLayer(subdir('sig-src'), 384);
    const dir = subdir('sig');
    const out = path.join(dir, 'out.commit');
    const t = spawnTool('overlaybd-commit', ['-z', '--algorithm', 'zstd', big.data, out]);
    // Interrupt the commit once it is writing its temporary.
    const r = await interruptWhileWriting(t.child, () => partialHasData(dir, 'out.commit'), 'SIGTERM');
    expect(r.seen).toBe(true);
    expect(r.code).toBe(143);
    expect(t.stderr).toBe('');
    expect(fs.readdirSync(dir)).toEqual([]);
  }, 120_000);
});

describe('overlaybd-zfile outputs', () => {
  it('SIGTERM during overlaybd-zfile compression removes the temporary and exits 143', async () => {
    const src = path.join(subdir('zsig-src'), 'random.raw');
    const fd = fs.openSync(src, 'w');
    for (let i = 0; i < 16; i++) fs.writeSync(fd, crypto.randomBytes(4 * MiB));
    fs.closeSync(fd);
    const dir = subdir('zsig');
    const out = path.join(dir, 'out.zfile');
    const t = spawnTool('overlaybd-zfile', ['--algorithm', 'zstd', src, out]);
    const r = await interruptWhileWriting(t.child, () => partialHasData(dir, 'out.zfile'), 'SIGTERM');
    expect(r.seen).toBe(true);
    expect(r.code).toBe(143);
    expect(t.stderr).toBe('');
    expect(fs.readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('SIGINT while overlaybd-zfile stages stdin removes the staged copy and exits 130', async () => {
    const dir = subdir('zsig-stdin');
    const t = spawnTool('overlaybd-zfile', [path.join(dir, 'out.zfile')], 'pipe');
    // stdin stays open, so the tool is still staging when the signal lands.
    t.child.stdin!.write(crypto.randomBytes(MiB));
    const staged = () => fs.readdirSync(dir).some((n) => n.startsWith('.out.zfile.stdin-') && fs.statSync(path.join(dir, n)).size > 0);
    const r = await interruptWhileWriting(t.child, staged, 'SIGINT');
    expect(r.seen).toBe(true);
    expect(r.code).toBe(130);
    expect(t.stderr).toBe('');
    expect(fs.readdirSync(dir)).toEqual([]);
  }, 120_000);
});

describe('overlaybd-create is atomic', () => {
  let mnt: string;
  beforeAll(() => {
    mnt = subdir('tmpfs');
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    expect(r.status).toBe(0);
  });
  afterAll(() => {
    spawnSync('umount', [mnt]);
  });

  it('ENOSPC during mkfs leaves nothing; the retry after freeing space succeeds', () => {
    const data = path.join(mnt, 'l.data');
    const index = path.join(mnt, 'l.index');
    // Leave too little room for the filesystem's metadata.
    const filler = path.join(mnt, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(2 * MiB - 256 * 1024, 1));
    const r = runTool('overlaybd-create', ['--mkfs', data, index, '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^overlaybd-create: ENOSPC: /);
    expect(fs.readdirSync(mnt)).toEqual(['filler']);
    fs.rmSync(filler);
    const again = runTool('overlaybd-create', ['--mkfs', data, index, '1']);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(fs.readdirSync(mnt).sort()).toEqual(['l.data', 'l.index']);
  });

  it('a size mkfs refuses leaves nothing; a good size then succeeds', async () => {
    const dir = subdir('mkfs-size');
    const data = path.join(dir, 'l.data');
    const index = path.join(dir, 'l.index');
    const e = await rejection(createLayer({ data, index, virtualSize: 64 * 1024, mkfs: true }));
    expect(e.code).not.toBe('EEXIST');
    expect(fs.readdirSync(dir)).toEqual([]);
    await createLayer({ data, index, virtualSize: 64 * MiB, mkfs: true });
    expect(fs.readdirSync(dir).sort()).toEqual(['l.data', 'l.index']);
    // The layer has a filesystem: ext4's magic at 1024 + 56 of the device.
    const img = await openImage({ lowers: [], upper: { data, index } });
    const sb = await img.read(1024, 1024);
    await img.close();
    expect(sb.readUInt16LE(56)).toBe(0xef53);
    // And the files are not replaced by a second create.
    const e2 = await rejection(createLayer({ data, index, virtualSize: 64 * MiB }));
    expect(e2.code).toBe('EEXIST');
  });
});
