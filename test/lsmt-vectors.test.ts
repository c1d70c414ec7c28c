/**
 * Byte compatibility with upstream overlaybd: every stack of the vectors reads
 * to its device hash, committing the stored writable layers reproduces the
 * stored commits, and our layers stack with upstream's both ways.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openImage, type ImageSpec } from '../lib/image.js';
import { commitLayer, inspectLayer, sealLayer } from '../lib/layer.js';
import { deviceStacks, tempDir, vector } from './helpers/vectors.js';

const tmp = tempDir('obd-vectors-');
afterAll(tmp.cleanup);

async function deviceHash(spec: ImageSpec): Promise<string> {
  const img = await openImage(spec);
  try {
    const h = crypto.createHash('sha256');
    for (let off = 0; off < img.size; off += 16 << 20) h.update(await img.read(off, 16 << 20));
    return h.digest('hex');
  } finally {
    await img.close();
  }
}

function copyRw(name: string): { data: string; index: string } {
  const data = path.join(tmp.dir, `${name}.${crypto.randomUUID()}.data`);
  const index = data.replace(/\.data$/, '.index');
  fs.copyFileSync(vector(`lsmt/${name}.rw.data`), data);
  fs.copyFileSync(vector(`lsmt/${name}.rw.index`), index);
  return { data, index };
}

const UUID_A = 'AAAAAAAA-0000-4000-8000-000000000001';
const UUID_B = 'BBBBBBBB-0000-4000-8000-000000000002';

describe('vector devices', () => {
  for (const stack of deviceStacks()) {
    const label = [...stack.lowers.map((l) => path.relative(vector(''), l)), stack.upper ? 'upper=' + path.basename(stack.upper.data) : '']
      .filter(Boolean)
      .join(' ');
    it(`${label} reads to its sha256`, async () => {
      // The upper is opened read-write: work on copies.
      const upper = stack.upper ? copyRw(path.basename(stack.upper.data).split('.')[0]!) : undefined;
      const img = await openImage({ lowers: stack.lowers, ...(upper ? { upper } : {}) });
      expect(img.size).toBe(stack.size);
      await img.close();
      expect(await deviceHash({ lowers: stack.lowers, ...(upper ? { upper } : {}) })).toBe(stack.sha256);
    });
  }
});

describe('the io_uring engine', () => {
  it('reads stacks exactly as the psync engine does', async () => {
    const stacks = deviceStacks().filter((s) => !s.upper);
    for (const s of [stacks[0]!, stacks.find((x) => x.lowers.length === 2)!, stacks.find((x) => x.lowers[0]!.endsWith('.tar'))!]) {
      expect(await deviceHash({ lowers: s.lowers, ioEngine: 'io_uring' })).toBe(s.sha256);
    }
  });
});

describe('commit reproduces upstream bytes', () => {
  const cases = [
    { name: 'A uncompressed', rw: 'A', uuid: UUID_A, msg: 'vector layer A', expect: 'lsmt/A.commit', zfile: undefined },
    { name: 'B uncompressed', rw: 'B', uuid: UUID_B, msg: 'vector layer B', expect: 'lsmt/B.commit', zfile: undefined },
    { name: 'A zstd', rw: 'A', uuid: UUID_A, msg: 'vector layer A', expect: 'zfile/A.zstdbs4.zfile', zfile: { algorithm: 'zstd' as const } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const out = path.join(tmp.dir, `${c.rw}-${crypto.randomUUID()}.out`);
      await commitLayer({ ...copyRw(c.rw), out, uuid: c.uuid, message: c.msg, ...(c.zfile ? { zfile: c.zfile } : {}) });
      expect(fs.readFileSync(out).equals(fs.readFileSync(vector(c.expect)))).toBe(true);
    });
  }

  it('seal in place matches upstream A.sealed (all but the filler bytes)', async () => {
    const { data, index } = copyRw('A');
    await sealLayer(data, index);
    const ours = fs.readFileSync(data);
    const theirs = fs.readFileSync(vector('lsmt/A.sealed'));
    expect(ours.length).toBe(theirs.length);
    const info = await inspectLayer(vector('lsmt/A.sealed'));
    const indexEnd = info.trailer!.indexOffset + 16 * info.trailer!.indexSize;
    expect(ours.subarray(0, indexEnd).equals(theirs.subarray(0, indexEnd))).toBe(true);
    expect(ours.subarray(-4096).equals(theirs.subarray(-4096))).toBe(true);
  });

  it('commit of a sealed file equals the commit of the writable layer', async () => {
    const out = path.join(tmp.dir, 'A-from-sealed.commit');
    await commitLayer({ data: vector('lsmt/A.sealed'), sealed: true, out, uuid: UUID_A, message: 'vector layer A' });
    expect(fs.readFileSync(out).equals(fs.readFileSync(vector('lsmt/A.commit')))).toBe(true);
  });
});

describe('inspect agrees with expected/layers.json', () => {
  const expected = JSON.parse(fs.readFileSync(vector('expected/layers.json'), 'utf8')) as Record<string, any>;
  for (const file of ['lsmt/A.commit', 'lsmt/B.commit', 'lsmt/A.sealed', 'zfile/A.lz4bs4.tar', 'zfile/A.commit.zfile-tool-lz4', 'apply/L1.zfile']) {
    it(file, async () => {
      const e = expected[file];
      const got = await inspectLayer(vector(file));
      expect(got.lsmtSize).toBe(e.lsmt_size);
      expect(got.paddingEntries).toBe(e.padding_entries);
      expect(got.entries).toEqual(e.entries);
      for (const [mine, theirs] of [[got.header, e.lsmt_header], [got.trailer!, e.lsmt_trailer]] as const) {
        expect(mine.flags).toBe(Number(theirs.flags));
        expect(mine.indexOffset).toBe(theirs.index_offset);
        expect(mine.indexSize).toBe(theirs.index_size);
        expect(mine.virtualSize).toBe(theirs.virtual_size);
        expect(mine.uuid).toBe(theirs.uuid);
        expect(mine.parentUuid).toBe(theirs.parent_uuid);
        expect(mine.userTag).toBe(theirs.user_tag);
      }
      if (e.tar_wrapper) expect(got.tar).toMatchObject({ wrapped: true, pax: true, payloadSize: e.tar_wrapper.payload_size });
      if (e.zfile) expect(got.zfile).toMatchObject({ blocks: e.zfile.nblocks, originalSize: e.zfile.original_file_size, indexOffset: e.zfile.index_offset, blockSize: e.zfile.block_size, maxStoredBlock: e.zfile.max_stored_block });
    });
  }
  it('an RW index file lists its entries in write order', async () => {
    const got = await inspectLayer(vector('lsmt/A.rw.index'));
    expect(got.entries).toEqual(expected['lsmt/A.rw.data+lsmt/A.rw.index'].index_entries_in_file_order);
  });
});

describe('interoperability with upstream files', () => {
  const AB = '570b575961136df2cefebabd440c79f651c49500c5fc0473582a56e98596a1bf';
  it('our compressed, tar-wrapped A under upstream B', async () => {
    for (const algorithm of ['lz4', 'zstd'] as const) {
      const out = path.join(tmp.dir, `A-${algorithm}.tar`);
      await commitLayer({ ...copyRw('A'), out, uuid: UUID_A, zfile: { algorithm, blockSize: 16384 }, tar: true });
      expect(await deviceHash({ lowers: [out, vector('lsmt/B.commit')] })).toBe(AB);
    }
  });
  it('upstream compressed A under our B', async () => {
    const out = path.join(tmp.dir, 'B-ours.commit');
    await commitLayer({ ...copyRw('B'), out, uuid: UUID_B, zfile: { algorithm: 'lz4' } });
    expect(await deviceHash({ lowers: [vector('zfile/A.lz4bs4.tar'), out] })).toBe(AB);
  });
});
