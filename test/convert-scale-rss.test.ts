/**
 * Flat memory (issue 11): the peak RSS of a whole conversion by the
 * `convertor` CLI (a child under GNU time) stays under 512 MiB for a layer
 * of 4 GiB, a single 6 GiB file and 200k files, converted end to end
 * through a local registry; the converted device then holds every file with
 * the generated content (without OBD_SCALE=1, a sample of the 200k). The
 * 4 GiB and 6 GiB cases run with OBD_SCALE=1 (`npm run bench -- convert
 * scale` sets it): minutes each.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../lib/registry/index.js';
import { convertMeasured, recordFigures } from './helpers/convert-measured.js';
import { mountStack } from './helpers/convertor-tree.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { rssImage, type RssCase } from './helpers/rss-images.js';
import { pushImage } from './helpers/scale-image.js';

const LIMIT_MB = 512;
const big = process.env.OBD_SCALE === '1';
let reg: TestRegistry;
let work: string;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-convert-rss-'));
  reg = await startRegistry({ mode: 'plain' });
}, 60_000);

afterAll(async () => {
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function sha256(file: string): Promise<string> {
  // A stream's 1 MiB buffer per small file would cost more than the file.
  if (fs.statSync(file).size < 1 << 20) return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

async function convertCase(c: RssCase): Promise<void> {
  const img = await rssImage(c);
  await pushImage(reg.host, `rss/${c}`, 'src', img, img.layers);
  const m = await convertMeasured(reg.host, `rss/${c}`, 'src', 'obd', path.join(work, c));
  console.log(`${c}: ${(img.tarBytes / 2 ** 20).toFixed(0)} MiB of tar, peak RSS ${m.peakRssMB} MiB, ${m.wallS} s`);
  recordFigures({ [`${c}: peak RSS MiB`]: m.peakRssMB, [`${c}: convert s`]: m.wallS });
  expect.soft(m.peakRssMB).toBeLessThan(LIMIT_MB);

  const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const loc = { registry: reg.host, repository: `rss/${c}` };
  const check = path.join(work, `${c}-check`);
  fs.mkdirSync(check, { recursive: true });
  try {
    const { bytes } = await client.getManifest(`${reg.host}/rss/${c}:obd`);
    const layers = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers;
    expect(layers).toHaveLength(1);
    const f = path.join(check, 'layer.commit');
    const t0 = performance.now();
    await client.fetchBlobToFile(loc, layers[0]!, f);
    const dev = await mountStack([f], path.join(check, 'dev'));
    console.log(`${c}: fetched, dumped and mounted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    try {
      const want = img.layers[0]!.files;
      const wrong: string[] = [];
      // Without OBD_SCALE, every 50th file of the 200k: reading them all through the loop mount takes minutes.
      const step = big || c !== 'files-200k' ? 1 : 50;
      const t = performance.now();
      for (const [i, [p, sum]] of Object.entries(want).entries()) {
        if (i % step === 0 && (await sha256(path.join(dev.dir, p))) !== sum) wrong.push(p);
      }
      console.log(`${c}: checked every ${step === 1 ? '' : `${step}th `}file in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      expect(wrong.slice(0, 10)).toEqual([]);
      const count = (d: string): number =>
        fs.readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? count(path.join(d, e.name)) : 1), 0);
      expect(count(path.join(dev.dir, c === 'files-200k' ? 'tree' : 'data'))).toBe(Object.keys(want).length);
    } finally {
      dev.close();
    }
  } finally {
    await client.close();
    fs.rmSync(check, { recursive: true, force: true });
    fs.rmSync(path.join(work, c), { recursive: true, force: true });
  }
}

describe('peak RSS of a conversion stays under 512 MiB', () => {
  it('200k files', () => convertCase('files-200k'), 1_800_000);
  it.runIf(big)('a layer of 4 GiB', () => convertCase('layer-4g'), 3_600_000);
  it.runIf(big)('a single 6 GiB file', () => convertCase('file-6g'), 3_600_000);
});
