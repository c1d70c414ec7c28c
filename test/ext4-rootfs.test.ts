/**
 * A real root filesystem through the ext4 apply: a Debian bookworm minbase
 * tarball (mmdebstrap, cached per day by helpers/bookworm) applied as one
 * layer, and split into three layers with whiteouts, an opaque directory,
 * replacements and re-creations between them; each result is loop-mounted
 * read-only and compared file by file with what the tars define (content,
 * type, mode, owner, mtime, xattrs, link targets, hard-link groups).
 * Needs root and the Debian mirror.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { applyLayer } from '../lib/ext4/index.js';
import { bookwormTar } from './helpers/bookworm.js';
import { diffTrees, fsck, modelTree, pythonTar, unmountAll, walkTree, withMount } from './helpers/ext4.js';
import { tempDir } from './helpers/vectors.js';

let work = '';
let cleanup = () => {};
let base = '';
beforeAll(async () => {
  ({ dir: work, cleanup } = tempDir('obd-ext4-rootfs-'));
  base = await bookwormTar();
}, 600_000);
afterAll(() => {
  unmountAll();
  cleanup();
});

function expectClean(img: string): void {
  const r = fsck(img);
  expect(r.code, r.out).toBe(0);
}

async function expectSame(img: string, tars: string[]): Promise<void> {
  const want = modelTree(tars);
  const got = await withMount(img, (d) => walkTree(d));
  expect(Object.keys(got.tree).length).toBeGreaterThan(1000);
  expect(diffTrees(want, got)).toEqual([]);
}

// Each case applies, checks and walks whole root filesystems: about a minute
// on a quiet 2-core machine, over two under load. Speed lives in bench/.
const ROOTFS_TIMEOUT = 300_000;

const sha256 = (file: string) => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];

describe('a bookworm root filesystem', () => {
  it('applies in one layer, identical to the tar, deterministically', async () => {
    const a = path.join(work, 'one-a.img');
    const r = await applyLayer({ raw: a }, base, { mkfs: true, vsizeGB: 2 });
    expect(r.entries).toBeGreaterThan(5000);
    expect(r.tarBytes).toBe(fs.statSync(base).size);
    expectClean(a);
    await expectSame(a, [base]);
    const b = path.join(work, 'one-b.img');
    await applyLayer({ raw: b }, base, { mkfs: true, vsizeGB: 2 });
    expect(sha256(a)).toBe(sha256(b));
    fs.rmSync(a);
    fs.rmSync(b);
  }, ROOTFS_TIMEOUT);

  it('applies split into three layers with deletions between them', async () => {
    const [l1, l2, l3] = ['split1.tar', 'split2.tar', 'split3.tar'].map((n) => path.join(work, n)) as [string, string, string];
    pythonTar(
      l1,
      `
src = tarfile.open(${JSON.stringify(base)})
members = src.getmembers()
n = len(members)
cut1, cut2 = n * 45 // 100, n * 75 // 100
def copy(t, m):
    t.addfile(m, src.extractfile(m) if m.isreg() else None)
def entry(t, name, data=None, type=tarfile.REGTYPE, mode=0o644, link=''):
    ti = tarfile.TarInfo(name); ti.type = type; ti.mode = mode; ti.mtime = 1700000000; ti.linkname = link
    if data is not None: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)
first = members[:cut1]
files1 = [m for m in first if m.isreg() and m.name.count('/') >= 3]
dirs1 = [m for m in first if m.isdir() and m.name.count('/') >= 3]
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    for m in first: copy(t, m)
with tarfile.open(out.replace('split1', 'split2'), 'w', format=tarfile.PAX_FORMAT) as t:
    for m in members[cut1:cut2]: copy(t, m)
    for m in files1[::40]:
        d, _, b = m.name.rpartition('/')
        entry(t, d + '/.wh.' + b)
    victim = dirs1[len(dirs1) // 2]
    entry(t, victim.name.rstrip('/') + '/.wh..wh..opq')
    entry(t, victim.name.rstrip('/') + '/after-opaque', b'new')
    for m in files1[5::97][:6]:
        entry(t, m.name, b'replaced ' + m.name.encode(), mode=0o600)
    fd = files1[7]
    entry(t, fd.name, type=tarfile.DIRTYPE, mode=0o750)
    entry(t, fd.name + '/inside', b'file became a directory')
    entry(t, './usr/lib/lowerlink', type=tarfile.LNKTYPE, link=files1[9].name, mode=0o700)
with tarfile.open(out.replace('split1', 'split3'), 'w', format=tarfile.PAX_FORMAT) as t:
    for m in members[cut2:]: copy(t, m)
    entry(t, './usr/share/.wh.doc')
    entry(t, files1[0].name, b'back again')
    entry(t, files1[7].name, b'a file once more')
    entry(t, './etc/.wh..wh..opq')
    entry(t, './etc/only-in-layer3', b'3')
`,
    );
    const img = path.join(work, 'split.img');
    await applyLayer({ raw: img }, l1, { mkfs: true, vsizeGB: 2 });
    expectClean(img);
    await expectSame(img, [l1]);
    const r2 = await applyLayer({ raw: img }, l2);
    expect(r2.whiteouts).toBeGreaterThan(10);
    expectClean(img);
    await expectSame(img, [l1, l2]);
    await applyLayer({ raw: img }, l3);
    expectClean(img);
    await expectSame(img, [l1, l2, l3]);
    await withMount(img, (d) => {
      expect(fs.existsSync(path.join(d, 'usr/share/doc'))).toBe(false);
      expect(fs.readdirSync(path.join(d, 'etc'))).toContain('only-in-layer3');
    });
    fs.rmSync(img);
  }, ROOTFS_TIMEOUT);
});
