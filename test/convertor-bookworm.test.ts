/**
 * A real Debian bookworm minbase image (mmdebstrap, one gzip layer) through
 * the convertor: the converted layer is tar(ZFile(LSMT)) and its device
 * holds exactly the rootfs; converting again is a re-tag with no layer
 * upload; another repository of the host gets it by cross-repository
 * mount; with SQLite and with MariaDB, and the second full conversion (the
 * MariaDB one) yields the same layer digest as the first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainIds, convert, uuidFromChainId, type ConvertResult } from '../lib/convertor/index.js';
import { openDedupStore, type DedupStore } from '../lib/convertor/db/index.js';
import { inspectLayer } from '../lib/layer.js';
import { silentLogger } from '../lib/log.js';
import { MediaTypes, RegistryClient } from '../lib/registry/index.js';
import { bookwormLayout, type BookwormImage } from './helpers/bookworm.js';
import { compareTrees, mergeLayers, mountStack } from './helpers/convertor-tree.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startMariadb, type TestMariadb } from './helpers/mariadb.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

let work: string;
let bw: BookwormImage;
let reg: TestRegistry;
let proxy: FaultProxy;
let sqlite: DedupStore;
let db: TestMariadb;
let mysql: DedupStore;

function client(): RegistryClient {
  return new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
}

async function run(repo: string, store: DedupStore, tag = 'obd'): Promise<{ r: ConvertResult; c: RegistryClient }> {
  const c = client();
  try {
    const r = await convert(
      { repository: `${proxy.host}/${repo}`, inputTag: bw.tag, overlaybdTag: tag, vsizeGB: 2, workDir: path.join(work, 'conv') },
      { client: c, store, logger: silentLogger },
    );
    return { r, c };
  } finally {
    c.close();
  }
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-convertor-bookworm-'));
  bw = await bookwormLayout();
  reg = await startRegistry({ mode: 'plain' });
  proxy = await startFaultProxy(reg.url);
  sqlite = await openDedupStore({ dbType: 'sqlite', dbStr: path.join(work, 'dedup.db') });
  db = await startMariadb();
  mysql = await openDedupStore({ dbType: 'mysql', dbStr: db.dsn('conversioncache') });
  for (const repo of ['deb/a', 'deb/b', 'deb/m1', 'deb/m2']) await skopeoCopy(bw.layout, bw.tag, `${reg.host}/${repo}:${bw.tag}`);
}, 600_000);

afterAll(async () => {
  await sqlite?.close();
  await mysql?.close();
  await db?.stop();
  await proxy?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

let layer: { digest: string; size: number };

describe('bookworm minbase', () => {
  it('converts, and the device holds exactly the rootfs', async () => {
    const { r, c } = await run('deb/a', sqlite);
    expect(r.manifests[0]!.how).toBe('converted');
    expect(c.stats.blobUploads).toBe(2);
    const c2 = client();
    const loc = { registry: reg.host, repository: 'deb/a' };
    const { bytes, descriptor } = await c2.getManifest(`${reg.host}/deb/a:obd`);
    expect(descriptor.mediaType).toBe(MediaTypes.dockerManifest);
    const m = JSON.parse(bytes.toString()) as { layers: { digest: string; size: number; annotations: Record<string, string> }[] };
    expect(m.layers).toHaveLength(1);
    layer = m.layers[0]!;
    expect(m.layers[0]!.annotations['containerd.io/snapshot/overlaybd/blob-digest']).toBe(layer.digest);
    const dir = path.join(work, 'check');
    fs.mkdirSync(dir);
    const f = path.join(dir, 'layer.commit');
    await c2.fetchBlobToFile(loc, layer, f);
    c2.close();
    const info = await inspectLayer(f);
    expect(info.tar.wrapped).toBe(true);
    expect(info.zfile?.algorithm).toBe('lz4');
    expect(info.trailer).toBeDefined();
    expect(info.header.uuid.toLowerCase()).toBe(uuidFromChainId(chainIds(bw.image.diffIds)[0]!));
    const expected = path.join(dir, 'expected');
    mergeLayers([bw.tar], expected, dir);
    const dev = await mountStack([f], path.join(dir, 'dev'));
    try {
      const diffs = compareTrees(expected, dev.dir);
      expect(diffs.slice(0, 20)).toEqual([]);
    } finally {
      dev.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('converting again is a re-tag with no layer upload (SQLite)', async () => {
    proxy.reset();
    const { r, c } = await run('deb/a', sqlite, 'obd2');
    expect(r.manifests[0]!.how).toBe('retagged');
    expect(c.stats.blobUploads).toBe(0);
    expect(proxy.count('POST')).toBe(0);
    expect(proxy.count('GET', /\/blobs\//)).toBe(0);
  });

  it('another repository on the host reuses it by cross-repository mount (SQLite)', async () => {
    proxy.reset();
    const { r, c } = await run('deb/b', sqlite);
    expect(r.manifests[0]!.how).toBe('retagged');
    expect(c.stats.blobUploads).toBe(0);
    expect(c.stats.blobMounts).toBe(2);
    expect(proxy.count('POST', /mount=.*from=deb%2Fa/)).toBe(2);
    expect(r.manifests[0]!.layers[0]!.digest).toBe(layer.digest);
  });

  it('with MariaDB: a fresh conversion gives the same layer, then re-tag and mount', async () => {
    const first = await run('deb/m1', mysql);
    expect(first.r.manifests[0]!.how).toBe('converted');
    // Reproducible: another full conversion, another process-independent result, the same bytes.
    expect(first.r.manifests[0]!.layers[0]!.digest).toBe(layer.digest);
    expect(first.r.manifests[0]!.layers[0]!.size).toBe(layer.size);
    proxy.reset();
    const again = await run('deb/m1', mysql, 'obd2');
    expect(again.r.manifests[0]!.how).toBe('retagged');
    expect(again.c.stats.blobUploads).toBe(0);
    expect(proxy.count('POST')).toBe(0);
    proxy.reset();
    const other = await run('deb/m2', mysql);
    expect(other.r.manifests[0]!.how).toBe('retagged');
    expect(other.c.stats.blobUploads).toBe(0);
    expect(proxy.count('POST', /mount=.*from=deb%2Fm1/)).toBe(2);
    expect(await db.sql("SELECT repo, data_digest FROM conversioncache.overlaybd_layers ORDER BY repo")).toBe(`deb/m1\t${layer.digest}\n`);
    expect((await db.sql('SELECT repo FROM conversioncache.overlaybd_manifests ORDER BY repo')).trim().split('\n')).toEqual(['deb/m1', 'deb/m2']);
  });
});
