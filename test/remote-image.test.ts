/**
 * The remote bookworm fixture: the image's blobs are in the registry, the
 * local copies hash to the layer digests, a ranged GET of the blob URL
 * returns the local bytes, and writeConfig's config.v1.json validates.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageConfigSchema, loadImageConfig } from '../lib/config.js';
import { inspectLayer } from '../lib/layer.js';
import { remoteBookworm, type RemoteBookworm, type RemoteCompression } from './helpers/remote-image.js';

function sha256(file: string): string {
  return 'sha256:' + createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe.each<[RemoteCompression, string | undefined]>([
  ['lz4', 'lz4'],
  ['zstd', 'zstd'],
  ['none', undefined],
])('remoteBookworm %s', (compression, algorithm) => {
  let rb: RemoteBookworm;
  let dir: string;
  beforeAll(async () => {
    rb = await remoteBookworm({ compression });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-remote-image-'));
  }, 600_000);
  afterAll(async () => {
    await rb?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('has local copies of the layers that hash to their digests', async () => {
    expect(rb.lowers.length).toBeGreaterThanOrEqual(1);
    expect(rb.localLayers).toHaveLength(rb.lowers.length);
    for (const [i, l] of rb.lowers.entries()) {
      expect(sha256(rb.localLayers[i]!)).toBe(l.digest);
      expect(fs.statSync(rb.localLayers[i]!).size).toBe(l.size);
    }
    const info = await inspectLayer(rb.localLayers[0]!);
    expect(info.zfile?.algorithm).toBe(algorithm);
    expect(info.tar.wrapped).toBe(algorithm !== undefined);
    expect(info.trailer).toBeDefined();
  });

  it('serves byte ranges of each blob at repoBlobUrl/<digest>', async () => {
    expect(rb.repoBlobUrl).toBe(`${rb.registryUrl}/v2/${rb.repo}/blobs`);
    const l = rb.lowers[0]!;
    const offset = Math.floor(l.size / 3);
    const res = await fetch(`${rb.repoBlobUrl}/${l.digest}`, { headers: { Range: `bytes=${offset}-${offset + 4095}` } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${offset}-${offset + 4095}/${l.size}`);
    const local = Buffer.alloc(4096);
    const fd = fs.openSync(rb.localLayers[0]!, 'r');
    fs.readSync(fd, local, 0, 4096, offset);
    fs.closeSync(fd);
    expect(Buffer.from(await res.arrayBuffer()).equals(local)).toBe(true);
  });

  it('writes a config.v1.json with remote lowers', async () => {
    const file = rb.writeConfig(dir, { resultFile: path.join(dir, 'result'), download: { enable: false } });
    const config = ImageConfigSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    expect(config.repoBlobUrl).toBe(rb.repoBlobUrl);
    expect(config.lowers).toEqual(rb.lowers.map((l, i) => ({ ...l, dir: path.join(dir, `lower${i}`) })));
    expect(config.resultFile).toBe(path.join(dir, 'result'));
    for (const l of config.lowers) expect(fs.readdirSync(l.dir!)).toEqual([]);
    // No local layer file: today's local-only loader says the layer needs the image service.
    await expect(loadImageConfig(file)).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('remote layers need the image service') });
  });
});
