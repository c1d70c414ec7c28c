/**
 * The streaming layer reader (cpp/archive) through its driver tar_dump,
 * compared with Python's tarfile and GNU tar on archives made here: every
 * header format, long and non-ASCII names, sparse files past 8 GiB, devices,
 * xattrs, gzip and zstd, pipes; then truncated, corrupt and hostile input.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { nativeTool, repoRoot } from './helpers/native-tools.js';
import { vector } from './helpers/vectors.js';

const VECTORS = vector('inputs');
const REFERENCE = path.join(repoRoot, 'test', 'helpers', 'tar_reference.py');
const FIXTURES = path.join(repoRoot, 'test', 'helpers', 'tar_fixtures.py');
const GiB = 1024 ** 3;

interface DumpEntry {
  type: string;
  path: string;
  path_hex?: string;
  link: string;
  link_hex?: string;
  size: number;
  sparse: [number, number][];
  data_bytes?: number;
  data_fnv?: string;
  data_offset: number;
  [k: string]: unknown;
}
interface DumpEnd {
  entries: number;
  offset: number;
  consumed: number;
  compression: string;
}
interface Dump {
  status: number | null;
  signal: string | null;
  entries: DumpEntry[];
  end?: DumpEnd;
  stderr: string;
}

let tool = '';
let work = '';

function parseDump(stdout: string, status: number | null, signal: string | null, stderr: string): Dump {
  const entries: DumpEntry[] = [];
  let end: DumpEnd | undefined;
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const v = JSON.parse(line) as DumpEntry & { end?: boolean };
    if (v.end) end = v as unknown as DumpEnd;
    else entries.push(v);
  }
  return { status, signal, entries, end, stderr };
}

function dump(file: string, args: string[] = [], input?: Buffer): Dump {
  const r = spawnSync(tool, [...args, file], { input, timeout: 60_000, maxBuffer: 256 << 20 });
  if (r.error) throw new Error(`tar_dump ${file}: ${r.error.message}`);
  return parseDump(r.stdout.toString(), r.status, r.signal, r.stderr.toString());
}

/** Runs tar_dump and requires success. */
function dumpOk(file: string, args: string[] = []): Dump {
  const d = dump(file, args);
  expect(d.stderr).toBe('');
  expect(d.status).toBe(0);
  return d;
}

function hexOf(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** containerd's cleaning: filepath.Join("/", name), then relative to "/". */
function cleanHex(rawHex: string): string {
  const name = Buffer.from(rawHex, 'hex').toString('latin1');
  const rel = path.posix.relative('/', path.posix.join('/', name));
  return Buffer.from(rel, 'latin1').toString('hex');
}

/** A tar_dump entry in the reference's shape (names as hex bytes). */
function comparable(e: DumpEntry): Record<string, unknown> {
  const { path: p, path_hex, link, link_hex, ...rest } = e;
  return { ...rest, path_hex: path_hex ?? hexOf(p), link_hex: link_hex ?? hexOf(link) };
}

/** Python tarfile's view of `file`, cleaned as the reader must clean it. */
function reference(file: string): Record<string, unknown>[] {
  const r = spawnSync('python3', [REFERENCE, file], { maxBuffer: 256 << 20, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`tar_reference.py ${file}: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const { name_hex, link_hex, ...rest } = JSON.parse(line) as Record<string, unknown> & {
        name_hex: string;
        link_hex: string;
        type: string;
      };
      const link = rest.type === 'hardlink' ? cleanHex(link_hex) : rest.type === 'symlink' ? link_hex : '';
      return { ...rest, path_hex: cleanHex(name_hex), link_hex: link };
    });
}

/** GNU tar's member names (cleaned), a second opinion on name handling. */
function gnuNames(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file, '--quoting-style=literal'], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tar -t ${file}: ${r.stderr.toString()}`);
  const out = r.stdout;
  const names: string[] = [];
  let start = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === 0x0a) {
      names.push(cleanHex(out.subarray(start, i).toString('hex')));
      start = i + 1;
    }
  }
  return names;
}

/** tar_dump agrees with Python's tarfile entry by entry, and with GNU tar on names. */
function expectMatchesReference(file: string, opts: { gnu?: boolean } = {}): Dump {
  const d = dumpOk(file);
  expect(d.entries.map(comparable)).toEqual(reference(file));
  if (opts.gnu) expect(d.entries.map((e) => e.path_hex ?? hexOf(e.path))).toEqual(gnuNames(file));
  expect(d.end?.entries).toBe(d.entries.length);
  return d;
}

