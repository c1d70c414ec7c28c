/**
 * zstd-compressed source layers: decompressed natively (Node 20 has no
 * zstd), checked against their diff_id, and converted like gzip ones.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { convert } from '../lib/convertor/index.js';
import { openDedupStore } from '../lib/convertor/db/index.js';
import { silentLogger } from '../lib/log.js';
import { RegistryClient } from '../lib/registry/index.js';
import { mountStack } from './helpers/convertor-tree.js';
import { blob, buildImage, writeOciLayout, type BuiltImage } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';
import zlib from 'node:zlib';

const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';
let work: string;
let reg: TestRegistry;

/** Re-encodes every layer of `img` with the zstd CLI; `badDiffId` corrupts the config's first diff_id. */
function zstdImage(img: BuiltImage, badDiffId = false): BuiltImage {
  const layers = img.layers.map((l, i) => {
    const tar = path.join(work, `l${i}-${Math.random().toString(36).slice(2)}.tar`);
    fs.writeFileSync(tar, zlib.gunzipSync(l.data));
    execFileSync('zstd', ['-q', '-f', '-19', tar, '-o', `${tar}.zst`]);
    return blob(ZSTD_LAYER, fs.readFileSync(`${tar}.zst`));
  });
  const cfg = JSON.parse(img.config.data.toString());
  if (badDiffId) cfg.rootfs.diff_ids[0] = 'sha256:' + '0'.repeat(64);
  const config = blob(img.config.mediaType, JSON.stringify(cfg));
  const d = (b: { mediaType: string; digest: string; size: number }) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
  const manifest = blob(img.manifest.mediaType, JSON.stringify({ ...JSON.parse(img.manifest.data.toString()), config: d(config), layers: layers.map(d) }));
  return { ...img, config, manifest, layers };
}

const base = buildImage({
  layers: [
    [{ path: 'etc', type: 'dir' }, { path: 'etc/motd', content: 'zstd layer one\n' }],
    [{ path: 'data', type: 'dir' }, { path: 'data/blob.bin', content: Buffer.alloc(200_000, 7) }],
  ],
});

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-conv-zstd-'));
  reg = await startRegistry({ mode: 'plain' });
  const layout = path.join(work, 'layout');
  writeOciLayout(layout, { good: zstdImage(base), bad: zstdImage(base, true) });
  await skopeoCopy(layout, 'good', `${reg.host}/z/app:good`);
  await skopeoCopy(layout, 'bad', `${reg.host}/z/app:bad`);
}, 120_000);

afterAll(async () => {
  await reg?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

async function run(tag: string) {
  const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const store = await openDedupStore({ dbType: 'none' });
  try {
    return await convert(
      { repository: `${reg.host}/z/app`, inputTag: tag, overlaybdTag: `${tag}_obd`, vsizeGB: 1, workDir: path.join(work, `conv-${tag}`) },
      { client, store, logger: silentLogger },
    );
  } finally {
    client.close();
    await store.close();
  }
}

it('converts zstd layers and the device holds their files', async () => {
  const r = await run('good');
  const layers = r.manifests[0]!.layers;
  expect(layers).toHaveLength(2);
  const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const files: string[] = [];
  try {
    for (const [i, l] of layers.entries()) {
      const f = path.join(work, `obd-${i}`);
      const src = await client.fetchBlob({ registry: reg.host, repository: 'z/app' }, { digest: l.digest, size: l.size });
      await new Promise<void>((res, rej) => src.pipe(fs.createWriteStream(f)).on('finish', res).on('error', rej));
      files.push(f);
    }
  } finally {
    client.close();
  }
  const dev = await mountStack(files, path.join(work, 'mount'));
  try {
    expect(fs.readFileSync(path.join(dev.dir, 'etc/motd'), 'utf8')).toBe('zstd layer one\n');
    expect(fs.readFileSync(path.join(dev.dir, 'data/blob.bin')).equals(Buffer.alloc(200_000, 7))).toBe(true);
  } finally {
    dev.close();
  }
}, 120_000);

it('a zstd layer whose diff_id does not match stops the conversion', async () => {
  await expect(run('bad')).rejects.toMatchObject({ message: expect.stringMatching(/diff_id/) });
}, 120_000);
