/**
 * Randomized stacks against a flat byte-array model: random writes and
 * discards through writable uppers (append and sparse) over growing stacks of
 * lowers made by every path (commit, commit -z lz4/zstd with tar, seal,
 * commit of a sealed file). Seeded: OBD_TEST_SEED=<n> replays one run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openImage, type Image } from '../lib/image.js';
import { commitLayer, createLayer, sealLayer } from '../lib/layer.js';
import { Prng } from './helpers/prng.js';
import { tempDir } from './helpers/vectors.js';

const SECTOR = 512;
const BLOCK = 4096; // host filesystem block: sparse layers allocate whole blocks
const VSIZE = 64 << 20;
const tmp = tempDir('obd-model-');
afterAll(tmp.cleanup);

type Upper = { data: string; index: string; sparse: boolean };

class Model {
  bytes = Buffer.alloc(VSIZE);
  lower = Buffer.alloc(VSIZE); // what the lowers alone show
  allocated = new Set<number>(); // sparse upper: allocated 4 KiB blocks
}

async function verifyAll(img: Image, m: Model, what: string) {
  const got = await img.read(0, VSIZE);
  if (!got.equals(m.bytes)) {
    let i = 0;
    while (got[i] === m.bytes[i]) i++;
    throw new Error(`${what}: device differs from the model first at byte ${i} (sector ${Math.floor(i / SECTOR)})`);
  }
}

// Write payloads: slices of one random pool, each sector stamped with a
// unique write id and sector number so misplaced data cannot go unnoticed.
const POOL = new Prng(0xfeed).bytes(16 << 20);
let writeId = 0;
function payload(rng: Prng, len: number): Buffer {
  const start = rng.int(POOL.length - len) & ~3;
  const b = Buffer.from(POOL.subarray(start, start + len));
  const id = ++writeId;
  for (let s = 0; s < len; s += SECTOR) {
    b.writeUInt32LE(id, s);
    b.writeUInt32LE(s / SECTOR, s + 4);
  }
  return b;
}

async function runGeneration(rng: Prng, m: Model, lowers: string[], upper: Upper, ops: number) {
  // Both I/O engines serve the same stacks.
  const ioEngine = rng.pick(['psync', 'io_uring'] as const);
  const img = await openImage({ lowers, upper, ioEngine });
  expect(img.size).toBe(VSIZE);
  for (let op = 0; op < ops; op++) {
    // Offsets cluster in a few regions so writes overlap and split extents.
    const region = rng.pick([0, 1 << 20, 17 << 20, VSIZE - (1 << 20)]);
    const lba = (region + rng.int(1 << 20)) / SECTOR | 0;
    const maxSect = Math.min(rng.pick([1, 8, 64, 300, 9000, 20000]), VSIZE / SECTOR - lba);
    const n = 1 + rng.int(maxSect);
    const off = lba * SECTOR, len = n * SECTOR;
    const kind = rng.int(10);
    if (kind < 6) {
      const data = payload(rng, len);
      await img.write(data, off);
      if (upper.sparse) {
        // Unwritten sectors of newly allocated blocks read as zero.
        for (let b = Math.floor(off / BLOCK); b * BLOCK < off + len; b++) {
          if (!m.allocated.has(b)) {
            m.bytes.fill(0, b * BLOCK, Math.min((b + 1) * BLOCK, VSIZE));
            m.allocated.add(b);
          }
        }
      }
      data.copy(m.bytes, off);
    } else if (kind < 8) {
      await img.discard(off, len);
      if (!upper.sparse) {
        m.bytes.fill(0, off, off + len);
      } else {
        // Whole blocks are freed (lower data shows again); partial ones zeroed.
        for (let b = Math.floor(off / BLOCK); b * BLOCK < off + len; b++) {
          const bs = b * BLOCK, be = bs + BLOCK;
          if (bs >= off && be <= off + len) {
            m.allocated.delete(b);
            m.lower.copy(m.bytes, bs, bs, be);
          } else if (m.allocated.has(b)) {
            m.bytes.fill(0, Math.max(bs, off), Math.min(be, off + len));
          }
        }
      }
    } else {
      // Unaligned read of a random range.
      const roff = off + rng.int(SECTOR), rlen = Math.min(1 + rng.int(len), VSIZE - roff);
      const got = await img.read(roff, rlen);
      expect(got.equals(m.bytes.subarray(roff, roff + rlen))).toBe(true);
    }
    if (op % 97 === 0) await img.flush();
  }
  await verifyAll(img, m, 'live upper');
  await img.flush();
  await img.close();
  // The upper's files alone must rebuild the same device.
  const again = await openImage({ lowers, upper, ioEngine });
  await verifyAll(again, m, 'reopened upper');
  await again.close();
}

async function turnIntoLower(rng: Prng, upper: Upper, gen: number): Promise<string> {
  const base = path.join(tmp.dir, `g${gen}`);
  const index = upper.sparse ? undefined : upper.index;
  switch (rng.int(4)) {
    case 0: {
      await commitLayer({ data: upper.data, ...(index ? { index } : {}), out: `${base}.commit` });
      return `${base}.commit`;
    }
    case 1: {
      const zfile = { algorithm: rng.pick(['lz4', 'zstd'] as const), blockSize: rng.pick([4096, 16384, 65536] as const) };
      await commitLayer({ data: upper.data, ...(index ? { index } : {}), out: `${base}.tar`, zfile, tar: rng.chance(0.5) });
      return `${base}.tar`;
    }
    case 2: {
      await sealLayer(upper.data, index);
      return upper.data;
    }
    default: {
      await sealLayer(upper.data, index);
      await commitLayer({ data: upper.data, sealed: true, out: `${base}.commit`, zfile: { algorithm: 'zstd' } });
      return `${base}.commit`;
    }
  }
}

const seeds = process.env.OBD_TEST_SEED ? [Number(process.env.OBD_TEST_SEED)] : [1, 2, 3];

describe('random operations through stacks match a flat model', () => {
  for (const seed of seeds) {
    it(`seed ${seed}`, async () => {
      const rng = new Prng(seed);
      const m = new Model();
      const lowers: string[] = [];
      for (let gen = 0; gen < 6; gen++) {
        const upper: Upper = {
          data: path.join(tmp.dir, `s${seed}-g${gen}.data`),
          index: path.join(tmp.dir, `s${seed}-g${gen}.index`),
          sparse: rng.chance(0.4),
        };
        await createLayer({ data: upper.data, index: upper.index, virtualSize: VSIZE, sparse: upper.sparse });
        m.allocated.clear();
        m.lower = Buffer.from(m.bytes);
        await runGeneration(rng, m, lowers, upper, 400);
        lowers.push(await turnIntoLower(rng, upper, seed * 100 + gen));
        const img = await openImage({ lowers });
        await verifyAll(img, m, `stack of ${lowers.length} lowers`);
        await img.close();
      }
      for (const f of fs.readdirSync(tmp.dir)) if (f.startsWith(`s${seed}-`) || f.startsWith(`g${seed}`)) fs.rmSync(path.join(tmp.dir, f), { force: true });
    });
  }
});
