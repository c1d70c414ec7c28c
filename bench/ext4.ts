/**
 * User-space ext4 apply on a real bookworm minbase tar (170 MB): MB/s of
 * uncompressed tar into a fresh raw image, mkfs and final fsync included,
 * against the usual way to get the same ext4 image, measured in the same
 * run: extract the tar into a tmpfs directory, then `mkfs.ext4 -d` of the
 * same size (extract + mkfs timed together). Best of three each. Needs root
 * (tmpfs mount, tar keeping owners).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { applyLayer } from '../lib/ext4/index.js';
import { bookwormTar } from '../test/helpers/bookworm.js';

const exec = promisify(execFile);
const ROUNDS = 3;
const VSIZE_GB = 2;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function run(): Promise<Record<string, number | string>> {
  const tar = await bookwormTar();
  const tarMB = fs.statSync(tar).size / 1e6;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-ext4-'));
  const tmpfs = path.join(work, 'tmpfs');
  fs.mkdirSync(tmpfs);
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=2g', 'tmpfs', tmpfs]);
  try {
    const img = path.join(work, 'apply.img');
    let apply = Infinity;
    for (let i = 0; i < ROUNDS; i++) {
      fs.rmSync(img, { force: true });
      apply = Math.min(apply, await timed(() => applyLayer({ raw: img }, tar, { mkfs: true, vsizeGB: VSIZE_GB })));
    }
    const written = fs.statSync(img).blocks * 512;

    const base = path.join(work, 'mkfs.img');
    let extract = Infinity;
    let mkfs = Infinity;
    let both = Infinity;
    for (let i = 0; i < ROUNDS; i++) {
      await exec('sh', ['-c', `rm -rf "${tmpfs}"/* "${tmpfs}"/.[!.]* 2>/dev/null; true`]);
      fs.rmSync(base, { force: true });
      const e = await timed(() => exec('tar', ['-xpf', tar, '-C', tmpfs, '--numeric-owner', '--xattrs', '--xattrs-include=*']));
      const m = await timed(() =>
        exec('mkfs.ext4', ['-q', '-F', '-b', '4096', '-I', '256', '-d', tmpfs, base, `${VSIZE_GB}G`], { maxBuffer: 16 << 20 }),
      );
      extract = Math.min(extract, e);
      mkfs = Math.min(mkfs, m);
      both = Math.min(both, e + m);
    }
    const r = (x: number) => Number(x.toFixed(3));
    return {
      'tar MB': r(tarMB),
      'apply (mkfs+apply+fsync) s': r(apply),
      'apply MB/s': r(tarMB / apply),
      'baseline: tar -x to tmpfs s': r(extract),
      'baseline: mkfs.ext4 -d s': r(mkfs),
      'baseline MB/s': r(tarMB / both),
      'apply / baseline speed': r(both / apply),
      'apply image allocated MB': r(written / 1e6),
    };
  } finally {
    await exec('umount', [tmpfs]).catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
