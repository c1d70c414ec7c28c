/**
 * An ext4 apply that does not finish (the process killed, the host disk
 * full) must never leave a filesystem that says "clean" while its bitmaps
 * and counts are wrong: e2fsck -p and the kernel trust a clean superblock.
 * The filesystem is marked not clean on the device from the start of the
 * apply and clean only after everything else is written. Needs root (tmpfs).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isOverlaybdError } from '../lib/errors.js';
import { applyLayer, mkfs } from '../lib/ext4/index.js';
import { spawnTool, toolArgs, waitFor } from './helpers/cli.js';
import { fsck, pythonTar } from './helpers/ext4.js';
import { ROOT, tempDir } from './helpers/vectors.js';

let work = '';
let cleanup = () => {};
beforeAll(() => {
  ({ dir: work, cleanup } = tempDir('obd-ext4-crash-'));
});
afterAll(() => cleanup());

const p = (name: string) => path.join(work, name);

/** The "Filesystem state" line of dumpe2fs -h: "clean", "not clean", ... */
function fsState(img: string): string {
  const info = execFileSync('dumpe2fs', ['-h', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return /^Filesystem state:\s+(.+)$/m.exec(info)?.[1]?.trim() ?? '';
}

/** `overlaybd dump CONFIG > out`. */
function dump(config: string, out: string): void {
  const fd = fs.openSync(out, 'w');
  try {
    const r = spawnSync(process.execPath, [...toolArgs('overlaybd'), 'dump', config], { cwd: ROOT, stdio: ['ignore', fd, 'pipe'] });
    expect(r.status, String(r.stderr)).toBe(0);
  } finally {
    fs.closeSync(fd);
  }
}

/** A tar of `count` files of random bytes spread over `dirs` directories. */
function randomFilesTar(name: string, o: { count: number; dirs: number; size: number; seed: number }): string {
  return pythonTar(
    p(name),
    `
import random
r = random.Random(${o.seed})
with tarfile.open(out, 'w') as t:
    for i in range(${o.count}):
        ti = tarfile.TarInfo(f'd{i % ${o.dirs}}/f{i}'); ti.size = ${o.size}
        t.addfile(ti, io.BytesIO(r.randbytes(${o.size})))
`,
  );
}

describe('an interrupted apply', () => {
  it('overlaybd-apply killed mid-way leaves the upper marked not clean', async () => {
    // 48 files of 1 MiB: their data goes straight to the upper while the
    // metadata waits in the cache, which is where a kill hurts.
    const tar = randomFilesTar('big.tar', { count: 48, dirs: 4, size: 1 << 20, seed: 7 });
    const config = p('config.v1.json');
    fs.writeFileSync(config, JSON.stringify({ lowers: [], upper: { data: 'up.data', index: 'up.index' } }));
    const run = spawnTool('overlaybd-apply', ['--mkfs', '--vsize', '1', '-', config], 'pipe');
    const child = run.child;
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, sig) => res(sig)));
    // Half the tar and no end: the apply cannot finish on its own.
    const bytes = fs.readFileSync(tar);
    child.stdin!.write(bytes.subarray(0, bytes.length >> 1));
    const data = p('up.data');
    // Mid-way: more than 16 MiB of file data has reached the upper.
    await waitFor(() => fs.existsSync(data) && fs.statSync(data).size > 16 << 20, `the upper to grow (${run.stderr})`);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const dev = p('killed.img');
    dump(config, dev);
    expect(fsState(dev)).toBe('not clean');

    // The same apply run to the end says clean, and is.
    fs.writeFileSync(config, JSON.stringify({ lowers: [], upper: { data: 'done.data', index: 'done.index' } }));
    const r = spawnSync(process.execPath, [...toolArgs('overlaybd-apply'), '--mkfs', '--vsize', '1', tar, config], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    dump(config, dev);
    expect(fsState(dev)).toBe('clean');
    expect(fsck(dev).code, fsck(dev).out).toBe(0);
    fs.rmSync(dev);
  });

  it('a host disk filling up leaves the filesystem consistent or marked not clean', async () => {
    const mnt = p('tmpfs');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mnt]);
    try {
      const img = path.join(mnt, 'raw.img');
      fs.writeFileSync(img, '');
      fs.truncateSync(img, 512 << 20);
      await mkfs({ raw: img }, { journal: false });
      expect(fsState(img)).toBe('clean');
      // Leave 6 MiB free for a layer of 24 MiB in small files: their blocks
      // sit in the write-back cache, so the host fills up while the final
      // write-back is part way done.
      const st = fs.statfsSync(mnt);
      const filler = path.join(mnt, 'filler');
      fs.writeFileSync(filler, Buffer.alloc(Number(st.bavail) * Number(st.bsize) - (6 << 20), 1));
      const tar = randomFilesTar('small-files.tar', { count: 1536, dirs: 32, size: 16 << 10, seed: 9 });
      const e = await applyLayer({ raw: img }, tar).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isOverlaybdError(e, 'ENOSPC'), String(e)).toBe(true);
      const state = fsState(img);
      const check = fsck(img);
      // Either the apply left a consistent filesystem (nothing e2fsck would
      // fix, not even the free counts), or the superblock says it is not.
      const consistent = check.code === 0 && !/Fix\? no/.test(check.out);
      if (!consistent) expect(state, check.out).toBe('not clean');
    } finally {
      spawnSync('umount', [mnt], { stdio: 'ignore' });
    }
  });
});
