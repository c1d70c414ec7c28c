/**
 * ZFile and the tar wrapper against the upstream vectors: decompression of
 * every vector, byte-exact zstd compression, LZ4 structure, round trips over
 * every block size, oversized stored blocks, tar wrap/unwrap, and corrupt
 * inputs that must each fail with their specific error code.
 */
import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as zfile from '../lib/zfile.js';
import { OverlaybdError } from '../lib/errors.js';

const VEC = '/work/shared/vectors';
const A_COMMIT = `${VEC}/lsmt/A.commit`;
const layers = JSON.parse(await fs.readFile(`${VEC}/expected/layers.json`, 'utf8')) as Record<
  string,
  { zfile?: Record<string, number | boolean>; tar_wrapper?: { kind: string; payload_size: number } }
>;

let tmp: string;
let seq = 0;
const tmpFile = (name: string) => path.join(tmp, `${seq++}-${name}`);

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'obd-zfile-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

// Raw CRC-32C as overlaybd uses it (no inversions), to re-sign mutated records.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();
function crc32c(seed: number, b: Uint8Array): number {
  let c = seed >>> 0;
  for (const x of b) c = (CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8)) >>> 0;
  return c >>> 0;
}

/** Recomputes the digest of the 512-byte record at `off` (digest at +28). */
function resign(buf: Buffer, off: number): void {
  const rec = Buffer.from(buf.subarray(off, off + 512));
  rec.writeUInt32LE(0, 28);
  buf.writeUInt32LE(crc32c(0, rec), off + 28);
}

/** Deterministic data: xorshift random bytes or a repeated sentence. */
function randomBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
function textBytes(n: number): Buffer {
  const s = 'The quick brown fox jumps over the lazy overlaybd block device. ';
  return Buffer.from(s.repeat(Math.ceil(n / s.length)).slice(0, n));
}
/** Random, text and zero segments, with a size that is not a block multiple. */
function mixedData(seed: number): Buffer {
  return Buffer.concat([
    randomBytes(200_000, seed),
    textBytes(300_001),
    Buffer.alloc(70_000),
    randomBytes(131_072, seed + 1),
    textBytes(12_345),
  ]);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<OverlaybdError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OverlaybdError);
    expect((e as OverlaybdError).code, (e as Error).message).toBe(code);
    expect((e as Error).message.length).toBeGreaterThan(10);
    return e as OverlaybdError;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

async function readAll(file: string): Promise<Buffer> {
  const r = await zfile.open(file);
  try {
    return await r.read(0, r.size);
  } finally {
    await r.close();
  }
}

