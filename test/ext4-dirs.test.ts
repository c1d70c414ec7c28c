/**
 * Large directories in the ext4 apply (cpp/ext4/tree.cpp, htree.cpp): a
 * layer with one directory of 20k names (long enough that the hash index
 * needs a level of index nodes), a deletion layer removing a quarter of
 * them and reshaping the rest, and a layer adding to the indexed directory.
 * After each layer e2fsck -fn is clean (it checks the htree: hash order,
 * limits, every block referenced) and the directory is indexed; after the
 * last, the kernel's read-only mount, which looks every name up through the
 * index, shows exactly what the tars say.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { applyLayer, mkfs } from '../lib/ext4/index.js';
import { diffTrees, fsck, modelTree, pythonTar, unmountAll, walkTree, withMount } from './helpers/ext4.js';
import { tempDir } from './helpers/vectors.js';

const FILES = 20000;
/** The i-th name in "big", as the tars' big(i) spells it. */
const bigName = (i: number) => `big/f${String(i).padStart(5, '0')}-${'y'.repeat(150 + (i % 50))}`;

let work = '';
let cleanup = () => {};
beforeAll(() => {
  ({ dir: work, cleanup } = tempDir('obd-ext4-dirs-'));
});
afterAll(() => {
  unmountAll();
  cleanup();
});

const p = (name: string) => path.join(work, name);
const sha256 = (file: string) => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];

const PY_ADD = `def add(t, name, type=tarfile.REGTYPE, data=b'', **kw):
    ti = tarfile.TarInfo(name); ti.type = type; ti.mtime = 1600000000; ti.mode = 0o644
    for k, v in kw.items(): setattr(ti, k, v)
    if type == tarfile.REGTYPE: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
def big(i): return 'big/f%05d-' % i + 'y' * (150 + i % 50)`;

function layers(): string[] {
  const l1 = pythonTar(
    p('l1.tar'),
    `${PY_ADD}
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    add(t, 'big', tarfile.DIRTYPE, mode=0o755)
    for i in range(${FILES}):
        add(t, big(i), data=b'%d' % i if i % 1000 == 0 else b'')
    add(t, 'big/sub', tarfile.DIRTYPE, mode=0o755)
    for i in range(300):
        add(t, 'big/sub/s%03d' % i)
    add(t, 'big/link', tarfile.SYMTYPE, linkname='sub/s001')
    add(t, 'big/hard', tarfile.LNKTYPE, linkname=big(7))
    for i in range(400):
        add(t, 'mid/m%04d-' % i + 'z' * 40)
`,
  );
  // A quarter of the names go (the rest still needs index nodes); a
  // directory inside goes whole; names are replaced and added; "mid"
  // shrinks back to one block.
  const l2 = pythonTar(
    p('l2.tar'),
    `${PY_ADD}
def wh(name):
    d, b = name.rsplit('/', 1)
    add(t, d + '/.wh.' + b)
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    for i in range(0, ${FILES}, 4):
        wh(big(i))
    wh('big/sub')
    add(t, big(2), tarfile.DIRTYPE, mode=0o700)
    add(t, big(2) + '/inside', data=b'in')
    add(t, big(3), tarfile.SYMTYPE, linkname='elsewhere')
    for i in range(500):
        add(t, 'big/new%04d' % i, data=b'n')
    for i in range(3, 400):
        wh('mid/m%04d-' % i + 'z' * 40)
`,
  );
  // A few names into the directory indexed by the layer before.
  const l3 = pythonTar(
    p('l3.tar'),
    `${PY_ADD}
with tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as t:
    add(t, 'big/late', data=b'late')
    add(t, 'big/.wh.new0000')
    add(t, big(5), data=b'replaced')
`,
  );
  return [l1, l2, l3];
}

function expectClean(img: string): void {
  const r = fsck(img);
  expect(r.out, 'e2fsck -fn').toMatch(/Pass 5/);
  expect(r.code, r.out).toBe(0);
}

describe('large directories', () => {
  it('20k names, a deletion layer and a later addition: clean, indexed, the same tree, deterministic', async () => {
    const tars = layers();
    const [first, second] = [p('a.img'), p('b.img')];
    for (const img of [first, second]) {
      await mkfs({ raw: img }, { vsizeGB: 1, seed: 'dirs' });
      for (const [i, tar] of tars.entries()) {
        const r = await applyLayer({ raw: img }, tar, {});
        expect(r.entries).toBeGreaterThan(0);
        if (img !== first) continue;
        expectClean(img);
        const last = i === tars.length - 1;  // the tree walk is the slow part: once, at the end
        const got = await withMount(img, (d) => {
          // lsattr's "I": the kernel sees a hash-indexed directory.
          const attrs = execFileSync('lsattr', ['-d', path.join(d, 'big')], { encoding: 'utf8' });
          expect(attrs.split(/\s+/)[0], `big after layer ${i + 1}`).toContain('I');
          expect(fs.readdirSync(path.join(d, 'mid')).length, 'mid').toBe(i === 0 ? 400 : 3);
          if (i === 0) {
            // Names found through the index, and one that is not there.
            for (let k = 0; k < FILES; k += 997) expect(fs.lstatSync(path.join(d, bigName(k))).isFile()).toBe(true);
            expect(fs.existsSync(path.join(d, 'big', 'absent'))).toBe(false);
          }
          return last ? walkTree(d) : undefined;
        });
        if (got) expect(diffTrees(modelTree(tars), got)).toEqual([]);
      }
    }
    expect(sha256(second)).toBe(sha256(first));
  }, 600_000);
});
