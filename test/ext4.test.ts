/**
 * User-space ext4 (lib/ext4, cpp/ext4): mkfs and layer apply onto raw images
 * and overlaybd images, read back by loop-mounting read-only and compared
 * with what the tars say (test/helpers/ext4_tree.py), e2fsck -fn after
 * every apply. Needs root for mount.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isOverlaybdError } from '../lib/errors.js';
import { applyLayer, mkfs, type ApplyProgress } from '../lib/ext4/index.js';
import { openImage } from '../lib/image.js';
import { commitLayer, createLayer } from '../lib/layer.js';
import { diffTrees, fsck, modelTree, pythonTar, unmountAll, walkTree, withMount } from './helpers/ext4.js';
import { repoRoot } from './helpers/native-tools.js';
import { tempDir, vector } from './helpers/vectors.js';

const GiB = 1024 ** 3;
const L1 = vector('inputs/layer1.tar');
const L1GZ = vector('inputs/layer1.tar.gz');
const L2 = vector('inputs/layer2.tar');

let work = '';
let cleanup = () => {};
beforeAll(() => {
  ({ dir: work, cleanup } = tempDir('obd-ext4-'));
});
afterAll(() => {
  unmountAll();
  cleanup();
});

const p = (name: string) => path.join(work, name);
const sha256 = (file: string) => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];

function expectClean(img: string): void {
  const r = fsck(img);
  expect(r.out, 'e2fsck -fn').toMatch(/Pass 5/);
  expect(r.code, r.out).toBe(0);
}

async function expectTree(img: string, tars: string[]): Promise<void> {
  const want = modelTree(tars);
  const got = await withMount(img, (d) => walkTree(d));
  expect(diffTrees(want, got)).toEqual([]);
}

async function expectError(p: Promise<unknown>, code: string, re?: RegExp): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(isOverlaybdError(e), `expected OverlaybdError ${code}, got ${String(e)}`).toBe(true);
  expect((e as { code: string }).code, (e as Error).message).toBe(code);
  if (re) expect((e as Error).message).toMatch(re);
  return e as Error;
}

/** Dumps an image stack to a raw file. */
async function dumpStack(spec: { lowers: string[]; upper?: { data: string; index?: string } }, out: string): Promise<void> {
  const img = await openImage(spec);
  const fd = fs.openSync(out, 'w');
  try {
    await img.dump(fd);
  } finally {
    fs.closeSync(fd);
    await img.close();
  }
}

