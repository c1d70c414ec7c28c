/**
 * Corrupt and hostile LSMT input: each case gets an OverlaybdError with a
 * specific code naming the file and field, never a crash or a hang.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OverlaybdError, type ErrorCode } from '../lib/errors.js';
import { openImage } from '../lib/image.js';
import { createLayer, inspectLayer, sealLayer } from '../lib/layer.js';
import { Prng } from './helpers/prng.js';
import { tempDir, vector } from './helpers/vectors.js';

const tmp = tempDir('obd-corrupt-');
afterAll(tmp.cleanup);

const A = fs.readFileSync(vector('lsmt/A.commit'));
const TRAILER = A.length - 4096;
const INDEX = Number(A.readBigUInt64LE(TRAILER + 32));

let n = 0;
function write(bytes: Buffer, name = 'layer'): string {
  const f = path.join(tmp.dir, `${name}-${n++}`);
  fs.writeFileSync(f, bytes);
  return f;
}

async function openError(file: string): Promise<OverlaybdError> {
  try {
    const img = await openImage({ lowers: [file] });
    await img.close();
  } catch (e) {
    expect(e).toBeInstanceOf(OverlaybdError);
    return e as OverlaybdError;
  }
  throw new Error(`${file} opened although it is corrupt`);
}

function flip(b: Buffer, at: number, mask: number): void {
  b.writeUInt8(b.readUInt8(at) ^ mask, at);
}

function patched(edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(A);
  edit(b);
  return b;
}

function entry(b: Buffer, i: number, e: { offset: number; length: number; moffset: number; zeroed?: number }) {
  const w0 = BigInt(e.offset) | (BigInt(e.length) << 50n);
  const w1 = BigInt(e.moffset) | (BigInt(e.zeroed ?? 0) << 55n);
  b.writeBigUInt64LE(w0, INDEX + 16 * i);
  b.writeBigUInt64LE(w1, INDEX + 16 * i + 8);
}

describe('committed layer', () => {
  const cases: [string, (b: Buffer) => void, ErrorCode, RegExp][] = [
    ['header magic', (b) => flip(b, 3, 0xff), 'LSMT_BAD_MAGIC', /header: no LSMT magic/],
    ['trailer magic', (b) => flip(b, TRAILER + 9, 1), 'LSMT_NOT_SEALED', /no trailer/],
    ['header struct size', (b) => b.writeUInt32LE(391, 24), 'LSMT_BAD_HEADER', /field size is 391/],
    ['trailer without the sealed bit', (b) => b.writeUInt32LE(2, TRAILER + 28), 'LSMT_BAD_HEADER', /trailer: flags 2/],
    ['index_size above 1,000,000', (b) => b.writeBigUInt64LE(1000001n, TRAILER + 40), 'LSMT_INDEX_TOO_LARGE', /index_size 1000001/],
    ['index_size 2^62', (b) => b.writeBigUInt64LE(1n << 62n, TRAILER + 40), 'LSMT_INDEX_TOO_LARGE', /index_size/],
    ['index past the trailer', (b) => b.writeBigUInt64LE(300n, TRAILER + 40), 'LSMT_BAD_HEADER', /does not fit/],
    ['index_offset inside the header', (b) => b.writeBigUInt64LE(100n, TRAILER + 32), 'LSMT_BAD_HEADER', /index_offset 100/],
    ['index_offset beyond the file', (b) => b.writeBigUInt64LE(1n << 60n, TRAILER + 32), 'LSMT_BAD_HEADER', /index_offset/],
    ['virtual size not sector aligned', (b) => b.writeBigUInt64LE(1000n, TRAILER + 48), 'LSMT_BAD_HEADER', /virtual_size 1000/],
    ['overlapping entries', (b) => entry(b, 1, { offset: 100, length: 48, moffset: 136 }), 'LSMT_BAD_INDEX', /index entry 1 .*overlaps/],
    ['entry data beyond the index', (b) => entry(b, 0, { offset: 0, length: 128, moffset: INDEX / 512 }), 'LSMT_BAD_INDEX', /beyond the index offset/],
    ['entry data inside the header', (b) => entry(b, 0, { offset: 0, length: 128, moffset: 2 }), 'LSMT_BAD_INDEX', /inside the header/],
    ['zero-length entry', (b) => entry(b, 0, { offset: 0, length: 0, moffset: 8 }), 'LSMT_BAD_INDEX', /length is 0/],
    ['zeroed entry beyond the index', (b) => entry(b, 3, { offset: 8704, length: 128, moffset: INDEX / 512 + 1, zeroed: 1 }), 'LSMT_BAD_INDEX', /index entry 3/],
  ];
  for (const [name, edit, code, msg] of cases) {
    it(name, async () => {
      const f = write(patched(edit));
      const e = await openError(f);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(msg);
      expect(e.message).toContain(f);
    });
  }

  it('unreadable UUID text reads as the null UUID (upstream does not validate it)', async () => {
    const f = write(patched((b) => b.write('not-a-uuid-at-all-xxxxxxxxxxxxxxxxxx', TRAILER + 56)));
    const img = await openImage({ lowers: [f] });
    expect((await img.read(0, 4096)).equals(A.subarray(4096, 8192))).toBe(true);
    await img.close();
    expect((await inspectLayer(f)).trailer!.uuid).toBe('00000000-0000-0000-0000-000000000000');
  });

  it('truncation anywhere', async () => {
    const rng = new Prng(7);
    const cuts = [0, 1, 511, 4096, 8191, 8192, INDEX, INDEX + 17, TRAILER, A.length - 1];
    for (let i = 0; i < 40; i++) cuts.push(rng.int(A.length));
    for (const cut of cuts) {
      const e = await openError(write(A.subarray(0, cut), `cut${cut}`));
      expect(['LSMT_TRUNCATED', 'LSMT_NOT_SEALED', 'LSMT_BAD_MAGIC', 'LSMT_BAD_HEADER', 'LSMT_BAD_INDEX']).toContain(e.code);
    }
  });

  it('random byte flips never crash and either open or fail with a code', async () => {
    const rng = new Prng(11);
    for (let i = 0; i < 200; i++) {
      const b = Buffer.from(A);
      const at = rng.pick([rng.int(4096), TRAILER + rng.int(400), INDEX + rng.int(16 * 8)]);
      flip(b, at, 1 << rng.int(8));
      try {
        const img = await openImage({ lowers: [write(b, 'flip')] });
        await img.read(0, 1 << 20);
        await img.close();
      } catch (e) {
        expect(e).toBeInstanceOf(OverlaybdError);
      }
    }
  });
});

describe('writable layer', () => {
  function copyRw(): { data: string; index: string } {
    const data = write(fs.readFileSync(vector('lsmt/A.rw.data')), 'rw.data');
    const index = write(fs.readFileSync(vector('lsmt/A.rw.index')), 'rw.index');
    return { data, index };
  }

  it('an index entry pointing past the data file', async () => {
    const rw = copyRw();
    const ix = fs.readFileSync(rw.index);
    ix.writeBigUInt64LE((1n << 40n) | 0n, 4096 + 8); // moffset of entry 0
    fs.writeFileSync(rw.index, ix);
    const e = await openImage({ lowers: [], upper: rw }).catch((x) => x);
    expect(e.code).toBe('LSMT_BAD_INDEX');
    expect(e.message).toMatch(/entry 0 maps sectors/);
  });

  it('data and index swapped', async () => {
    const rw = copyRw();
    const e = await openImage({ lowers: [], upper: { data: rw.index, index: rw.data } }).catch((x) => x);
    expect(e.code).toBe('LSMT_BAD_HEADER');
  });

  it('a torn last index entry is ignored (crash during append)', async () => {
    const rw = copyRw();
    fs.appendFileSync(rw.index, Buffer.alloc(7, 0xab));
    const img = await openImage({ lowers: [], upper: rw });
    await img.write(Buffer.alloc(4096, 0x5a), 1 << 20);
    await img.flush();
    await img.close();
    const again = await openImage({ lowers: [], upper: rw });
    expect((await again.read(1 << 20, 4096)).every((x) => x === 0x5a)).toBe(true);
    await again.close();
  });

  it('a sealed data file cannot be reopened as writable', async () => {
    const rw = copyRw();
    const sealed = write(fs.readFileSync(vector('lsmt/A.sealed')), 'sealed');
    const e = await openImage({ lowers: [], upper: { data: sealed, index: rw.index } }).catch((x) => x);
    expect(e.code).toBe('EROFS');
    expect(e.message).toMatch(/sealed; open it as a read-only layer/);
  });

  it('a sealed sparse layer cannot be reopened as writable', async () => {
    const data = path.join(tmp.dir, 'sp.data'), index = path.join(tmp.dir, 'sp.index');
    await createLayer({ data, index, virtualSize: 1 << 20, sparse: true });
    const img = await openImage({ lowers: [], upper: { data, index } });
    await img.write(Buffer.alloc(4096, 1), 8192);
    await img.close();
    await sealLayer(data, index);
    await expect(openImage({ lowers: [], upper: { data, index } })).rejects.toMatchObject({ code: 'EROFS' });
    const ro = await openImage({ lowers: [data] });
    expect((await ro.read(8192, 4096)).every((x) => x === 1)).toBe(true);
    await ro.close();
  });

  it('unaligned, out-of-range and read-only writes', async () => {
    const data = path.join(tmp.dir, 'w.data'), index = path.join(tmp.dir, 'w.index');
    await createLayer({ data, index, virtualSize: 1 << 20 });
    const img = await openImage({ lowers: [], upper: { data, index } });
    await expect(img.write(Buffer.alloc(100), 0)).rejects.toMatchObject({ code: 'UNALIGNED' });
    await expect(img.read(-1, 512)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/^offset: /) });
    await expect(img.write(Buffer.alloc(512), 1 << 20)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await expect(img.discard(512, 1 << 20)).rejects.toMatchObject({ code: 'OUT_OF_RANGE' });
    await img.close();
    const ro = await openImage({ lowers: [vector('lsmt/A.commit')] });
    await expect(ro.write(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EROFS' });
    await ro.close();
    await expect(createLayer({ data, index, virtualSize: 1 << 20 })).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('too many layers', async () => {
    const lowers = Array.from({ length: 256 }, () => vector('lsmt/B.commit'));
    await expect(openImage({ lowers })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    const img = await openImage({ lowers: lowers.slice(0, 255) });
    expect(img.size).toBe(1 << 30);
    await img.close();
  });
});