describe('upstream vectors', () => {
  const vectors = ['A.lz4bs4.zfile', 'A.zstdbs4.zfile', 'A.lz4bs4.tar', 'A.commit.zfile-tool-lz4'];

  it.each(vectors)('%s decompresses to lsmt/A.commit', async (name) => {
    const ref = await fs.readFile(A_COMMIT);
    const out = tmpFile('out');
    const r = await zfile.decompress(`${VEC}/zfile/${name}`, out);
    expect(r.size).toBe(ref.length);
    expect((await fs.readFile(out)).equals(ref)).toBe(true);
    expect((await readAll(`${VEC}/zfile/${name}`)).equals(ref)).toBe(true);
    await zfile.verify(`${VEC}/zfile/${name}`);
  });

  it.each(vectors)('%s info matches expected/layers.json', async (name) => {
    const exp = layers[`zfile/${name}`]!;
    const z = exp.zfile!;
    const i = await zfile.info(`${VEC}/zfile/${name}`);
    expect(i.header.flags).toBe(z.header_flags);
    // For overwritten headers layers.json repeats the header flags here.
    expect(i.headerOverwritten ? i.header.flags : i.trailer.flags).toBe(z.trailer_or_src_flags);
    expect(i.blockSize).toBe(z.block_size);
    expect(i.header.algo).toBe(z.algo);
    expect(i.verify).toBe(z.verify === 1);
    expect(i.blocks).toBe(z.nblocks);
    expect(i.originalSize).toBe(z.original_file_size);
    expect(i.indexOffset).toBe(z.index_offset);
    expect(i.maxStoredBlock).toBe(z.max_stored_block);
    expect(i.trailer.flags).toBe(0x16);
    expect(i.tar.wrapped).toBe(!!exp.tar_wrapper);
    if (exp.tar_wrapper) {
      expect(i.tar.pax).toBe(exp.tar_wrapper.kind === 'pax');
      expect(i.tar.payloadOffset).toBe(1536);
      expect(i.tar.payloadSize).toBe(exp.tar_wrapper.payload_size);
    }
  });

  it('zstd 4 KiB with header overwrite reproduces A.zstdbs4.zfile byte for byte', async () => {
    const want = await fs.readFile(`${VEC}/zfile/A.zstdbs4.zfile`);
    for (const threads of [1, 3]) {
      const out = tmpFile('a.zst');
      await zfile.compress(A_COMMIT, out, { algorithm: 'zstd', blockSize: 4096, overwriteHeader: true, threads });
      expect((await fs.readFile(out)).equals(want), `threads=${threads}`).toBe(true);
    }
  });

  it('LZ4 output has the structure of upstream commit -z and zfile outputs', async () => {
    const ref = await fs.readFile(A_COMMIT);
    for (const [vec, overwriteHeader] of [
      ['A.lz4bs4.zfile', true],
      ['A.commit.zfile-tool-lz4', false],
    ] as const) {
      const out = tmpFile('a.lz4');
      await zfile.compress(A_COMMIT, out, { overwriteHeader });
      const got = await fs.readFile(out);
      const want = await fs.readFile(`${VEC}/zfile/${vec}`);
      const gi = await zfile.info(out);
      const wi = await zfile.info(`${VEC}/zfile/${vec}`);
      for (const k of ['blocks', 'originalSize', 'blockSize', 'algorithm', 'verify', 'headerOverwritten'] as const) {
        expect(gi[k], k).toEqual(wi[k]);
      }
      expect(gi.header.flags).toBe(wi.header.flags);
      expect(gi.trailer.flags).toBe(wi.trailer.flags);
      // Layout: blocks from 512, jump table of 4*N bytes at index_offset, trailer last.
      expect(gi.fileSize).toBe(gi.indexOffset + 4 * gi.blocks + 512);
      let sum = 512;
      for (let i = 0; i < gi.blocks; i++) sum += got.readUInt32LE(gi.indexOffset + 4 * i);
      expect(sum).toBe(gi.indexOffset);
      expect(crc32c(0, got.subarray(gi.indexOffset, gi.indexOffset + 4 * gi.blocks))).toBe(gi.trailer.indexCrc);
      if (overwriteHeader) {
        // The rewritten header repeats the trailer's index fields.
        expect({ ...gi.header, flags: 0, digest: 0 }).toEqual({ ...gi.trailer, flags: 0, digest: 0 });
      } else {
        // The initial header depends on no compressed size: byte-exact.
        expect(got.subarray(0, 512).equals(want.subarray(0, 512))).toBe(true);
      }
      expect((await readAll(out)).equals(ref)).toBe(true);
    }
  });
});

