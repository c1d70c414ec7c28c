/**
 * `npm run bench -- convert scale` (dispatched from bench/convert.ts): the
 * conversion figures of issue 11 at scale, measured in one run.
 *  - runs the scale tests (test/convert-scale*.test.ts) with OBD_SCALE=1 and
 *    prints what they measured: the ≥ 2 GB image's conversion in MiB/s of
 *    uncompressed tar with its peak RSS, and the peak RSS of the 4 GiB
 *    layer, 6 GiB file and 200k-file cases;
 *  - the baseline on the same image: `skopeo copy` to an OCI layout, `tar -x`
 *    of every layer, `mkfs.ext4 -d` of the tree;
 *  - a layer with one directory of 100k files against one of 10k: the
 *    per-file cost of each (conversion time less that of a one-file layer).
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { convert, openDedupStore } from '../lib/convertor/index.js';
import { silentLogger } from '../lib/log.js';
import { RegistryClient } from '../lib/registry/index.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { imageDocuments, pushImage, scaleImage } from '../test/helpers/scale-image.js';
import { writeGzipLayer, type GenEntry } from '../test/helpers/tar-stream.js';
import { ROOT } from '../test/helpers/vectors.js';

const exec = promisify(execFile);
type Figures = Record<string, number | string>;
const s1 = (ms: number) => Number((ms / 1000).toFixed(1));

/** Runs the scale test files with OBD_SCALE=1; their figures come back through OBD_SCALE_FIGURES. */
async function scaleTests(work: string): Promise<Figures> {
  const figuresFile = path.join(work, 'figures.jsonl');
  const t = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('npx', ['vitest', 'run', 'test/convert-scale-rss.test.ts', 'test/convert-scale.test.ts'], {
      cwd: ROOT,
      env: { ...process.env, OBD_SCALE: '1', OBD_SCALE_FIGURES: figuresFile },
      stdio: ['ignore', process.stderr, process.stderr],
    });
    child.on('close', resolve);
  });
  const out: Figures = { 'scale tests': code === 0 ? 'passed' : `FAILED (exit ${code})`, 'scale tests s': s1(performance.now() - t) };
  if (fs.existsSync(figuresFile)) {
    for (const line of fs.readFileSync(figuresFile, 'utf8').split('\n').filter(Boolean)) Object.assign(out, JSON.parse(line) as Figures);
  }
  return out;
}

/** skopeo copy (registry -> OCI layout) + tar -x of each layer + mkfs.ext4 -d, on the scale image. */
export async function baseline(reg: TestRegistry, work: string): Promise<Figures> {
  const img = await scaleImage();
  await pushImage(reg.host, 'scale/base', 'src', img, img.layers.map((l) => ({ file: l.gz, digest: l.digest, size: l.size })));
  const oci = path.join(work, 'oci');
  const tree = path.join(work, 'tree');
  const ext4 = path.join(work, 'base.ext4');
  fs.mkdirSync(tree);
  let t = performance.now();
  await exec('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${reg.host}/scale/base:src`, `oci:${oci}:src`], { timeout: 3_600_000 });
  const copyMs = performance.now() - t;
  t = performance.now();
  for (const l of img.layers) {
    const blob = path.join(oci, 'blobs', 'sha256', l.digest.slice('sha256:'.length));
    await exec('tar', ['-xzf', blob, '-C', tree, '--numeric-owner'], { timeout: 3_600_000 });
  }
  const tarMs = performance.now() - t;
  t = performance.now();
  await exec('mkfs.ext4', ['-q', '-F', '-d', tree, ext4, '64G'], { timeout: 3_600_000 });
  const mkfsMs = performance.now() - t;
  fs.rmSync(tree, { recursive: true, force: true });
  const totalMs = copyMs + tarMs + mkfsMs;
  return {
    'baseline: skopeo copy s': s1(copyMs),
    'baseline: tar -x s': s1(tarMs),
    'baseline: mkfs.ext4 -d s': s1(mkfsMs),
    'baseline: total s': s1(totalMs),
    'baseline: MiB/s of tar': Number((img.tarBytes / 2 ** 20 / (totalMs / 1000)).toFixed(1)),
  };
}

function* bigDir(n: number): Generator<GenEntry> {
  yield { type: 'dir', path: 'big' };
  for (let i = 0; i < n; i++) yield { type: 'file', path: `big/f${String(i).padStart(6, '0')}`, size: 100 + (i % 400), seed: i };
}

/** Converts a one-layer image of one directory with `n` files (in-process); returns the wall time in ms. */
async function convertDir(reg: TestRegistry, work: string, n: number): Promise<number> {
  const layer = await writeGzipLayer(path.join(work, `dir-${n}.tar.gz`), bigDir(n));
  const repo = `dirs/n${n}`;
  await pushImage(reg.host, repo, 'src', imageDocuments([layer]), [layer]);
  const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const store = await openDedupStore({ dbType: 'none' });
  try {
    const t = performance.now();
    await convert({ repository: `${reg.host}/${repo}`, inputTag: 'src', overlaybdTag: 'obd', workDir: path.join(work, `conv-${n}`) }, { client, store, logger: silentLogger });
    return performance.now() - t;
  } finally {
    await store.close();
    await client.close();
    fs.rmSync(path.join(work, `conv-${n}`), { recursive: true, force: true });
  }
}

export async function directories(reg: TestRegistry, work: string): Promise<Figures> {
  const one = await convertDir(reg, work, 1);
  const t10k = await convertDir(reg, work, 10_000);
  const t100k = await convertDir(reg, work, 100_000);
  const per10k = (t10k - one) / 10_000;
  const per100k = (t100k - one) / 100_000;
  return {
    'dir 1 file: convert s': s1(one),
    'dir 10k files: convert s': s1(t10k),
    'dir 100k files: convert s': s1(t100k),
    'dir 10k: per-file us': Math.round(per10k * 1000),
    'dir 100k: per-file us': Math.round(per100k * 1000),
    'dir per-file cost 100k / 10k': Number((per100k / per10k).toFixed(2)),
  };
}

export async function runScale(): Promise<Figures> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-scale-'));
  const reg = await startRegistry({ mode: 'plain' });
  try {
    const tests = await scaleTests(work);
    const base = await baseline(reg, work);
    const dirs = await directories(reg, work);
    const ours = tests['scale image: convert s'];
    const vs: Figures = typeof ours === 'number' ? { 'scale image: convert / baseline': Number((ours / (base['baseline: total s'] as number)).toFixed(2)) } : {};
    return { ...tests, ...base, ...vs, ...dirs };
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
