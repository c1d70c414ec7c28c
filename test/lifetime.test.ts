/**
 * Lifetimes of the native objects: close() waits for the calls in flight,
 * flushes and releases; afterwards every call and getter fails with CLOSED.
 * Also: rejections carry the caller's stack, and argument checks that used
 * to let bad values through (DataView writes, 64-bit fds, NUL in paths).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openImage, type Image } from '../lib/image.js';
import { commitLayer, createLayer, inspectLayer, sealLayer } from '../lib/layer.js';
import * as zfile from '../lib/zfile.js';
import { applyLayer } from '../lib/ext4/index.js';
import { OverlaybdError } from '../lib/errors.js';
import { tempDir, vector } from './helpers/vectors.js';

const tmp = tempDir('obd-life-');
afterAll(tmp.cleanup);
const LOWER = vector('lsmt/A.commit');
const MiB = 1 << 20;

let n = 0;
async function writableImage(): Promise<{ img: Image; spec: { lowers: string[]; upper: { data: string; index: string } } }> {
  const base = path.join(tmp.dir, `up${n++}`);
  const upper = { data: `${base}.data`, index: `${base}.index` };
  await createLayer({ ...upper, virtualSize: 1 << 30 });
  const spec = { lowers: [LOWER], upper };
  return { img: await openImage(spec), spec };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<OverlaybdError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(OverlaybdError);
  expect((e as OverlaybdError).code, (e as Error).message).toBe(code);
  return e as OverlaybdError;
}

function throwsCode(f: () => unknown, code: string): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(OverlaybdError);
  expect((err as OverlaybdError).code).toBe(code);
}

describe('Image.close', () => {
  it('lets hundreds of reads and writes in flight finish, then flushes', async () => {
    const { img, spec } = await writableImage();
    const before = await img.read(0, 64 * 1024);
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      ops.push(img.write(Buffer.alloc(4096, (i % 250) + 1), 64 * MiB + i * 4096));
      ops.push(img.read((i % 16) * 4096, 4096));
    }
    const closed = img.close();
    // Started after close: rejected at once.
    const late = expectCode(img.read(0, 512), 'CLOSED');
    const results = await Promise.allSettled(ops);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    for (let i = 0; i < 300; i++) {
      expect((results[2 * i + 1] as PromiseFulfilledResult<Buffer>).value.equals(before.subarray((i % 16) * 4096, (i % 16 + 1) * 4096))).toBe(true);
    }
    await closed;
    await late;
    // Every write made it to the upper's files.
    const again = await openImage(spec);
    const got = await again.read(64 * MiB, 300 * 4096);
    for (let i = 0; i < 300; i++) expect(got[i * 4096]).toBe((i % 250) + 1);
    await again.close();
  });

  it('twice is fine and returns once the first close is done', async () => {
    const { img } = await writableImage();
    const p1 = img.close();
    const p2 = img.close();
    await Promise.all([p1, p2]);
    await img.close();
  });

  it('makes every method reject and every getter throw CLOSED', async () => {
    const { img } = await writableImage();
    expect(img.size).toBe(1 << 30);
    expect(img.writable).toBe(true);
    await img.close();
    throwsCode(() => img.size, 'CLOSED');
    throwsCode(() => img.writable, 'CLOSED');
    await expectCode(img.read(0, 512), 'CLOSED');
    await expectCode(img.write(Buffer.alloc(512), 0), 'CLOSED');
    await expectCode(img.discard(0, 512), 'CLOSED');
    await expectCode(img.flush(), 'CLOSED');
    await expectCode(img.dump(1), 'CLOSED');
    const e = await expectCode(img.read(0, 512), 'CLOSED');
    expect(e.category).toBe('closed');
  });

  it('works with await using', async () => {
    let kept: Image | undefined;
    {
      await using img = await openImage({ lowers: [LOWER] });
      kept = img;
      expect((await img.read(0, 512)).length).toBe(512);
    }
    throwsCode(() => kept!.size, 'CLOSED');
  });
});

describe('ZFileReader.close', () => {
  const zf = vector('zfile/A.lz4bs4.zfile');

  it('lets reads in flight finish and then fails with CLOSED, size included', async () => {
    const r = await zfile.open(zf);
    const size = r.size;
    const whole = await r.read(0, Math.min(size, MiB));
    const reads = Array.from({ length: 200 }, (_, i) => r.read((i * 4096) % (whole.length - 4096), 4096));
    const closed = r.close();
    const got = await Promise.all(reads);
    got.forEach((b, i) => {
      const off = (i * 4096) % (whole.length - 4096);
      expect(b.equals(whole.subarray(off, off + 4096))).toBe(true);
    });
    await closed;
    await r.close();
    throwsCode(() => r.size, 'CLOSED');
    await expectCode(r.read(0, 1), 'CLOSED');
  });

  it('works with await using', async () => {
    let kept: zfile.ZFileReader | undefined;
    {
      await using r = await zfile.open(zf);
      kept = r;
    }
    throwsCode(() => kept!.size, 'CLOSED');
  });
});

describe('errors of async native calls', () => {
  it('carry the stack of the JavaScript call that started them', async function readPastTheEnd() {
    // A compressed lower cut short after it was opened: the read fails on the pool.
    const cut = path.join(tmp.dir, 'cut.zfile');
    fs.copyFileSync(vector('zfile/A.lz4bs4.zfile'), cut);
    const img = await openImage({ lowers: [cut] });
    fs.truncateSync(cut, 8192);
    try {
      const r = await expectCode(img.read(0, 65536), 'ZFILE_TRUNCATED');
      expect(r.stack).toMatch(/^OverlaybdError: /);
      expect(r.stack).toContain('readPastTheEnd');
      expect(r.stack).toContain('lifetime.test.ts');
      const e = await expectCode(img.write(Buffer.alloc(512), 0), 'EROFS');
      expect(e.stack).toMatch(/^OverlaybdError: /);
      expect(e.stack).toContain('readPastTheEnd');
      expect(e.stack).toContain('lifetime.test.ts');
      const z = await expectCode(zfile.verify(vector('lsmt/A.commit')), 'ZFILE_BAD_MAGIC');
      expect(z.stack).toContain('readPastTheEnd');
    } finally {
      await img.close();
    }
  });
});

describe('argument checks', () => {
  it('dump rejects file descriptors that are not int32 (2**32 + 2 is not stderr)', async () => {
    const img = await openImage({ lowers: [LOWER] });
    try {
      for (const fd of [2 ** 32 + 2, -1, 1.5, 2 ** 31]) await expectCode(img.dump(fd), 'EINVAL');
    } finally {
      await img.close();
    }
  });

  it('write takes any ArrayBufferView', async () => {
    const { img } = await writableImage();
    try {
      const ab = new ArrayBuffer(8192);
      new Uint8Array(ab).fill(7, 0, 4096).fill(9, 4096);
      await img.write(new DataView(ab, 4096, 4096), 0);
      await img.write(new Uint8Array(ab, 0, 4096), 4096);
      await img.write(new Uint32Array(1024).fill(0x01010101), 8192);
      const got = await img.read(0, 12288);
      expect(got.subarray(0, 4096).every((x) => x === 9)).toBe(true);
      expect(got.subarray(4096, 8192).every((x) => x === 7)).toBe(true);
      expect(got.subarray(8192).every((x) => x === 1)).toBe(true);
      await expectCode(img.write('abc' as unknown as Buffer, 0), 'EINVAL');
      await expectCode(img.write(new ArrayBuffer(512) as unknown as Buffer, 0), 'EINVAL');
    } finally {
      await img.close();
    }
  });

  it('every path argument with a NUL byte is EINVAL naming it', async () => {
    const real = LOWER;
    const bad = `${real}\0ignored`;
    const named = async (p: Promise<unknown>, name: string) =>
      expect((await expectCode(p, 'EINVAL')).message).toContain(name);
    await named(openImage({ lowers: [bad] }), 'lowers');
    await named(openImage({ lowers: [], upper: { data: bad } }), 'upper.data');
    await named(zfile.open(bad), 'path');
    await named(zfile.info(bad), 'path');
    await named(zfile.verify(bad), 'path');
    await named(zfile.compress(bad, path.join(tmp.dir, 'x')), 'src');
    await named(zfile.decompress(vector('zfile/A.lz4bs4.zfile'), path.join(tmp.dir, 'x\0y')), 'dst');
    await named(inspectLayer(bad), 'file');
    await named(sealLayer(bad), 'data');
    await named(createLayer({ data: path.join(tmp.dir, 'c\0d'), index: path.join(tmp.dir, 'ci'), virtualSize: MiB }), 'data');
    await named(commitLayer({ data: real, sealed: true, out: path.join(tmp.dir, 'o\0') }), 'out');
    await named(applyLayer({ raw: path.join(tmp.dir, 'r\0') }, vector('inputs/layer1.tar')), 'raw');
    await named(applyLayer({ raw: path.join(tmp.dir, 'r') }, `${vector('inputs/layer1.tar')}\0`), 'layer input');
    // Nothing was created under the truncated names.
    expect(fs.existsSync(path.join(tmp.dir, 'c'))).toBe(false);
    expect(fs.existsSync(path.join(tmp.dir, 'o'))).toBe(false);
    expect(fs.existsSync(path.join(tmp.dir, 'r'))).toBe(false);
  });
});