describe('round trips', () => {
  const data = mixedData(7);
  let src: string;
  beforeAll(async () => {
    src = tmpFile('mixed.bin');
    await fs.writeFile(src, data);
  });

  for (const algorithm of ['lz4', 'zstd'] as const) {
    for (const kb of [4, 8, 16, 32, 64]) {
      it(`${algorithm} ${kb} KiB`, async () => {
        const out = tmpFile(`rt-${algorithm}-${kb}`);
        const res = await zfile.compress(src, out, { algorithm, blockSize: kb * 1024, threads: 2 });
        expect(res.rawSize).toBe(data.length);
        expect(res.size).toBe(statSync(out).size);
        await zfile.verify(out);
        const back = tmpFile('back');
        await zfile.decompress(out, back);
        expect((await fs.readFile(back)).equals(data)).toBe(true);

        const r = await zfile.open(out);
        try {
          expect(r.size).toBe(data.length);
          const rnd = randomBytes(4 * 200, kb);
          // Random ranges, issued concurrently (several pool threads read at once).
          const reads = [];
          for (let i = 0; i < 200; i++) {
            const off = rnd.readUInt32LE(i * 4) % (data.length + 1000);
            const len = (rnd.readUInt16LE(i * 2) * 7) % 200_000;
            reads.push(
              r.read(off, len).then((b) => {
                const end = Math.min(off + len, data.length);
                expect(b.equals(data.subarray(Math.min(off, data.length), end))).toBe(true);
              }),
            );
          }
          await Promise.all(reads);
          expect((await r.read(data.length, 10)).length).toBe(0);
          expect((await r.read(0, data.length + 5)).equals(data)).toBe(true);
        } finally {
          await r.close();
        }
      });
    }
  }

  it('reads 64 KiB blocks whose stored size exceeds 65536 (upstream cannot)', async () => {
    const rnd = randomBytes(5 * 65536 + 1234, 99);
    const src2 = tmpFile('rand64');
    await fs.writeFile(src2, rnd);
    for (const algorithm of ['lz4', 'zstd'] as const) {
      const out = tmpFile(`big-${algorithm}`);
      await zfile.compress(src2, out, { algorithm, blockSize: 65536 });
      const i = await zfile.info(out);
      expect(i.maxStoredBlock).toBeGreaterThan(65536);
      expect((await readAll(out)).equals(rnd)).toBe(true);
      await zfile.verify(out);
    }
  });

  it('writes without per-block CRC (verify: false) and an empty file', async () => {
    const out = tmpFile('nocrc');
    await zfile.compress(src, out, { verify: false, algorithm: 'zstd', blockSize: 8192 });
    expect((await zfile.info(out)).verify).toBe(false);
    expect((await readAll(out)).equals(data)).toBe(true);

    const empty = tmpFile('empty');
    await fs.writeFile(empty, '');
    const outE = tmpFile('empty.zfile');
    await zfile.compress(empty, outE, { overwriteHeader: true });
    const i = await zfile.info(outE);
    expect(i.blocks).toBe(0);
    expect(i.originalSize).toBe(0);
    expect((await readAll(outE)).length).toBe(0);
  });

  it('refuses to overwrite unless forced, and validates options', async () => {
    const out = tmpFile('exists');
    await fs.writeFile(out, 'x');
    await expectCode(zfile.compress(src, out), 'EEXIST');
    expect(await fs.readFile(out, 'utf8')).toBe('x');
    await zfile.compress(src, out, { force: true });
    await zfile.verify(out);
    const back = tmpFile('back');
    await fs.writeFile(back, 'y');
    await expectCode(zfile.decompress(out, back), 'EEXIST');
    await zfile.decompress(out, back, { force: true });
    expect((await fs.readFile(back)).equals(data)).toBe(true);

    await expectCode(zfile.compress(src, tmpFile('x'), { blockSize: 12288 }), 'EINVAL');
    await expectCode(zfile.compress(src, tmpFile('x'), { blockSize: 2048 }), 'EINVAL');
    // @ts-expect-error invalid algorithm on purpose
    await expectCode(zfile.compress(src, tmpFile('x'), { algorithm: 'gzip' }), 'EINVAL');
    await expectCode(zfile.compress(src, tmpFile('x'), { threads: 0 }), 'EINVAL');
    await expectCode(zfile.compress(path.join(tmp, 'missing'), tmpFile('x')), 'ENOENT');
    // A failed decompression leaves no output behind.
    const bad = tmpFile('bad');
    await expectCode(zfile.decompress(src, bad), 'ZFILE_BAD_MAGIC');
    await expect(fs.stat(bad)).rejects.toThrow();
  });
});