describe('mkfs', () => {
  it('makes a clean, deterministic filesystem quickly, even at 64 GiB', async () => {
    const a = p('mkfs-a.img');
    const b = p('mkfs-b.img');
    const t0 = Date.now();
    await mkfs({ raw: a }, { vsizeGB: 64, seed: 's' });
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(5000);
    expect(fs.statSync(a).size).toBe(64 * GiB);
    // Sparse: only metadata is written (bitmaps, descriptors, journal superblock).
    expect(fs.statSync(a).blocks * 512).toBeLessThan(64 << 20);
    expectClean(a);
    await mkfs({ raw: a }, { vsizeGB: 1, seed: 's' });
    await mkfs({ raw: b }, { vsizeGB: 1, seed: 's' });
    expect(sha256(a)).toBe(sha256(b));
    const info = execFileSync('dumpe2fs', ['-h', a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const f of ['has_journal', 'extent', '64bit', 'flex_bg', 'huge_file', 'dir_nlink', 'extra_isize'])
      expect(info).toMatch(new RegExp(`features:.*\\b${f}\\b`));
    expect(info).toMatch(/Block size:\s+4096/);
    expect(info).toMatch(/Inode size:\s+256/);
    // Another seed, another uuid.
    const c = p('mkfs-c.img');
    await mkfs({ raw: c }, { vsizeGB: 1, seed: 'other', journal: false });
    expectClean(c);
    const infoC = execFileSync('dumpe2fs', ['-h', c], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(infoC).not.toMatch(/has_journal/);
    const uuid = (s: string) => /UUID:\s+(\S+)/.exec(s)?.[1];
    expect(uuid(infoC)).not.toBe(uuid(info));
    for (const f of [a, b, c]) fs.rmSync(f);
  });

  it('rejects a device too small for ext4', async () => {
    const f = p('tiny.img');
    fs.writeFileSync(f, Buffer.alloc(1 << 20));
    await expectError(mkfs({ raw: f }), 'EINVAL', /too small/);
  });

  it('refuses a filesystem whose journal needs recovery', async () => {
    const img = p('recover.img');
    await mkfs({ raw: img }, { vsizeGB: 1 });
    execFileSync('debugfs', ['-w', '-R', 'feature needs_recovery', img], { stdio: 'pipe' });
    await expectError(applyLayer({ raw: img }, L1), 'EXT4_ERROR', /journal needs recovery; run e2fsck first/);
    // Nothing written: the flag is still there and the filesystem unchanged.
    const info = execFileSync('dumpe2fs', ['-h', img], { encoding: 'utf8', stdio: 'pipe' });
    expect(info).toMatch(/needs_recovery/);
    fs.rmSync(img);
  });
});

describe('the apply vectors', () => {
  it('layer1.tar with mkfs reproduces expected/apply-filesystems.txt', async () => {
    const img = p('v1.img');
    const progress: ApplyProgress[] = [];
    const r = await applyLayer({ raw: img }, L1, { mkfs: true, vsizeGB: 1, onProgress: (x) => progress.push(x) });
    expect(r).toMatchObject({ entries: 12, files: 6, dirs: 4, symlinks: 1, hardlinks: 1, tarBytes: 215040 });
    expect(progress.at(-1)).toMatchObject({ done: true, entries: 12, tarBytes: 215040, inputBytes: 215040 });
    expectClean(img);
    const expected = fs
      .readFileSync(vector('expected/apply-filesystems.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('/'));
    expect(expected.length).toBe(12);
    await withMount(img, (d) => {
      for (const line of expected) {
        const [file, type, mode, size, ...rest] = line.split(/\s+/) as string[];
        const ino = Number(/ino=(\d+)/.exec(line)![1]);
        const full = path.join(d, file!);
        const st = fs.lstatSync(full);
        expect((st.mode & 0o7777).toString(8).padStart(6, '0'), file).toBe(mode);
        expect(st.size, file).toBe(Number(size));
        expect(st.ino, file).toBe(ino);
        if (type === 'dir') expect(st.isDirectory(), file).toBe(true);
        if (type === 'file') {
          expect(st.isFile(), file).toBe(true);
          expect(createHash('sha256').update(fs.readFileSync(full)).digest('hex'), file).toBe(rest[0]);
        }
        if (type === 'symlink') expect(fs.readlinkSync(full), file).toBe(rest[1]);
      }
      expect(fs.statSync(path.join(d, 'data/hard')).nlink).toBe(2);
    });
    await expectTree(img, [L1]);
  });

  it('layer2.tar on top: whiteout, opaque directory, replacement', async () => {
    const img = p('v1.img');
    const r = await applyLayer({ raw: img }, L2);
    expect(r.whiteouts).toBe(2);
    expectClean(img);
    await withMount(img, (d) => {
      expect(fs.existsSync(path.join(d, 'rm-me.txt'))).toBe(false);
      expect(fs.readdirSync(path.join(d, 'opq')).sort()).toEqual(['c']);
      expect(fs.readFileSync(path.join(d, 'etc/hello.txt'), 'utf8')).toBe('hello again, layer 2\n');
      // The hard link kept the old inode; the replaced name got a new one.
      expect(fs.readFileSync(path.join(d, 'data/hard'), 'utf8')).toMatch(/^hello/);
      expect(fs.statSync(path.join(d, 'data/hard')).nlink).toBe(1);
      expect(fs.statSync(path.join(d, 'new.txt')).size).toBe(5000);
    });
    await expectTree(img, [L1, L2]);
  });

  it('gives byte-identical devices for the same inputs (gzip input too)', async () => {
    const a = p('det-a.img');
    const b = p('det-b.img');
    await applyLayer({ raw: a }, L1, { mkfs: true, vsizeGB: 1, seed: 'det' });
    await applyLayer({ raw: a }, L2);
    await applyLayer({ raw: b }, L1GZ, { mkfs: true, vsizeGB: 1, seed: 'det' });
    await applyLayer({ raw: b }, L2);
    expect(sha256(a)).toBe(sha256(b));
    fs.rmSync(a);
    fs.rmSync(b);
  });

  it('reads a layer from a FIFO', async () => {
    const img = p('fifo.img');
    const fifo = p('layer.fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `cat "${L1GZ}" > "${fifo}"`]);
    const exited = new Promise<number | null>((res) => writer.on('exit', (code) => res(code)));
    const r = await applyLayer({ raw: img }, fifo, { mkfs: true, vsizeGB: 1 });
    expect(await exited).toBe(0);
    expect(r.inputBytes).toBe(fs.statSync(L1GZ).size);
    expectClean(img);
    await expectTree(img, [L1]);
    fs.rmSync(img);
  });
});

describe('overlaybd images', () => {
  it('applies into a writable upper, commits, and stacks the next layer', async () => {
    const d = p('stack');
    fs.mkdirSync(d);
    const up1 = { data: path.join(d, 'u1.data'), index: path.join(d, 'u1.index') };
    // mkfs creates the missing upper (a 4 GiB writable layer).
    await applyLayer({ lowers: [], upper: up1 }, L1, { mkfs: true, vsizeGB: 4 });
    // Only what the filesystem needs lands in the upper, not the 4 GiB.
    expect(fs.statSync(up1.data).size).toBeLessThan(8 << 20);
    await commitLayer({ data: up1.data, index: up1.index, out: path.join(d, 'l1.commit') });
    const up2 = { data: path.join(d, 'u2.data'), index: path.join(d, 'u2.index') };
    await createLayer({ ...up2, virtualSize: 4 * GiB });
    const r = await applyLayer({ lowers: [path.join(d, 'l1.commit')], upper: up2 }, L2);
    expect(r.bytesWritten).toBeLessThan(1 << 20);
    const raw = path.join(d, 'dev.raw');
    await dumpStack({ lowers: [path.join(d, 'l1.commit')], upper: up2 }, raw);
    expectClean(raw);
    await expectTree(raw, [L1, L2]);
    fs.rmSync(d, { recursive: true });
  });

  it("applies layer2 on top of upstream's apply/L1.zfile", async () => {
    const d = p('upstream');
    fs.mkdirSync(d);
    const lower = vector('apply/L1.zfile');
    const up = { data: path.join(d, 'u.data'), index: path.join(d, 'u.index') };
    await createLayer({ ...up, virtualSize: GiB });
    await applyLayer({ lowers: [lower], upper: up }, L2);
    const raw = path.join(d, 'dev.raw');
    await dumpStack({ lowers: [lower], upper: up }, raw);
    expectClean(raw);
    // Upstream's tool stamps directories it creates with the clock; only
    // the files and metadata the tars define are compared.
    const want = modelTree([L1, L2]);
    const got = await withMount(raw, (m) => walkTree(m));
    for (const n of Object.values(want.tree)) if (n.type === 'dir') n.mtime = null;
    want.tree['']!.mode = got.tree['']!.mode;
    expect(diffTrees(want, got)).toEqual([]);
    fs.rmSync(d, { recursive: true });
  });

  it('the CLI applies with a config.v1.json and with --raw from stdin', async () => {
    const d = p('cli');
    fs.mkdirSync(d);
    const cfg = path.join(d, 'config.v1.json');
    fs.writeFileSync(cfg, JSON.stringify({ lowers: [], upper: { data: 'u.data', index: 'u.index' } }));
    const cli = path.join(repoRoot, 'lib', 'cli', 'overlaybd-apply.ts');
    const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
    let r = spawnSync(tsx, [cli, '--mkfs', '--vsize', '2', L1, cfg], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // The upper named by the config (relative to it) holds the layer.
    const upper = { data: path.join(d, 'u.data'), index: path.join(d, 'u.index') };
    expect(fs.existsSync(upper.data) && fs.existsSync(upper.index)).toBe(true);
    const stacked = path.join(d, 'stack.raw');
    await dumpStack({ lowers: [], upper }, stacked);
    expectClean(stacked);
    await expectTree(stacked, [L1]);
    const raw = path.join(d, 'raw.img');
    r = spawnSync(tsx, [cli, '--mkfs', '--vsize', '1', '--raw', '-', raw], { input: fs.readFileSync(L1GZ), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expectClean(raw);
    r = spawnSync(tsx, [cli, '--raw', L2, raw], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expectClean(raw);
    await expectTree(raw, [L1, L2]);
    r = spawnSync(tsx, [cli, L1], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/USAGE/);
    fs.rmSync(d, { recursive: true });
  });
});

/** Python helper for the fixture scripts: add(tar, name, type, data, **TarInfo fields). */
function pyAdd(defaultMtime: number): string {
  return `def add(t, name, type=tarfile.REGTYPE, data=b'', **kw):
    ti = tarfile.TarInfo(name); ti.type = type; ti.mtime = kw.pop('mtime', ${defaultMtime})
    pax = kw.pop('pax', None)
    if pax: ti.pax_headers = pax
    for k, v in kw.items(): setattr(ti, k, v)
    if type == tarfile.REGTYPE: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)`;
}

describe('every kind of entry', () => {
  it('files, dirs, links, devices, fifos, modes, owners, nsec mtimes, xattrs, long and non-ASCII names', async () => {
    const t1 = pythonTar(
      p('kinds1.tar'),
      `
${pyAdd(1600000000)}
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    add(t, './', tarfile.DIRTYPE, mode=0o755)
    add(t, 'dir', tarfile.DIRTYPE, mode=0o2755, uid=100000, gid=200000)
    add(t, 'tmp', tarfile.DIRTYPE, mode=0o1777)
    add(t, 'dir/setuid', data=b'#!/bin/sh\\n', mode=0o4755)
    add(t, 'dir/empty', mode=0o600, uid=1000, gid=1000)
    add(t, 'dir/nsec', data=b'n', mode=0o644, pax={'mtime': '1700000000.123456789'})
    add(t, 'dir/old', data=b'o', mode=0o644, mtime=100)
    add(t, 'dir/future', data=b'f', mode=0o644, pax={'mtime': '4000000000.5'})
    add(t, 'dir/prehistoric', data=b'p', mode=0o644, pax={'mtime': '-86400.25'})
    add(t, 'dir/' + 'L' * 200 + '/' + 'n' * 255, data=b'long', mode=0o644, pax={})
    add(t, 'dir/héllo wörld/日本語.txt', data='ünïcode'.encode(), mode=0o644)
    add(t, 'dir/fast', tarfile.SYMTYPE, linkname='setuid')
    add(t, 'dir/slow', tarfile.SYMTYPE, linkname='/' + 'x' * 100 + '/target')
    add(t, 'dir/dangling', tarfile.SYMTYPE, linkname='../nowhere')
    add(t, 'dir/hard', tarfile.LNKTYPE, linkname='dir/setuid', mode=0o4755)
    add(t, 'dir/linktolink', tarfile.LNKTYPE, linkname='dir/fast')
    add(t, 'dev/null', tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    add(t, 'dev/big', tarfile.BLKTYPE, devmajor=259, devminor=70000, mode=0o660, gid=6)
    add(t, 'dev/fifo', tarfile.FIFOTYPE, mode=0o644)
    add(t, 'caps', data=b'\\x7fELF', mode=0o755, pax={'SCHILY.xattr.security.capability': '\\x01\\x00\\x00\\x02\\x00\\x20\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00',
        'SCHILY.xattr.user.comment': 'hello', 'SCHILY.xattr.trusted.overlay.opaque': 'y'})
    add(t, 'bigx', data=b'x', mode=0o644, pax={'SCHILY.xattr.user.big': 'v' * 3000})
    add(t, 'repl/file-then-dir', data=b'f', mode=0o644)
    add(t, 'repl/dir-then-file', tarfile.DIRTYPE, mode=0o755)
    add(t, 'repl/dir-then-file/child', data=b'c', mode=0o644)
    add(t, 'repl/keep', tarfile.DIRTYPE, mode=0o700, mtime=5, pax={'SCHILY.xattr.user.old': 'gone', 'SCHILY.xattr.user.k': 'old'})
    add(t, 'repl/keep/lower', data=b'l', mode=0o644)
    add(t, 'repl/dup', data=b'first', mode=0o644)
    add(t, 'repl/dup', data=b'second', mode=0o600)
    add(t, 'implicit/parent/file', data=b'p', mode=0o644)
    for i in range(3000):
        add(t, 'many/f%05d' % i, data=b'%d' % i, mode=0o644)
`,
    );
    const t2 = pythonTar(
      p('kinds2.tar'),
      `
${pyAdd(1650000000)}
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    add(t, 'repl/file-then-dir', tarfile.DIRTYPE, mode=0o750)
    add(t, 'repl/file-then-dir/in', data=b'i', mode=0o644)
    add(t, 'repl/dir-then-file', data=b'now a file', mode=0o644)
    add(t, 'repl/keep', tarfile.DIRTYPE, mode=0o755, uid=7, mtime=9, pax={'SCHILY.xattr.user.k': 'v'})
    add(t, 'repl/keep/upper', data=b'u', mode=0o644)
    # A hard link to a file of the lower layer; its header sets the shared inode.
    add(t, 'lowerlink', tarfile.LNKTYPE, linkname='dir/empty', mode=0o640, uid=33, gid=44, pax={'SCHILY.xattr.user.l': '1'})
    # A new name for the file with a capability: its chown drops it, as in containerd.
    add(t, 'capslink', tarfile.LNKTYPE, linkname='caps', mode=0o755)
    add(t, 'dir/.wh.old', data=b'')
    add(t, 'many/.wh..wh..opq', data=b'')
    add(t, 'many/f00007', data=b'kept', mode=0o644)
    add(t, '.wh.tmp', data=b'')
    add(t, 'dir/.wh..wh.plnk', data=b'')
`,
    );
    const img = p('kinds.img');
    const r1 = await applyLayer({ raw: img }, t1, { mkfs: true, vsizeGB: 1 });
    expect(r1.specials).toBe(3);
    expectClean(img);
    await expectTree(img, [t1]);
    await applyLayer({ raw: img }, t2);
    expectClean(img);
    await expectTree(img, [t1, t2]);
    await withMount(img, (d) => {
      const st = fs.lstatSync(path.join(d, 'dir/future'));
      expect(st.mtimeMs / 1000).toBeCloseTo(4000000000.5, 3);
      expect(fs.readdirSync(path.join(d, 'many'))).toEqual(['f00007']);
      expect(fs.lstatSync(path.join(d, 'dir/empty')).mode & 0o7777).toBe(0o640);
      expect(fs.lstatSync(path.join(d, 'lowerlink')).nlink).toBe(2);
      // As containerd: a re-given directory has only the new header's xattrs; pre-1970 is the epoch.
      expect(fs.lstatSync(path.join(d, 'dir/prehistoric'), { bigint: true }).mtimeNs).toBe(0n);
      expect(execFileSync('python3', ['-c', 'import os,sys; print(sorted(os.listxattr(sys.argv[1])))', path.join(d, 'capslink')], { encoding: 'utf8' }).trim()).toBe("['trusted.overlay.opaque', 'user.comment']");
      expect(execFileSync('python3', ['-c', 'import os,sys; print(sorted(os.listxattr(sys.argv[1])))', path.join(d, 'repl/keep')], { encoding: 'utf8' }).trim()).toBe("['user.k']");
    });
    fs.rmSync(img);
  });

  it('sparse files in the GNU and all three PAX formats, and one past 4 GiB', async () => {
    const src = p('sparse-src');
    fs.mkdirSync(src);
    const big = path.join(src, 'big');
    const fd = fs.openSync(big, 'w');
    fs.writeSync(fd, Buffer.from('head'), 0, 4, 1_000_000);
    fs.writeSync(fd, Buffer.from('middle'), 0, 6, 3 * GiB + 12345);
    fs.writeSync(fd, Buffer.from('tail'), 0, 4, 5 * GiB - 4);
    fs.closeSync(fd);
    const dense = Buffer.alloc(3 << 20);
    for (let i = 0; i < dense.length; i++) dense[i] = (i * 2654435761) >>> 24;
    fs.writeFileSync(path.join(src, 'mixed'), dense);
    fs.truncateSync(path.join(src, 'mixed'), 20 << 20);
    const probes: [number, string][] = [
      [1_000_000, 'head'],
      [3 * GiB + 12345, 'middle'],
      [5 * GiB - 4, 'tail'],
      [2 * GiB, '\0\0\0\0'],
    ];
    for (const fmt of ['gnu', 'posix:0.0', 'posix:0.1', 'posix:1.0']) {
      const [format, ver] = fmt.split(':') as [string, string | undefined];
      const tar = p(`sparse-${fmt.replace(/[:.]/g, '')}.tar`);
      execFileSync('tar', ['-C', src, `--format=${format}`, ...(ver ? [`--sparse-version=${ver}`] : []), '-S', '-cf', tar, 'big', 'mixed']);
      const img = p('sparse.img');
      await applyLayer({ raw: img }, tar, { mkfs: true, vsizeGB: 1 });
      expectClean(img);
      await withMount(img, (d) => {
        const st = fs.statSync(path.join(d, 'big'));
        expect(st.size, fmt).toBe(5 * GiB);
        expect(st.blocks * 512, `${fmt}: holes stay holes`).toBeLessThan(1 << 20);
        const f = fs.openSync(path.join(d, 'big'), 'r');
        for (const [off, text] of probes) {
          const b = Buffer.alloc(text.length);
          fs.readSync(f, b, 0, b.length, off);
          expect(b.toString('latin1'), `${fmt} @${off}`).toBe(text);
        }
        fs.closeSync(f);
        expect(sha256(path.join(d, 'mixed'))).toBe(sha256(path.join(src, 'mixed')));
        expect(fs.statSync(path.join(d, 'mixed')).blocks * 512).toBeLessThan(4 << 20);
      });
      fs.rmSync(img);
      fs.rmSync(tar);
    }
    fs.rmSync(src, { recursive: true });
  });
});

describe('hostile and broken input', () => {
  it('keeps escapes inside the root, follows planted symlinks inside it, last duplicate wins', async () => {
    const t = pythonTar(
      p('hostile.tar'),
      `
def f(t, name, data=b'x', **kw):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644
    for k, v in kw.items(): setattr(ti, k, v)
    t.addfile(ti, io.BytesIO(data))
def l(t, name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; t.addfile(ti)
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    f(t, '/abs.txt', b'abs')
    f(t, '../../../up.txt', b'up')
    f(t, 'a/../../../b.txt', b'b')
    d = tarfile.TarInfo('etc'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
    l(t, 'evil', '/etc')
    l(t, 'evil2', '../../../../../etc')
    l(t, 'evilrel', 'x/../../..')
    f(t, 'evil/passwd', b'root:x:0:0')
    f(t, 'evil2/shadow', b'nope')
    f(t, 'evilrel/planted', b'p')
    l(t, 'dang', '/no/such/dir')
    f(t, 'dang/file', b'd')
    f(t, 'dup', b'one')
    f(t, 'dup', b'two')
`,
    );
    const img = p('hostile.img');
    await applyLayer({ raw: img }, t, { mkfs: true, vsizeGB: 1 });
    expectClean(img);
    await withMount(img, (d) => {
      const read = (f: string) => fs.readFileSync(path.join(d, f), 'utf8');
      expect(read('abs.txt')).toBe('abs');
      expect(read('up.txt')).toBe('up');
      expect(read('b.txt')).toBe('b');
      expect(read('etc/passwd')).toBe('root:x:0:0');
      expect(read('etc/shadow')).toBe('nope');
      expect(read('planted')).toBe('p');
      expect(read('no/such/dir/file')).toBe('d');
      expect(read('dup')).toBe('two');
      expect(fs.lstatSync(path.join(d, 'evil')).isSymbolicLink()).toBe(true);
    });
    fs.rmSync(img);
  });

  it('rejects symlink loops, missing or directory hard link targets, files used as directories', async () => {
    const img = p('bad.img');
    await mkfs({ raw: img }, { vsizeGB: 1 });
    const cases: [string, string, string][] = [
      ["l(t, 'a', 'b'); l(t, 'b', 'a'); f(t, 'a/x')", 'TAR_UNSAFE_PATH', 'symbolic links'],
      ["h(t, 'x', 'missing')", 'ENOENT', 'does not exist'],
      ["d(t, 'dd'); h(t, 'x', 'dd')", 'TAR_BAD_HEADER', 'directory'],
      ["f(t, 'plain'); f(t, 'plain/child')", 'TAR_BAD_HEADER', 'not a directory'],
      ["l(t, 'empty', '')", 'TAR_BAD_HEADER', 'empty target'],
    ];
    for (const [i, [body, code, msg]] of cases.entries()) {
      const t = pythonTar(
        p(`bad${i}.tar`),
        `
def f(t, name, data=b'x'):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
def d(t, name):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; t.addfile(ti)
def l(t, name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; t.addfile(ti)
def h(t, name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target; t.addfile(ti)
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    f(t, 'before%d' % ${i}, b'kept')
    ${body}
`,
      );
      await expectError(applyLayer({ raw: img }, t), code, new RegExp(msg));
      expectClean(img);
      // What came before the bad entry is there.
      await withMount(img, (d) => expect(fs.readFileSync(path.join(d, `before${i}`), 'utf8')).toBe('kept'));
    }
    fs.rmSync(img);
  });

  it('a truncated tar or corrupt gzip fails cleanly, leaving no partial file', async () => {
    const img = p('trunc.img');
    await mkfs({ raw: img }, { vsizeGB: 1 });
    // Cut inside data/big.bin (200000 bytes starting past 2 KiB of headers).
    const cut = p('cut.tar');
    fs.writeFileSync(cut, fs.readFileSync(L1).subarray(0, 100_000));
    await expectError(applyLayer({ raw: img }, cut), 'TAR_TRUNCATED');
    expectClean(img);
    await withMount(img, (d) => {
      expect(fs.readFileSync(path.join(d, 'etc/hello.txt'), 'utf8')).toMatch(/^hello/);
      expect(fs.existsSync(path.join(d, 'data/big.bin'))).toBe(false);
    });
    const gz = Buffer.from(fs.readFileSync(L1GZ));
    for (let i = 50_000; i < 50_100; i++) gz[i] = gz[i]! ^ 0x5a;
    const bad = p('bad.tar.gz');
    fs.writeFileSync(bad, gz);
    await expectError(applyLayer({ raw: img }, bad), 'GZIP_CORRUPT');
    expectClean(img);
    // A gzip whose tar ends fine but whose trailer is damaged.
    const good = zlib.gzipSync(fs.readFileSync(L2));
    good[good.length - 6] = good[good.length - 6]! ^ 1;
    fs.writeFileSync(bad, good);
    await expectError(applyLayer({ raw: img }, bad), 'GZIP_CORRUPT');
    expectClean(img);
    fs.rmSync(img);
  });

  it('reports ENOSPC clearly and stays consistent', async () => {
    const img = p('full.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 32 << 20);
    await mkfs({ raw: img }, { journal: false });
    const t = pythonTar(
      p('huge.tar'),
      `
with tarfile.open(out, 'w') as t:
    s = tarfile.TarInfo('small'); s.size = 5; t.addfile(s, io.BytesIO(b'small'))
    ti = tarfile.TarInfo('huge'); ti.size = 48 << 20
    t.addfile(ti, io.BytesIO(bytes(48 << 20)))
`,
    );
    await expectError(applyLayer({ raw: img }, t), 'ENOSPC', /no space left.*larger virtual size/);
    expectClean(img);
    await withMount(img, (d) => {
      expect(fs.readdirSync(d).sort()).toEqual(['lost+found', 'small']);
    });
    fs.rmSync(img);
  });
});
