/**
 * Exclusive use of what must not be shared, and refusal of what must not be
 * waited on: a writable upper has one writer (flock, EBUSY for the second,
 * in this process or another), committed layers stay shareable, and FIFOs
 * given where a layer file is expected are refused at once.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OverlaybdError, type ErrorCode } from '../lib/errors.js';
import { openImage, type ImageSpec } from '../lib/image.js';
import { commitLayer, createLayer, inspectLayer, sealLayer } from '../lib/layer.js';
import * as zfile from '../lib/zfile.js';
import { repoRoot } from './helpers/native-tools.js';
import { tempDir } from './helpers/vectors.js';

const tmp = tempDir('obd-locks-');
afterAll(tmp.cleanup);

const SIZE = 64 << 20;
let n = 0;
async function upper(sparse = false): Promise<{ data: string; index: string }> {
  const base = path.join(tmp.dir, `u${n++}`);
  const u = { data: `${base}.data`, index: `${base}.index` };
  await createLayer({ ...u, virtualSize: SIZE, sparse });
  return u;
}

async function rejection(p: Promise<unknown>): Promise<OverlaybdError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OverlaybdError);
    return e as OverlaybdError;
  }
  throw new Error('resolved, expected a rejection');
}

async function expectCode(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  const e = await rejection(p);
  expect({ code: e.code, message: e.message }).toMatchObject({ code, message: expect.stringMatching(message) });
}

function block(writer: number, i: number): Buffer {
  const b = Buffer.alloc(4096);
  for (let k = 0; k < 4096; k += 8) b.writeUInt32LE(writer * 1_000_000 + i, k);
  return b;
}

describe('one writer per upper', () => {
  it('a second image on an append upper gets EBUSY and the first keeps all its writes', async () => {
    const u = await upper();
    const a = await openImage({ lowers: [], upper: u });
    await expectCode(openImage({ lowers: [], upper: u }), 'EBUSY', new RegExp(`${u.data}.*lock`));
    for (let i = 0; i < 100; i++) await a.write(block(1, i), i * 4096);
    await a.flush();
    await a.close();
    // The lock went with the image: reopening works and every block is there.
    const b = await openImage({ lowers: [], upper: u });
    for (let i = 0; i < 100; i++) expect((await b.read(i * 4096, 4096)).equals(block(1, i))).toBe(true);
    await b.close();
  });

  it('a sparse upper is locked too', async () => {
    const u = await upper(true);
    const a = await openImage({ lowers: [], upper: u });
    await expectCode(openImage({ lowers: [], upper: { data: u.data } }), 'EBUSY', /lock/);
    await a.close();
  });

  it('commit and seal of an upper an image writes get EBUSY; commit works once it is closed', async () => {
    const u = await upper();
    const img = await openImage({ lowers: [], upper: u });
    await img.write(block(2, 0), 0);
    const out = path.join(tmp.dir, `c${n++}.commit`);
    await expectCode(commitLayer({ ...u, out }), 'EBUSY', /lock/);
    await expectCode(sealLayer(u.data, u.index), 'EBUSY', /lock/);
    expect(fs.existsSync(out)).toBe(false);
    await img.close();
    await commitLayer({ ...u, out });
    // Committed layers are shared: two images read one at the same time.
    const [x, y] = await Promise.all([openImage({ lowers: [out] }), openImage({ lowers: [out] })]);
    expect((await x.read(0, 4096)).equals(block(2, 0))).toBe(true);
    expect((await y.read(0, 4096)).equals(block(2, 0))).toBe(true);
    await x.close();
    await y.close();
  });

  it('another process holding the upper makes this one get EBUSY, until it exits', async () => {
    const u = await upper();
    const spec: ImageSpec = { lowers: [], upper: u };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/helpers/hold-image.ts'), JSON.stringify(spec)], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      const first = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
      expect(first).toBe('open');
      await expectCode(openImage(spec), 'EBUSY', new RegExp(u.data));
      await expectCode(commitLayer({ ...u, out: path.join(tmp.dir, `c${n++}.commit`) }), 'EBUSY', /lock/);
    } finally {
      child.stdin.end();
      await exited;
    }
    const img = await openImage(spec);
    await img.close();
  }, 60_000);

  it('and the other way round: the child gets EBUSY while this process writes', async () => {
    const u = await upper();
    const spec: ImageSpec = { lowers: [], upper: u };
    const img = await openImage(spec);
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/helpers/hold-image.ts'), JSON.stringify(spec)], {
      cwd: repoRoot,
      input: '',
    });
    expect(out.toString().trim()).toBe('error EBUSY');
    await img.close();
  }, 60_000);
});

describe('an empty index with an append-mode data file', () => {
  it('says which file is wrong and why', async () => {
    const append = await upper();
    const sparse = await upper(true);
    expect(fs.statSync(sparse.index).size).toBe(0);
    await expectCode(
      openImage({ lowers: [], upper: { data: append.data, index: sparse.index } }),
      'EINVAL',
      new RegExp(`${sparse.index}: the index file is empty, but ${append.data} is an append-mode data file`),
    );
  });
});

describe('FIFOs where a layer file is expected', () => {
  const fifos: string[] = [];
  function fifo(): string {
    const p = path.join(tmp.dir, `fifo${n++}`);
    execFileSync('mkfifo', [p]);
    fifos.push(p);
    return p;
  }
  afterAll(() => {
    // Frees any thread still stuck opening one for reading (before the fix).
    for (const p of fifos) {
      try {
        fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // no reader waiting
      }
    }
  });

  const entries: [string, (f: string) => Promise<unknown>][] = [
    ['openImage lower', (f) => openImage({ lowers: [f] })],
    ['openImage upper', (f) => openImage({ lowers: [], upper: { data: f } })],
    ['zfile.open', (f) => zfile.open(f)],
    ['zfile.verify', (f) => zfile.verify(f)],
    ['zfile.info', (f) => zfile.info(f)],
    ['zfile.compress', (f) => zfile.compress(f, path.join(tmp.dir, `z${n++}`))],
    ['zfile.decompress', (f) => zfile.decompress(f, path.join(tmp.dir, `d${n++}`))],
    ['inspectLayer', (f) => inspectLayer(f)],
  ];
  for (const [name, call] of entries) {
    it(`${name}: four at once are refused with EINVAL and the thread pool stays free`, async () => {
      const calls = [0, 1, 2, 3].map(() => {
        const f = fifo();
        return expectCode(call(f), 'EINVAL', new RegExp(`${f} is not a regular file`));
      });
      await Promise.all(calls);
      // The libuv pool (4 threads) still serves file reads.
      expect((await fs.promises.readFile(path.join(repoRoot, 'package.json'))).length).toBeGreaterThan(0);
    }, 20_000);
  }
});