describe('tar wrapper', () => {
  /** The two ustar headers + pax record of §8, formatted as in the vector. */
  function tarHead(payloadLen: number, mode: number, pax = true): Buffer {
    const oct = (v: number, w: number) => v.toString(8).padStart(w, ' ');
    const h = (name: string, size: number, type: string, fields: boolean) => {
      const b = Buffer.alloc(512);
      b.write(name, 0);
      if (fields) {
        b.write(`${oct(mode, 6)} \0`, 100, 'latin1');
        b.write(`${oct(0, 6)} \0`, 108, 'latin1');
        b.write(`${oct(0, 6)} \0`, 116, 'latin1');
        b.write(`${oct(0, 11)} `, 136, 'latin1');
        b.write('root', 265);
        b.write('root', 297);
      }
      b.write(`${oct(size, 11)} `, 124, 'latin1');
      b.write(type, 156);
      b.write('ustar\0', 257, 'latin1');
      b.write('00', 263);
      b.fill(' ', 148, 156);
      let sum = 0;
      for (const x of b) sum += x;
      b.write(`${oct(sum, 6)} \0`, 148, 'latin1');
      return b;
    };
    if (!pax) return h('overlaybd.commit', payloadLen, '0', true);
    const body = ` size=${payloadLen}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len++;
    const rec = Buffer.alloc(512);
    rec.write(`${len}${body}`);
    return Buffer.concat([h('overlaybd.pax', len, 'x', false), rec, h('overlaybd.commit', 0, '0', true)]);
  }

  it('the reference formatter reproduces the vector headers', async () => {
    const v = await fs.readFile(`${VEC}/zfile/A.lz4bs4.tar`);
    expect(tarHead(1057972, 0o100644).equals(v.subarray(0, 1536))).toBe(true);
  });

  it('compress -t writes the §8 wrapper around the same ZFile', async () => {
    const plain = tmpFile('p.zfile');
    const wrapped = tmpFile('w.tar');
    await zfile.compress(A_COMMIT, plain, { overwriteHeader: true });
    const res = await zfile.compress(A_COMMIT, wrapped, { overwriteHeader: true, tar: true });
    const p = await fs.readFile(plain);
    const w = await fs.readFile(wrapped);
    expect(res.size).toBe(w.length);
    expect(w.subarray(0, 1536).equals(tarHead(p.length, statSync(wrapped).mode))).toBe(true);
    expect(w.subarray(1536, 1536 + p.length).equals(p)).toBe(true);
    const end = Math.ceil((1536 + p.length) / 512) * 512 + 1024;
    expect(w.length).toBe(end);
    expect(w.subarray(1536 + p.length).every((x) => x === 0)).toBe(true);
    const i = await zfile.info(wrapped);
    expect(i.tar).toEqual({ wrapped: true, pax: true, payloadOffset: 1536, payloadSize: p.length });
    expect((await readAll(wrapped)).equals(await fs.readFile(A_COMMIT))).toBe(true);
    await zfile.verify(wrapped);
  });

  it('unwraps a plain ustar entry without pax header', async () => {
    const z = await fs.readFile(`${VEC}/zfile/A.zstdbs4.zfile`);
    const t = tmpFile('plain.tar');
    const pad = Buffer.alloc((512 - (z.length % 512)) % 512 + 1024);
    await fs.writeFile(t, Buffer.concat([tarHead(z.length, 0o100644, false), z, pad]));
    const i = await zfile.info(t);
    expect(i.tar).toEqual({ wrapped: true, pax: false, payloadOffset: 512, payloadSize: z.length });
    expect((await readAll(t)).equals(await fs.readFile(A_COMMIT))).toBe(true);
  });

  it('rejects broken wrappers with TAR_* codes', async () => {
    const v = await fs.readFile(`${VEC}/zfile/A.lz4bs4.tar`);
    // Cut inside the payload: the pax size runs past the end.
    const cut = tmpFile('cut.tar');
    await fs.writeFile(cut, v.subarray(0, 600_000));
    await expectCode(zfile.info(cut), 'TAR_TRUNCATED');
    // Cut inside the pax record / before the entry header.
    const cut2 = tmpFile('cut2.tar');
    await fs.writeFile(cut2, v.subarray(0, 1100));
    await expectCode(zfile.info(cut2), 'TAR_TRUNCATED');
    // Entry header corrupted (checksum no longer matches).
    const badEntry = Buffer.from(v);
    badEntry[1024 + 3]! ^= 0x20;
    const f3 = tmpFile('bad-entry.tar');
    await fs.writeFile(f3, badEntry);
    await expectCode(zfile.info(f3), 'TAR_BAD_HEADER');
    // A first entry that is not a regular file.
    const dir = tarHead(0, 0o40755, false);
    dir.write('5', 156);
    dir.fill(' ', 148, 156);
    let sum = 0;
    for (const x of dir) sum += x;
    dir.write(`${sum.toString(8).padStart(6, ' ')} \0`, 148, 'latin1');
    const f4 = tmpFile('dir.tar');
    await fs.writeFile(f4, Buffer.concat([dir, Buffer.alloc(1024)]));
    await expectCode(zfile.info(f4), 'TAR_BAD_HEADER');
    // A pax record whose length field lies.
    const badPax = Buffer.from(v);
    badPax.write('99', 512);
    const f5 = tmpFile('bad-pax.tar');
    await fs.writeFile(f5, badPax);
    await expectCode(zfile.info(f5), 'TAR_BAD_HEADER');
    // Not a tar (bad checksum in the first header): read as is, so not a ZFile.
    const notTar = Buffer.from(v);
    notTar[0]! ^= 1;
    const f6 = tmpFile('not.tar');
    await fs.writeFile(f6, notTar);
    await expectCode(zfile.info(f6), 'ZFILE_BAD_MAGIC');
  });
});

describe('corrupt inputs', () => {
  let lz4: Buffer; // header overwritten (0x1B)
  let tool: Buffer; // header 0x13, index info only in the trailer
  let info: zfile.ZFileInfo;
  beforeAll(async () => {
    lz4 = await fs.readFile(`${VEC}/zfile/A.lz4bs4.zfile`);
    tool = await fs.readFile(`${VEC}/zfile/A.commit.zfile-tool-lz4`);
    info = await zfile.info(`${VEC}/zfile/A.lz4bs4.zfile`);
  });

  async function expectBroken(buf: Buffer, code: string, opts: { readOnly?: boolean } = {}): Promise<void> {
    const f = tmpFile('corrupt');
    await fs.writeFile(f, buf);
    await expectCode(zfile.verify(f), code);
    if (!opts.readOnly) {
      const out = tmpFile('out');
      await expectCode(zfile.decompress(f, out), code);
      // A failed decompression leaves neither the output nor its partial file.
      expect(existsSync(out) || existsSync(out + '.partial')).toBe(false);
    }
  }

  it('truncation at many offsets gives ZFILE_TRUNCATED', async () => {
    const offs = [1, 8, 23, 100, 511, 512, 513, 1000, 4096, 500_000, info.indexOffset, info.indexOffset + 101];
    offs.push(lz4.length - 513, lz4.length - 512, lz4.length - 100, lz4.length - 1);
    for (const base of [lz4, tool]) {
      for (const n of offs) await expectBroken(base.subarray(0, n), 'ZFILE_TRUNCATED', { readOnly: true });
    }
    await expectBroken(Buffer.alloc(0), 'ZFILE_BAD_MAGIC', { readOnly: true });
  });

  it('header damage: magic, digest, fields', async () => {
    for (const off of [0, 5, 23]) {
      const b = Buffer.from(lz4);
      b[off]! ^= 0x40;
      await expectBroken(b, 'ZFILE_BAD_MAGIC');
    }
    for (const off of [24, 28, 32, 40, 48, 56, 64, 72, 76, 88, 95, 96, 300, 511]) {
      for (const base of [lz4, tool]) {
        const b = Buffer.from(base);
        b[off]! ^= 0x01;
        await expectBroken(b, 'ZFILE_DIGEST_MISMATCH');
      }
    }
  });

  it('a header that lost its digest flag disagrees with the trailer', async () => {
    for (const base of [lz4, tool]) {
      const b = Buffer.from(base);
      b[32]! ^= 0x10;
      await expectBroken(b, 'ZFILE_BAD_HEADER');
    }
  });

  it('trailer damage', async () => {
    const t = lz4.length - 512;
    for (const base of [lz4, tool]) {
      for (const off of [28, 32, 40, 48, 56, 64, 72, 88, 200]) {
        const b = Buffer.from(base);
        b[t + off]! ^= 0x02;
        await expectBroken(b, 'ZFILE_DIGEST_MISMATCH');
      }
      // A trailer without magic reads as a cut or unfinished file.
      const b = Buffer.from(base);
      b[t + 3]! ^= 0x02;
      await expectBroken(b, 'ZFILE_TRUNCATED');
    }
  });

  it('jump table damage gives ZFILE_INDEX_CRC_MISMATCH', async () => {
    for (const base of [lz4, tool]) {
      for (const i of [0, 1, 100, info.blocks - 1]) {
        const b = Buffer.from(base);
        b[info.indexOffset + 4 * i]! ^= 0x10;
        await expectBroken(b, 'ZFILE_INDEX_CRC_MISMATCH');
      }
    }
  });

  it('block damage gives ZFILE_CRC_MISMATCH', async () => {
    for (const off of [512, 513, 4000, 100_000, info.indexOffset - 5, info.indexOffset - 1]) {
      const b = Buffer.from(lz4);
      b[off]! ^= 0x80;
      await expectBroken(b, 'ZFILE_CRC_MISMATCH');
    }
  });

  /** Applies `edit` to a copy, re-signs header and trailer (and index_crc), so only the semantic check can fail. */
  function forged(edit: (b: Buffer, rec: number[]) => void, fixIndexCrc = false): Buffer {
    const b = Buffer.from(lz4);
    const recs = [0, b.length - 512];
    edit(b, recs);
    if (fixIndexCrc) {
      const io = Number(b.readBigUInt64LE(40));
      const n = Number(b.readBigUInt64LE(48));
      const crc = crc32c(0, b.subarray(io, io + 4 * n));
      for (const r of recs) b.writeUInt32LE(crc, r + 64);
    }
    for (const r of recs) resign(b, r);
    return b;
  }

  it('absurd or inconsistent sizes give ZFILE_BAD_INDEX / ZFILE_BAD_HEADER', async () => {
    const setBoth = (off: number, v: bigint) => (b: Buffer, recs: number[]) => {
      for (const r of recs) b.writeBigUInt64LE(v, r + off);
    };
    for (const v of [1n << 40n, 0xffffffffffffffffn, 1_000_000_001n]) {
      await expectBroken(forged(setBoth(48, v)), 'ZFILE_BAD_INDEX');
    }
    // Within the 1e9 limit but larger than the file can hold.
    await expectBroken(forged(setBoth(48, 999_999_999n)), 'ZFILE_BAD_INDEX');
    for (const v of [0n, 511n, 1n << 62n, BigInt(lz4.length)]) {
      await expectBroken(forged(setBoth(40, v)), 'ZFILE_BAD_INDEX');
    }
    for (const v of [0n, 1n << 50n, 0xffffffffffffffffn, BigInt(info.originalSize + 4096)]) {
      await expectBroken(forged(setBoth(56, v)), 'ZFILE_BAD_HEADER');
    }
    // An empty jump table with a size near 2^64: the block count must not wrap to 0.
    const huge = forged((b, recs) => recs.forEach((r) => {
      b.writeBigUInt64LE(0n, r + 48);
      b.writeBigUInt64LE(0xffffffffffffffffn, r + 56);
    }), true);
    await expectBroken(huge, 'ZFILE_BAD_HEADER');
    // Block size, algorithm, struct size.
    await expectBroken(forged((b, recs) => recs.forEach((r) => b.writeUInt32LE(12345, r + 72))), 'ZFILE_BAD_HEADER');
    await expectBroken(forged((b, recs) => recs.forEach((r) => b.writeUInt32LE(1 << 20, r + 72))), 'ZFILE_BAD_HEADER');
    await expectBroken(forged((b, recs) => recs.forEach((r) => (b[r + 76] = 9))), 'ZFILE_BAD_HEADER');
    await expectBroken(forged((b, recs) => recs.forEach((r) => (b[r + 76] = 0))), 'ENOTSUP');
    await expectBroken(forged((b, recs) => recs.forEach((r) => b.writeUInt32LE(97, r + 24))), 'ZFILE_BAD_HEADER');
    // Header and trailer disagree.
    await expectBroken(forged((b) => b.writeUInt32LE(0x1234, 64)), 'ZFILE_BAD_HEADER');
  });

  it('bad stored lengths give ZFILE_BAD_INDEX', async () => {
    const io = info.indexOffset;
    for (const v of [0, 4, 70_000, 0xffffffff]) {
      await expectBroken(forged((b) => b.writeUInt32LE(v, io + 8), true), 'ZFILE_BAD_INDEX');
    }
    // Lengths that each look fine but sum past the jump table.
    await expectBroken(
      forged((b) => {
        for (let i = 0; i < info.blocks; i++) b.writeUInt32LE(4100, io + 4 * i);
      }, true),
      'ZFILE_BAD_INDEX',
    );
  });

  it('a block with a matching CRC but bad data gives ZFILE_DECOMPRESS_FAILED', async () => {
    const b = Buffer.from(lz4);
    const len0 = b.readUInt32LE(info.indexOffset);
    const start = 512;
    b.fill(0xff, start, start + len0 - 4);
    b.writeUInt32LE(crc32c(100007, b.subarray(start, start + len0 - 4)), start + len0 - 4);
    await expectBroken(b, 'ZFILE_DECOMPRESS_FAILED');

    // Valid data of the wrong size: block 1's bytes swapped into block 0's place is
    // caught by the CRC; without CRCs the decompressed size check catches it.
    const src = tmpFile('small');
    await fs.writeFile(src, Buffer.concat([textBytes(4096), textBytes(100)]));
    const nocrc = tmpFile('nocrc');
    await zfile.compress(src, nocrc, { verify: false, overwriteHeader: true });
    const n = await fs.readFile(nocrc);
    const i = await zfile.info(nocrc);
    const l0 = n.readUInt32LE(i.indexOffset);
    n.fill(0, 512, 512 + l0);
    await expectBroken(n, 'ZFILE_DECOMPRESS_FAILED');
  });
});
