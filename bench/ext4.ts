/**
 * User-space ext4 apply on a real bookworm minbase tar (170 MB): MB/s of
 * uncompressed tar into a fresh raw image, mkfs and final fsync included,
 * against the usual way to get the same ext4 image, measured in the same
 * run: extract the tar into a tmpfs directory, then `mkfs.ext4 -d` of the
 * same size (extract + mkfs timed together). Best of three each. Needs root
 * (tmpfs mount, tar keeping owners).
 *
 * Large directories: a layer with one directory of 10k and of 100k empty
 * files, then a deletion layer whiting out half of them, applied onto a
 * fresh filesystem; per-file µs (the apply of an empty layer subtracted as
 * fixed cost) and the 100k / 10k ratio, which stays near 1 when adding and
 * removing names costs the same whatever the directory's size. Wall and CPU
 * time (all threads) both: the CPU figure holds when other work shares the
 * machine. `--dirs-only` leaves out the bookworm figures.
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
const DIR_SIZES = [10_000, 100_000];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** Tars of one directory with n files, and of whiteouts for every other one. */
async function dirTars(work: string, n: number): Promise<{ add: string; del: string }> {
  const add = path.join(work, `dir-${n}.tar`);
  const del = path.join(work, `dir-${n}-del.tar`);
  const py = `import sys, tarfile
n, add, rm = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def entry(name, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.mtime = 1600000000; ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return ti
with tarfile.open(add, 'w') as t:
    t.addfile(entry('big', tarfile.DIRTYPE))
    for i in range(n): t.addfile(entry('big/file-%07d.txt' % i))
with tarfile.open(rm, 'w') as t:
    for i in range(0, n, 2): t.addfile(entry('big/.wh.file-%07d.txt' % i))
`;
  await exec('python3', ['-c', py, String(n), add, del]);
  return { add, del };
}

/** Wall and CPU (all threads of the process) seconds of fn. */
async function timedBoth(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c = process.cpuUsage();
  const wall = await timed(fn);
  const d = process.cpuUsage(c);
  return { wall, cpu: (d.user + d.system) / 1e6 };
}

type DirCost = { add: number; del: number; addCpu: number; delCpu: number };

/**
 * Per-file µs of adding n names to one directory and removing half, best
 * of `rounds`, wall and CPU: the CPU figure stays meaningful when other
 * work shares the cores and the disk.
 */
async function largeDir(work: string, n: number, rounds: number): Promise<DirCost> {
  const { add, del } = await dirTars(work, n);
  const empty = path.join(work, 'empty.tar');
  await exec('tar', ['-cf', empty, '-T', '/dev/null']);
  const img = path.join(work, 'dir.img');
  const best = { fixed: Infinity, fixedCpu: Infinity, add: Infinity, addCpu: Infinity, del: Infinity, delCpu: Infinity };
  for (let i = 0; i < rounds; i++) {
    fs.rmSync(img, { force: true });
    await applyLayer({ raw: img }, empty, { mkfs: true, vsizeGB: VSIZE_GB });
    const f = await timedBoth(() => applyLayer({ raw: img }, empty, {}));
    const a = await timedBoth(() => applyLayer({ raw: img }, add, {}));
    const d = await timedBoth(() => applyLayer({ raw: img }, del, {}));
    best.fixed = Math.min(best.fixed, f.wall);
    best.fixedCpu = Math.min(best.fixedCpu, f.cpu);
    best.add = Math.min(best.add, a.wall);
    best.addCpu = Math.min(best.addCpu, a.cpu);
    best.del = Math.min(best.del, d.wall);
    best.delCpu = Math.min(best.delCpu, d.cpu);
  }
  fs.rmSync(img, { force: true });
  const per = (s: number, fixed: number, k: number) => ((s - fixed) * 1e6) / k;
  return {
    add: per(best.add, best.fixed, n),
    del: per(best.del, best.fixed, n / 2),
    addCpu: per(best.addCpu, best.fixedCpu, n),
    delCpu: per(best.delCpu, best.fixedCpu, n / 2),
  };
}

export async function run(): Promise<Record<string, number | string>> {
  const dirWork = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-ext4-dirs-'));
  const dirs: Record<string, number | string> = {};
  try {
    const [small, large] = DIR_SIZES as [number, number];
    const a = await largeDir(dirWork, small, ROUNDS);
    const b = await largeDir(dirWork, large, 2);
    const r = (x: number) => Number(x.toFixed(2));
    const k = (x: number) => `${x / 1000}k`;
    for (const [what, w, c] of [
      ['add', 'add', 'addCpu'],
      ['delete half', 'del', 'delCpu'],
    ] as const) {
      dirs[`dir ${k(small)}: ${what} µs/file (wall/CPU)`] = `${r(a[w])} / ${r(a[c])}`;
      dirs[`dir ${k(large)}: ${what} µs/file (wall/CPU)`] = `${r(b[w])} / ${r(b[c])}`;
      dirs[`dir ${what} ${k(large)} / ${k(small)} wall`] = r(b[w] / a[w]);
      dirs[`dir ${what} ${k(large)} / ${k(small)} CPU`] = r(b[c] / a[c]);
    }
  } finally {
    fs.rmSync(dirWork, { recursive: true, force: true });
  }
  // `npm run bench -- ext4 --dirs-only` skips the bookworm figures.
  if (process.argv.includes('--dirs-only')) return dirs;
  return { ...(await bookwormApply()), ...dirs };
}

async function bookwormApply(): Promise<Record<string, number | string>> {
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