function sh(cmd: string, args: string[], cwd = work): void {
  const r = spawnSync(cmd, args, { cwd, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr?.toString()}`);
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

// Source trees for GNU tar. Python makes them: fifos, device nodes, xattrs,
// nanosecond mtimes and non-UTF-8 names are all a line each there.
const MAKE_TREES = String.raw`
import os, sys
root = sys.argv[1]
def mk(p, data=b"", mode=0o644):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
c = os.path.join(root, "common")
mk(f"{c}/file.txt", b"hello\n")
mk(f"{c}/empty")
mk(f"{c}/exec.sh", b"#!/bin/sh\necho hi\n", 0o755)
mk(f"{c}/setuid", b"s", 0o4755)
os.makedirs(f"{c}/sticky"); os.chmod(f"{c}/sticky", 0o1777)
mk(f"{c}/sub/dir/nested.txt", b"nested")
mk(f"{c}/" + "p" * 70 + "/" + "q" * 70 + "/file", b"prefix split")
mk(f"{c}/h\u00e9llo-\u65e5\u672c\u8a9e.txt".encode(), b"utf-8 name")
mk(f"{c}/caf".encode() + b"\xe9.txt", b"latin-1 name")
mk(f"{c}/big.bin", bytes((i * 7919 + i // 251) & 0xFF for i in range(200000)))
os.symlink("file.txt", f"{c}/link")
os.link(f"{c}/file.txt", f"{c}/hard")
os.mkfifo(f"{c}/fifo")
try:
    os.mknod(f"{c}/null", 0o20666, os.makedev(1, 3))
    os.mknod(f"{c}/loop", 0o60660, os.makedev(7, 0))
except PermissionError:
    print("no-devices")
mk(f"{c}/xattr.txt", b"x")
try:
    os.setxattr(f"{c}/xattr.txt", "user.text", b"hello")
    os.setxattr(f"{c}/xattr.txt", "user.bin", bytes(range(256)))
except OSError:
    print("no-xattrs")
os.utime(f"{c}/file.txt", ns=(1700000000123456789, 1700000000123456789))
for p in (f"{c}/empty", f"{c}/exec.sh"):
    os.utime(p, ns=(1600000000000000001, 1600000000999999999))

l = os.path.join(root, "long")
deep = f"{l}/" + "/".join(ch * 100 for ch in "xyz")
mk(f"{deep}/file-past-255-bytes", b"deep")
mk(f"{l}/" + "m" * 60 + "/" + "n" * 60 + "/past-100", b"mid")
os.symlink("../" * 20 + "t" * 120, f"{l}/long-symlink")
os.link(f"{deep}/file-past-255-bytes", f"{l}/hard-to-deep")

s = os.path.join(root, "sparse")
os.makedirs(s)
def sparse(p, size, writes):
    with open(p, "wb") as f:
        for off, data in writes:
            f.seek(off); f.write(data)
        f.truncate(size)
G = 1 << 30
sparse(f"{s}/huge", 9 * G, [(0, b"A" * 5000), (4 * G + 1234, b"B" * 100), (9 * G - 100, b"C" * 100)])
sparse(f"{s}/over4g", 5 * G, [(4 * G + 4096 * 3, b"D" * 8192)])
sparse(f"{s}/holes", 1 << 20, [])
sparse(f"{s}/many", 80 * 8192, [(i * 8192 * 2, bytes([65 + i % 26]) * 4096) for i in range(40)])
`;

let devices = true;
let xattrs = true;

beforeAll(async () => {
  tool = await nativeTool('tar_dump');
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-archive-'));
  const r = spawnSync('python3', ['-c', MAKE_TREES, path.join(work, 'src')]);
  if (r.status !== 0) throw new Error(r.stderr.toString());
  devices = !r.stdout.toString().includes('no-devices');
  xattrs = !r.stdout.toString().includes('no-xattrs');
  sh('python3', [FIXTURES, path.join(work, 'fx')]);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Archives `members` (default: all) of src/<tree> with GNU tar. */
function gnuTar(name: string, tree: string, args: string[], members = ['.']): string {
  const out = path.join(work, name);
  sh('tar', ['-C', path.join(work, 'src', tree), '-cf', out, '--sort=name', ...args, ...members]);
  return out;
}

const LONG_ARGS = ['--owner=bob:3000000', '--group=grp:4000000000', '--mtime=@-100000'];
const SPARSE_ARGS: Record<string, string[]> = {
  gnu: ['--format=gnu'],
  'pax-0.0': ['--format=posix', '--sparse-version=0.0'],
  'pax-0.1': ['--format=posix', '--sparse-version=0.1'],
  'pax-1.0': ['--format=posix', '--sparse-version=1.0'],
};

/** The GNU tar archives the tests share, made on first use. */
function archive(kind: 'common' | 'long' | 'sparse', variant: string): string {
  const file = path.join(work, `${kind}-${variant}.tar`);
  if (fs.existsSync(file)) return file;
  if (kind === 'common') {
    return gnuTar(path.basename(file), 'common', [`--format=${variant}`, ...(variant === 'posix' ? ['--xattrs'] : [])]);
  }
  if (kind === 'long') return gnuTar(path.basename(file), 'long', [`--format=${variant}`, ...LONG_ARGS]);
  return gnuTar(path.basename(file), 'sparse', ['-S', ...SPARSE_ARGS[variant]!]);
}

describe('shared vector layers', () => {
  it('reads layer1.tar as Python and GNU tar do', () => {
    const d = expectMatchesReference(`${VECTORS}/layer1.tar`, { gnu: true });
    expect(d.entries.map((e) => `${e.type}:${e.path}`)).toEqual([
      'dir:etc', 'file:etc/hello.txt', 'symlink:etc/link', 'dir:data', 'file:data/big.bin', 'hardlink:data/hard',
      'dir:opq', 'file:opq/a', 'file:opq/b', 'file:rm-me.txt', 'dir:bin', 'file:bin/tool.sh',
    ]);
    const hard = d.entries.find((e) => e.path === 'data/hard');
    expect(hard?.link).toBe('etc/hello.txt');
    expect(d.entries.find((e) => e.path === 'etc/link')?.link).toBe('hello.txt');
    expect(d.entries.find((e) => e.path === 'data/big.bin')?.data_bytes).toBe(200000);
    expect(d.end).toMatchObject({ offset: fs.statSync(`${VECTORS}/layer1.tar`).size, compression: 'none' });
  });

  it('reads layer1.tar.gz like layer1.tar, counting compressed bytes', () => {
    const plain = dumpOk(`${VECTORS}/layer1.tar`);
    const gz = expectMatchesReference(`${VECTORS}/layer1.tar.gz`);
    expect(gz.entries).toEqual(plain.entries);
    expect(gz.end).toMatchObject({
      compression: 'gzip',
      offset: plain.end?.offset,
      consumed: fs.statSync(`${VECTORS}/layer1.tar.gz`).size,
    });
  });

  it('keeps whiteouts of layer2.tar as ordinary entries', () => {
    const d = expectMatchesReference(`${VECTORS}/layer2.tar`, { gnu: true });
    expect(d.entries.map((e) => e.path)).toContain('.wh.rm-me.txt');
    expect(d.entries.map((e) => e.path)).toContain('opq/.wh..wh..opq');
  });
});

describe('archives written by GNU tar', () => {
  for (const format of ['gnu', 'posix', 'ustar']) {
    it(`--format=${format}: files, links, fifo, devices, modes, odd names`, () => {
      const file = archive('common', format);
      const d = expectMatchesReference(file, { gnu: true });
      const by = new Map(d.entries.map((e) => [e.path_hex ?? hexOf(e.path), e]));
      const get = (p: string) => by.get(hexOf(p));
      expect(get('')?.type).toBe('dir');
      expect(get('hard')).toMatchObject({ type: 'hardlink', link: 'file.txt' });
      expect(get('link')).toMatchObject({ type: 'symlink', link: 'file.txt' });
      expect(get('fifo')?.type).toBe('fifo');
      expect(get('setuid')?.mode).toBe(0o4755);
      expect(get('sticky')).toMatchObject({ type: 'dir', mode: 0o1777 });
      expect(get('h\u00e9llo-\u65e5\u672c\u8a9e.txt')?.data_bytes).toBe(10);
      expect(by.get(Buffer.from('caf\xe9.txt', 'latin1').toString('hex'))?.data_bytes).toBe(12);
      expect(get(`${'p'.repeat(70)}/${'q'.repeat(70)}/file`)?.data_bytes).toBe(12);
      expect(get('big.bin')).toMatchObject({ size: 200000, data_bytes: 200000 });
      if (devices) {
        expect(get('null')).toMatchObject({ type: 'chardev', devmajor: 1, devminor: 3 });
        expect(get('loop')).toMatchObject({ type: 'blockdev', devmajor: 7, devminor: 0 });
      }
      if (format === 'posix') {
        expect(get('file.txt')).toMatchObject({ mtime_sec: 1700000000, mtime_nsec: 123456789 });
        expect(get('exec.sh')).toMatchObject({ mtime_sec: 1600000000, mtime_nsec: 999999999 });
        if (xattrs) {
          expect(get('xattr.txt')?.xattrs).toEqual(
            expect.arrayContaining([
              ['user.text', hexOf('hello')],
              ['user.bin', Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')],
            ]),
          );
        }
      }
    });
  }

  for (const format of ['gnu', 'posix']) {
    it(`--format=${format}: names past 100 and 255 bytes, long link targets, big ids, negative mtime`, () => {
      const file = archive('long', format);
      const d = expectMatchesReference(file, { gnu: true });
      const deep = `${['x', 'y', 'z'].map((c) => c.repeat(100)).join('/')}/file-past-255-bytes`;
      // Sorted by name, the hard link's own name comes first and carries the data.
      expect(d.entries.find((e) => e.path === 'hard-to-deep')).toMatchObject({ type: 'file', data_bytes: 4 });
      expect(d.entries.find((e) => e.path === deep)).toMatchObject({ type: 'hardlink', link: 'hard-to-deep' });
      const mid = `${'m'.repeat(60)}/${'n'.repeat(60)}/past-100`;
      expect(d.entries.find((e) => e.path === mid)?.data_bytes).toBe(3);
      expect(d.entries.find((e) => e.path === 'long-symlink')?.link).toBe(`${'../'.repeat(20)}${'t'.repeat(120)}`);
      for (const e of d.entries) expect(e).toMatchObject({ uid: 3000000, gid: 4000000000, mtime_sec: -100000 });
    });
  }

  for (const name of Object.keys(SPARSE_ARGS)) {
    it(`sparse files (${name}): 9 GiB and 5 GiB files, all holes, many segments`, () => {
      const file = archive('sparse', name);
      expect(fs.statSync(file).size).toBeLessThan(1 << 20);
      const d = expectMatchesReference(file, { gnu: true });
      const get = (p: string) => d.entries.find((e) => e.path === p)!;
      const covers = (e: DumpEntry, off: number, len: number) =>
        e.sparse.some(([o, l]) => o <= off && off + len <= o + l);
      const huge = get('huge');
      expect(huge.size).toBe(9 * GiB);
      expect(covers(huge, 0, 5000) && covers(huge, 4 * GiB + 1234, 100) && covers(huge, 9 * GiB - 100, 100)).toBe(
        true,
      );
      expect(huge.data_bytes).toBe(huge.sparse.reduce((a, [, l]) => a + l, 0));
      expect(huge.data_bytes).toBeLessThan(1 << 20);
      const over4g = get('over4g');
      expect(over4g.size).toBe(5 * GiB);
      expect(covers(over4g, 4 * GiB + 4096 * 3, 8192)).toBe(true);
      expect(get('holes')).toMatchObject({ size: 1 << 20, sparse: [[1 << 20, 0]], data_bytes: 0 });
      const many = get('many');
      expect(many.sparse.length).toBe(40);
      expect(many.data_bytes).toBe(40 * 4096);
    });
  }
});

describe('archives made byte by byte', () => {
  it('matches Python on pax, GNU, base-256, v7, old GNU sparse and odd numeric fields', () => {
    for (const f of fs.readdirSync(path.join(work, 'fx', 'ok'))) {
      expectMatchesReference(path.join(work, 'fx', 'ok', f));
    }
  });

  it('applies pax records: global headers, nanosecond and negative mtimes, xattrs, path override', () => {
    const d = dumpOk(path.join(work, 'fx', 'ok', 'pax-misc.tar'));
    const get = (p: string) => d.entries.find((e) => e.path === p)!;
    expect(get('ns.txt')).toMatchObject({ mtime_sec: 1700000000, mtime_nsec: 123456789, uid: 4242 });
    expect(get('neg.txt')).toMatchObject({ mtime_sec: -2, mtime_nsec: 750000000 });
    expect(get('xattr.txt').xattrs).toEqual([
      ['user.global', hexOf('g')],
      ['user.plain', hexOf('value')],
      ['user.caf\u00e9', '000162696e'],
      ['security.capability', '01000002'],
    ]);
    expect(get('real/name.txt').data_bytes).toBe(7);
    expect(get('bigid')).toMatchObject({ uid: 4000000000, gid: 3000000 });
    expect(get('chr')).toMatchObject({ type: 'chardev', devmajor: 10, devminor: 200 });
    expect(get('blk')).toMatchObject({ type: 'blockdev', devmajor: 259, devminor: 65536 });
    expect(get('contig')).toMatchObject({ type: 'file', data_bytes: 15 });
    expect(get('modes').mode).toBe(0o7755);
  });

  it('cleans names that climb out of the root, keeps symlink targets verbatim', () => {
    const d = dumpOk(path.join(work, 'fx', 'ok', 'traversal.tar'));
    expect(d.entries.map((e) => [e.type, e.path, e.link])).toEqual([
      ['file', 'etc/x', ''],
      ['file', 'abs/y', ''],
      ['dir', 'a/b/c', ''],
      ['dir', '', ''],
      ['dir', '', ''],
      ['hardlink', 'hard', 'etc/x'],
      ['symlink', 'sym', '../../../etc/shadow'],
      ['file', '.wh.gone', ''],
    ]);
  });

  it('reads star headers, whose prefix is shorter', () => {
    const d = dumpOk(path.join(work, 'fx', 'star', 'star.tar'));
    expect(d.entries.map((e) => [e.path, e.data_bytes])).toEqual([
      [`${'s'.repeat(131)}/name-in-star`, 4],
      ['no-prefix', 0],
    ]);
  });

  it('reads v7, base-256 and signed-checksum headers', () => {
    const v7 = dumpOk(path.join(work, 'fx', 'ok', 'v7.tar'));
    expect(v7.entries.map((e) => [e.type, e.path])).toEqual([
      ['dir', 'v7dir'],
      ['file', 'v7dir/file'],
    ]);
    const b = dumpOk(path.join(work, 'fx', 'ok', 'base256.tar'));
    expect(b.entries.map((e) => [e.path, e.size, e.mtime_sec])).toEqual([
      ['b256', 10, -5],
      ['b256-big-mtime', 3, 2 ** 40],
    ]);
    const odd = dumpOk(path.join(work, 'fx', 'ok', 'odd-fields.tar'));
    expect(odd.entries[0]).toMatchObject({ path: 'spaces', mode: 0o644, uid: 0o17, gid: 0o21, data_bytes: 5 });
    expect(odd.entries[1]?.path_hex).toBe(Buffer.from('signed-\xe9\xff', 'latin1').toString('hex'));
  });

  it('gives the same answers with tiny reads, through a File, and when data is skipped', () => {
    const file = archive('long', 'posix');
    const full = dumpOk(file);
    expect(dumpOk(file, ['--chunk', '7']).entries).toEqual(full.entries);
    expect(dumpOk(file, ['--via-file']).entries).toEqual(full.entries);
    const gz = dumpOk(`${VECTORS}/layer1.tar.gz`, ['--via-file', '--chunk', '1000']);
    expect(gz.entries).toEqual(dumpOk(`${VECTORS}/layer1.tar`).entries);
    const skipped = dumpOk(file, ['--no-data']);
    expect(skipped.entries).toEqual(full.entries.map(({ data_bytes, data_fnv, ...rest }) => rest));
    expect(skipped.end).toEqual(full.end);
    const sparse = archive('sparse', 'pax-1.0');
    expect(dumpOk(sparse, ['--no-data']).end).toEqual(dumpOk(sparse).end);
  });
});

describe('compressed layers', () => {
  const plainOf = () => archive('common', 'posix');

  it('reads gzip, and concatenated gzip members as one stream', () => {
    const plain = fs.readFileSync(plainOf());
    const want = dumpOk(plainOf());
    const one = path.join(work, 'one.tar.gz');
    fs.writeFileSync(one, zlib.gzipSync(plain));
    const members = path.join(work, 'members.tar.gz');
    const cuts = [0, 7001, 7002, 90000, plain.length];
    fs.writeFileSync(
      members,
      Buffer.concat(cuts.slice(1).map((end, i) => zlib.gzipSync(plain.subarray(cuts[i], end)))),
    );
    const padded = path.join(work, 'padded.tar.gz');
    fs.writeFileSync(padded, Buffer.concat([zlib.gzipSync(plain), Buffer.alloc(3000)]));
    for (const f of [one, members, padded]) {
      const d = dumpOk(f);
      expect(d.entries).toEqual(want.entries);
      expect(d.end).toMatchObject({ compression: 'gzip', offset: plain.length, consumed: fs.statSync(f).size });
    }
    expectMatchesReference(members);
  });

  it.skipIf(!have('zstd'))('reads zstd, several frames too (zstd CLI)', () => {
    const plain = fs.readFileSync(plainOf());
    const want = dumpOk(plainOf());
    const a = path.join(work, 'a.part');
    const b = path.join(work, 'b.part');
    fs.writeFileSync(a, plain.subarray(0, 12345));
    fs.writeFileSync(b, plain.subarray(12345));
    sh('zstd', ['-q', '-f', '-3', plainOf(), '-o', path.join(work, 'one.tar.zst')]);
    sh('zstd', ['-q', '-f', '--no-check', a, '-o', `${a}.zst`]);
    sh('zstd', ['-q', '-f', b, '-o', `${b}.zst`]);
    const frames = path.join(work, 'frames.tar.zst');
    fs.writeFileSync(frames, Buffer.concat([fs.readFileSync(`${a}.zst`), fs.readFileSync(`${b}.zst`)]));
    for (const f of [path.join(work, 'one.tar.zst'), frames]) {
      const d = dumpOk(f);
      expect(d.entries).toEqual(want.entries);
      expect(d.end).toMatchObject({ compression: 'zstd', offset: plain.length, consumed: fs.statSync(f).size });
    }
  });

  it('reads from a pipe fed in small pieces, and from a FIFO', async () => {
    const want = dumpOk(plainOf());
    const gz = zlib.gzipSync(fs.readFileSync(plainOf()));
    const viaPipe = (target: string, feed: (child: ReturnType<typeof spawn>) => void) =>
      new Promise<Dump>((resolve, reject) => {
        const child = spawn(tool, [target], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
        child.on('error', reject);
        child.on('close', (status, signal) => resolve(parseDump(out, status, signal, err)));
        feed(child);
      });
    const trickle = (data: Buffer) => (child: ReturnType<typeof spawn>) => {
      let off = 0;
      const step = () => {
        if (off >= data.length) return child.stdin!.end();
        const n = 1 + ((off * 31) % 3000);
        child.stdin!.write(data.subarray(off, off + n));
        off += n;
        setImmediate(step);
      };
      step();
    };
    for (const data of [fs.readFileSync(plainOf()), gz]) {
      const d = await viaPipe('-', trickle(data));
      expect(d.stderr).toBe('');
      expect(d.entries).toEqual(want.entries);
      expect(d.end?.consumed).toBe(data.length);
    }
    const fifo = path.join(work, 'layer.fifo');
    sh('mkfifo', [fifo]);
    const d = await viaPipe(fifo, (child) => {
      child.stdin!.end();
      fs.createReadStream(plainOf()).pipe(zlib.createGzip()).pipe(fs.createWriteStream(fifo));
    });
    expect(d.stderr).toBe('');
    expect(d.entries).toEqual(want.entries);
  });
});

describe('hostile and damaged input', () => {
  it('rejects each broken fixture with its code, the entry and the offset', () => {
    const dir = path.join(work, 'fx', 'bad');
    const files = fs.readdirSync(dir);
    expect(files.length).toBeGreaterThan(25);
    for (const f of files) {
      const code = f.split('.')[0]!;
      const d = dump(path.join(dir, f));
      expect({ f, status: d.status, signal: d.signal }).toEqual({ f, status: 1, signal: null });
      expect(d.stderr, f).toMatch(new RegExp(`^${code}: `));
      expect(d.stderr, f).toMatch(/at tar offset \d+/);
    }
    const named = dump(path.join(dir, 'TAR_BAD_HEADER.sparse-overlap.tar'));
    expect(named.stderr).toContain('entry "sp"');
  });

  it('stops cleanly or reports TAR_TRUNCATED wherever an archive is cut', () => {
    // Headers, pax records, GNU long names, an old GNU sparse map with
    // extension blocks and a pax 1.0 map: cut in each of them.
    const small = ['huge', 'over4g', 'holes'];
    const sparseGnu = gnuTar('cut-sparse-gnu.tar', 'sparse', ['-S', '--format=gnu'], small);
    const sparse10 = gnuTar('cut-sparse-1.0.tar', 'sparse', ['-S', '--format=posix', '--sparse-version=1.0'], small);
    const files = [
      archive('long', 'gnu'),
      archive('long', 'posix'),
      sparseGnu,
      sparse10,
      path.join(work, 'fx', 'ok', 'gnu-sparse-ext.tar'),
    ];
    for (const file of files) {
      const name = path.basename(file);
      const blob = fs.readFileSync(file);
      const full = dumpOk(file).entries;
      const cut = path.join(work, 'cut.tar');
      const offsets = new Set<number>();
      for (let b = 0; b < blob.length; b += 512) for (const d of [0, 1, 100, 511]) offsets.add(b + d);
      for (const off of offsets) {
        if (off >= blob.length) continue;
        fs.writeFileSync(cut, blob.subarray(0, off));
        const d = dump(cut);
        expect(d.signal, `${name} cut at ${off}`).toBeNull();
        if (d.status === 0) {
          // A cut between entries reads as a clean end; past the end marker it is unseen.
          expect(full.slice(0, d.entries.length)).toEqual(d.entries);
          if (d.entries.length < full.length) expect(off % 512, `${name} cut at ${off}`).toBe(0);
        } else {
          expect(d.stderr, `${name} cut at ${off}`).toMatch(/^TAR_TRUNCATED: /);
        }
      }
    }
  });

  it('reports GZIP_CORRUPT for truncated, damaged or trailing-garbage gzip', () => {
    const gz = fs.readFileSync(`${VECTORS}/layer1.tar.gz`);
    const cut = path.join(work, 'cut.tar.gz');
    for (let off = 10; off < gz.length; off += Math.max(1, Math.floor(gz.length / 97))) {
      fs.writeFileSync(cut, gz.subarray(0, off));
      const d = dump(cut);
      expect(d.signal).toBeNull();
      expect(d.stderr, `cut at ${off}`).toMatch(/^GZIP_CORRUPT: .*compressed offset \d+/);
    }
    const cases: [string, Buffer][] = [];
    const badBlock = Buffer.from(gz);
    badBlock[10] = 0x07; // first deflate block: final, reserved type 3
    cases.push(['bad-block', badBlock]);
    const badCrc = Buffer.from(gz);
    badCrc.writeUInt8(badCrc.readUInt8(gz.length - 8) ^ 0xff, gz.length - 8);
    cases.push(['bad-crc', badCrc]);
    cases.push(['garbage-after', Buffer.concat([gz, Buffer.from('not gzip')])]);
    for (const [name, data] of cases) {
      fs.writeFileSync(cut, data);
      const d = dump(cut);
      expect(d.status, name).toBe(1);
      expect(d.stderr, name).toMatch(/^GZIP_CORRUPT: /);
    }
  });

  it.skipIf(!have('zstd'))('reports ZSTD_CORRUPT for truncated or damaged zstd', () => {
    const zst = path.join(work, 'layer1.tar.zst');
    sh('zstd', ['-q', '-f', `${VECTORS}/layer1.tar`, '-o', zst]);
    const data = fs.readFileSync(zst);
    const cut = path.join(work, 'cut.tar.zst');
    for (let off = 4; off < data.length; off += Math.max(1, Math.floor(data.length / 97))) {
      fs.writeFileSync(cut, data.subarray(0, off));
      const d = dump(cut);
      expect(d.signal).toBeNull();
      expect(d.stderr, `cut at ${off}`).toMatch(/^ZSTD_CORRUPT: /);
    }
    const badSum = Buffer.from(data);
    badSum.writeUInt8(badSum.readUInt8(data.length - 1) ^ 0xff, data.length - 1);
    fs.writeFileSync(cut, badSum);
    expect(dump(cut).stderr).toMatch(/^ZSTD_CORRUPT: /);
  });

  it('rejects bytes that are not a tar without reading far', () => {
    let x = 12345;
    const junk = Buffer.alloc(64 * 1024, 0).map(() => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 24));
    const file = path.join(work, 'junk.bin');
    fs.writeFileSync(file, junk);
    const d = dump(file);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/^TAR_BAD_HEADER: .*checksum/);
  });
});
