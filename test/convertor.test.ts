/**
 * The convertor end to end on small synthetic images, against a real
 * docker-registry behind the fault-injecting proxy: a single image and a
 * two-platform index (with an attestation manifest) convert; the results
 * pass `skopeo inspect`; every layer is tar(ZFile(LSMT)) with chain-ID
 * uuids; each platform's stacked device holds exactly the source files;
 * dedup re-tags and mounts (SQLite and MariaDB); faults either retry or
 * stop with a clear error and never leave a manifest naming missing blobs.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainIds, convert, uuidFromChainId, type ConvertOptionsInput, type ConvertResult } from '../lib/convertor/index.js';
import { openDedupStore, type DedupStore } from '../lib/convertor/db/index.js';
import { isOverlaybdError } from '../lib/errors.js';
import { inspectLayer } from '../lib/layer.js';
import { silentLogger } from '../lib/log.js';
import { MediaTypes, RegistryClient, type RegistryClientOptions } from '../lib/registry/index.js';
import { compareTrees, mergeLayers, mountStack } from './helpers/convertor-tree.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startMariadb, type TestMariadb } from './helpers/mariadb.js';
import { blob, buildImage, writeOciLayout, type BuiltImage, type TarEntry } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

const run = promisify(execFile);
const fast: RegistryClientOptions['retry'] = { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200, maxTotalMs: 20_000 };
const VSIZE = 1; // GiB: keeps the dumped devices small

// ---- fixtures: three layers (the third deletes a file of the first), two platforms, one attestation.
function platformImage(arch: string, variant?: string): BuiltImage {
  const base: TarEntry[] = [
    { path: 'etc', type: 'dir' },
    { path: 'etc/os-release', content: 'ID=overlaybd-test\n' },
    { path: 'bin', type: 'dir' },
    { path: 'bin/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
    { path: 'bin/old', content: 'to be deleted\n' },
  ];
  const img = buildImage({
    architecture: arch,
    layers: [
      base,
      [
        { path: 'data', type: 'dir' },
        { path: `data/${arch}.txt`, content: `payload for ${arch}\n`.repeat(500) },
        { path: 'data/big.bin', content: Buffer.alloc(300_000, arch.charCodeAt(0)) },
        { path: 'data/link', type: 'symlink', target: `${arch}.txt` },
      ],
      [
        { path: 'bin', type: 'dir' },
        { path: 'bin/.wh.old', content: '' },
        { path: 'etc', type: 'dir' },
        { path: 'etc/os-release', content: `ID=overlaybd-test\nARCH=${arch}\n` },
      ],
    ],
  });
  if (!variant) return img;
  // Give the config a variant too (buildImage does not).
  const cfg = JSON.parse(img.config.data.toString()) as Record<string, unknown>;
  cfg.variant = variant;
  const config = blob(img.config.mediaType, JSON.stringify(cfg));
  const manifest = blob(
    img.manifest.mediaType,
    JSON.stringify({ ...JSON.parse(img.manifest.data.toString()), config: { mediaType: config.mediaType, digest: config.digest, size: config.size } }),
  );
  return { ...img, config, manifest, platform: { ...img.platform } };
}

const amd64 = platformImage('amd64');
const arm64 = platformImage('arm64', 'v8');
const attestation = buildImage({ architecture: 'unknown', os: 'unknown', layers: [[{ path: 'intoto.json', content: '{}' }]] });
const desc = (b: { mediaType: string; digest: string; size: number }) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
const multiIndex = blob(
  MediaTypes.ociIndex,
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      { ...desc(amd64.manifest), platform: { architecture: 'amd64', os: 'linux' } },
      { ...desc(arm64.manifest), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' }, annotations: { 'org.example.keep': 'yes' } },
      {
        ...desc(attestation.manifest),
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': amd64.manifest.digest },
      },
    ],
    annotations: { 'org.example.index': 'kept' },
  }),
);

let work: string;
let layout: string;
let reg: TestRegistry;
let proxy: FaultProxy;
let sqlite: DedupStore;
const sourceTars = new Map<string, string[]>();

function client(): RegistryClient {
  return new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false }, retry: fast });
}

async function push(repo: string, tag: string): Promise<void> {
  await skopeoCopy(layout, tag, `${reg.host}/${repo}:${tag}`);
}

async function doConvert(
  o: Partial<ConvertOptionsInput> & { repository: string },
  store: DedupStore,
  c: RegistryClient = client(),
): Promise<{ r: ConvertResult; c: RegistryClient }> {
  const r = await convert(
    { inputTag: 'v1', overlaybdTag: 'v1_obd', vsizeGB: VSIZE, workDir: path.join(work, 'conv'), ...o, repository: `${proxy.host}/${o.repository}` },
    { client: c, store, logger: silentLogger },
  );
  c.close();
  return { r, c };
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-convertor-test-'));
  layout = path.join(work, 'layout');
  writeOciLayout(layout, { v1: amd64, multi: { index: multiIndex, images: [amd64, arm64, attestation] } });
  for (const img of [amd64, arm64]) {
    sourceTars.set(
      img.manifest.digest,
      img.layers.map((l, i) => {
        const f = path.join(work, `${img.manifest.digest.slice(7, 19)}-${i}.tar`);
        fs.writeFileSync(f, zlib.gunzipSync(l.data));
        return f;
      }),
    );
  }
  reg = await startRegistry({ mode: 'plain' });
  proxy = await startFaultProxy(reg.url);
  sqlite = await openDedupStore({ dbType: 'sqlite', dbStr: path.join(work, 'dedup.db') });
});

afterAll(async () => {
  await sqlite?.close();
  await proxy?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Fetches a converted manifest and checks it against upstream's format and the source files. */
async function checkConverted(repo: string, reference: string, source: BuiltImage, oci = false): Promise<string[]> {
  const c = client();
  const loc = { registry: reg.host, repository: repo };
  const { bytes, descriptor } = await c.getManifest(`${reg.host}/${repo}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`);
  const m = JSON.parse(bytes.toString()) as {
    mediaType: string;
    config: { mediaType: string; digest: string; size: number };
    layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[];
  };
  expect(descriptor.mediaType).toBe(oci ? MediaTypes.ociManifest : MediaTypes.dockerManifest);
  expect(m.mediaType).toBe(descriptor.mediaType);
  expect(m.config.mediaType).toBe(oci ? MediaTypes.ociConfig : MediaTypes.dockerConfig);
  const config = JSON.parse((await c.fetchBlobBytes(loc, m.config)).toString()) as { rootfs: { diff_ids: string[] }; architecture: string };
  expect(config.rootfs.diff_ids).toEqual(m.layers.map((l) => l.digest));
  expect(config.architecture).toBe(source.platform.architecture);
  const chains = chainIds(source.diffIds);
  const files: string[] = [];
  const dir = fs.mkdtempSync(path.join(work, 'check-'));
  try {
    for (const [i, l] of m.layers.entries()) {
      expect(l.mediaType).toBe(oci ? MediaTypes.ociLayer : MediaTypes.dockerLayer);
      expect(l.annotations).toEqual({
        'containerd.io/snapshot/overlaybd/blob-digest': l.digest,
        'containerd.io/snapshot/overlaybd/blob-size': String(l.size),
        'containerd.io/snapshot/overlaybd/version': '0.1.0',
      });
      const f = path.join(dir, `layer-${i}`);
      await c.fetchBlobToFile(loc, l, f);
      const info = await inspectLayer(f);
      expect(info.tar.wrapped).toBe(true);
      expect(info.zfile).toBeDefined();
      expect(info.trailer).toBeDefined();
      expect(info.header.uuid.toLowerCase()).toBe(uuidFromChainId(chains[i]!));
      if (i > 0) expect(info.header.parentUuid.toLowerCase()).toBe(uuidFromChainId(chains[i - 1]!));
      files.push(f);
    }
    const expected = path.join(dir, 'expected');
    mergeLayers(sourceTars.get(source.manifest.digest)!, expected, dir);
    const dev = await mountStack(files, path.join(dir, 'dev'));
    try {
      expect(compareTrees(expected, dev.dir)).toEqual([]);
    } finally {
      dev.close();
    }
    return m.layers.map((l) => l.digest);
  } finally {
    c.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function skopeoInspect(ref: string, raw = false): Promise<Record<string, unknown>> {
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', ...(raw ? ['--raw'] : []), `docker://${reg.host}/${ref}`]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

let firstLayers: string[] = [];

describe('conversion', () => {
  it('converts a single image: Docker schema2, tar(ZFile(LSMT)) layers, the same files', async () => {
    await push('app', 'v1');
    const { r, c } = await doConvert({ repository: 'app' }, sqlite);
    expect(r.manifests).toHaveLength(1);
    expect(r.manifests[0]!.how).toBe('converted');
    expect(c.stats.blobUploads).toBe(4);
    firstLayers = await checkConverted('app', 'v1_obd', amd64);
    const info = await skopeoInspect('app:v1_obd');
    expect(info.Layers).toEqual(firstLayers);
    expect(info.Architecture).toBe('amd64');
  });

  it('converts a two-platform index, keeping platforms and annotations and dropping the attestation', async () => {
    await push('multi', 'multi');
    const { r } = await doConvert({ repository: 'multi', inputTag: 'multi', overlaybdTag: 'multi_obd', concurrency: 2 }, sqlite);
    expect(r.dropped).toEqual([attestation.manifest.digest]);
    expect(r.output.mediaType).toBe(MediaTypes.ociIndex);
    const index = (await skopeoInspect('multi:multi_obd', true)) as {
      manifests: { mediaType: string; digest: string; platform: unknown; annotations?: Record<string, string> }[];
      annotations: Record<string, string>;
    };
    expect(index.annotations).toEqual({ 'org.example.index': 'kept' });
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
    expect(index.manifests[1]!.annotations).toEqual({ 'org.example.keep': 'yes' });
    for (const m of index.manifests) expect(m.mediaType).toBe(MediaTypes.dockerManifest);
    const amdLayers = await checkConverted('multi', index.manifests[0]!.digest, amd64);
    await checkConverted('multi', index.manifests[1]!.digest, arm64);
    // Same source layers, same chain IDs: byte-identical layers across repositories and runs.
    expect(amdLayers).toEqual(firstLayers);
    const arm = await skopeoInspect(`multi@${index.manifests[1]!.digest}`);
    expect(arm.Architecture).toBe('arm64');
  });

  it('is reproducible: a conversion without dedup gives the same layer and manifest digests', async () => {
    const none = await openDedupStore({ dbType: 'none' });
    const { r, c } = await doConvert({ repository: 'app', overlaybdTag: 'again' }, none);
    const first = await client().getManifest(`${reg.host}/app:v1_obd`);
    expect(r.output.digest).toBe(first.descriptor.digest);
    expect(r.manifests[0]!.layers.map((l) => l.digest)).toEqual(firstLayers);
    expect(c.stats.blobsExisting).toBeGreaterThanOrEqual(4);
  });

  it('gives the same layers with --stage-layers (layer.tar on disk) as streamed', async () => {
    const none = await openDedupStore({ dbType: 'none' });
    const { r } = await doConvert({ repository: 'app', overlaybdTag: 'staged', stageLayers: true }, none);
    expect(r.manifests[0]!.layers.map((l) => l.digest)).toEqual(firstLayers);
  });

  it('writes OCI manifests with --oci, and subject and artifactType with --referrer', async () => {
    const none = await openDedupStore({ dbType: 'none' });
    const { r } = await doConvert({ repository: 'app', overlaybdTag: 'ref', referrer: true }, none);
    const { bytes } = await client().getManifest(`${reg.host}/app:ref`);
    const m = JSON.parse(bytes.toString()) as { mediaType: string; artifactType: string; subject: { digest: string }; layers: { mediaType: string }[] };
    expect(m.mediaType).toBe(MediaTypes.ociManifest);
    expect(m.artifactType).toBe('application/vnd.containerd.overlaybd.native.v1+json');
    expect(m.subject.digest).toBe(amd64.manifest.digest);
    expect(m.layers.every((l) => l.mediaType === MediaTypes.ociLayer)).toBe(true);
    expect(r.manifests[0]!.layers.map((l) => l.digest)).toEqual(firstLayers);
  });

  it('with --no-upload --dump-manifest writes config.json and manifest.json and pushes nothing', async () => {
    proxy.reset();
    const dir = path.join(work, 'dump');
    const none = await openDedupStore({ dbType: 'none' });
    const { r } = await doConvert({ repository: 'app', overlaybdTag: 'nopush', noUpload: true, dumpManifest: true, workDir: dir }, none);
    expect(proxy.count('PUT') + proxy.count('POST') + proxy.count('PATCH')).toBe(0);
    const sub = fs.readdirSync(dir);
    expect(sub).toHaveLength(1);
    const manifest = fs.readFileSync(path.join(dir, sub[0]!, 'manifest.json'));
    expect(JSON.parse(manifest.toString()).layers.map((l: { digest: string }) => l.digest)).toEqual(firstLayers);
    expect(fs.existsSync(path.join(dir, sub[0]!, 'config.json'))).toBe(true);
    expect(r.output.size).toBe(manifest.length);
  });
});

/** Re-tag and cross-repository dedup, against one store. */
function dedupSuite(name: string, getStore: () => DedupStore, prefix: string) {
  describe(`dedup with ${name}`, () => {
    it('converts once, then re-tags with no layer upload', async () => {
      await push(`${prefix}/a`, 'v1');
      await doConvert({ repository: `${prefix}/a` }, getStore());
      proxy.reset();
      const { r, c } = await doConvert({ repository: `${prefix}/a`, overlaybdTag: 'v1_again' }, getStore());
      expect(r.manifests[0]!.how).toBe('retagged');
      expect(c.stats.blobUploads).toBe(0);
      expect(proxy.count('POST', /\/blobs\/uploads\//)).toBe(0);
      expect(proxy.count('PUT', /\/manifests\/v1_again$/)).toBe(1);
      expect(proxy.count('GET', new RegExp(amd64.layers[0]!.digest))).toBe(0);
    });

    it('reuses the manifest in another repository of the host by cross-repository mount', async () => {
      await push(`${prefix}/b`, 'v1');
      proxy.reset();
      const { r, c } = await doConvert({ repository: `${prefix}/b` }, getStore());
      expect(r.manifests[0]!.how).toBe('retagged');
      expect(c.stats.blobUploads).toBe(0);
      expect(c.stats.blobMounts).toBe(4);
      expect(proxy.count('POST', /mount=.*from=/)).toBe(4);
      // Pushed once, by tag; the mounted blobs are not HEADed again.
      expect(proxy.count('PUT', /\/manifests\//)).toBe(1);
      expect(proxy.count('PUT', /\/manifests\/v1_obd$/)).toBe(1);
      expect(proxy.count('HEAD', /\/blobs\//)).toBe(0);
      await checkConverted(`${prefix}/b`, 'v1_obd', amd64);
    });

    it('mounts layers from another repository when only the layers were converted there (--oci)', async () => {
      await push(`${prefix}/c`, 'v1');
      proxy.reset();
      const { r, c } = await doConvert({ repository: `${prefix}/c`, oci: true }, getStore());
      expect(r.manifests[0]!.how).toBe('converted');
      expect(r.manifests[0]!.layers.map((l) => l.how)).toEqual(['mounted', 'mounted', 'mounted']);
      expect(c.stats.blobUploads).toBe(1); // the config
      expect(proxy.count('GET', new RegExp(amd64.layers[0]!.digest))).toBe(0);
      expect(r.manifests[0]!.layers.map((l) => l.digest)).toEqual(firstLayers);
      await checkConverted(`${prefix}/c`, 'v1_obd', amd64, true);
    });

    it('drops a row whose blob is gone and converts again', async () => {
      const store = getStore();
      const chains = chainIds(amd64.diffIds);
      await push(`${prefix}/d`, 'v1');
      // A row claiming a layer the repository does not have.
      await store.createLayerEntry({ host: proxy.host, repo: `${prefix}/d`, chainId: chains[0]!, dataDigest: 'sha256:' + '0'.repeat(64), dataSize: 1 });
      // --referrer skips manifest-level dedup, so the layer lookups run.
      const { r } = await doConvert({ repository: `${prefix}/d`, overlaybdTag: 'fresh', referrer: true }, store);
      expect(r.manifests[0]!.layers[0]!.digest).toBe(firstLayers[0]);
      expect((await store.getLayerEntry(proxy.host, `${prefix}/d`, chains[0]!))?.dataDigest).toBe(firstLayers[0]);
    });
  });
}

dedupSuite('SQLite', () => sqlite, 'sq');

describe('MariaDB', () => {
  let db: TestMariadb | undefined;
  let store: DedupStore | undefined;
  beforeAll(async () => {
    db = await startMariadb();
    store = await openDedupStore({ dbType: 'mysql', dbStr: db.dsn('conversioncache') });
  });
  afterAll(async () => {
    await store?.close();
    await db?.stop();
  });
  dedupSuite('MariaDB', () => store!, 'my');
});

describe('faults', () => {
  const none = () => openDedupStore({ dbType: 'none' });
  const tagExists = async (repo: string, tag: string) => (await client().headManifest(`${reg.host}/${repo}:${tag}`)) !== undefined;
  const manifestPuts = () => proxy.log.filter((e) => e.method === 'PUT' && /\/manifests\//.test(e.path) && (e.status ?? 0) < 300).length;

  async function expectFailure(p: Promise<unknown>, code: string, ...fragments: RegExp[]): Promise<Error> {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    if (!isOverlaybdError(e)) throw new Error(`expected OverlaybdError ${code}, got ${String(e)}`);
    expect(e.code, e.message).toBe(code);
    for (const f of fragments) expect(e.message).toMatch(f);
    return e;
  }

  it('retries 500s, 429s, dropped connections and a cut download, and still converts', async () => {
    await push('f/retry', 'v1');
    proxy.reset();
    const blobGet = new RegExp(`/blobs/${amd64.layers[1]!.digest}$`);
    proxy.add({ method: 'GET', path: blobGet, times: 2, action: { kind: 'status', status: 500 } });
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${amd64.layers[0]!.digest}$`), action: { kind: 'cut', afterBytes: 100 } });
    proxy.add({ method: 'PUT', path: /\/manifests\//, action: { kind: 'status', status: 429, headers: { 'Retry-After': '0' } } });
    proxy.add({ method: 'POST', path: /\/blobs\/uploads\/$/, times: 2, action: { kind: 'drop' } });
    proxy.add({ method: 'PUT', path: /\/blobs\/uploads\//, action: { kind: 'status', status: 503 } });
    const { r, c } = await doConvert({ repository: 'f/retry' }, await none());
    expect(r.manifests[0]!.layers.map((l) => l.digest)).toEqual(firstLayers);
    expect(c.stats.retries).toBeGreaterThanOrEqual(5);
    expect(proxy.log.filter((e) => e.fault).length).toBe(7);
    await checkConverted('f/retry', 'v1_obd', amd64);
  });

  it('stops on a truncated source blob, naming the layer and digest, and pushes no manifest', async () => {
    await push('f/trunc', 'v1');
    proxy.reset();
    const d = amd64.layers[1]!.digest;
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${d}$`), times: 100, action: { kind: 'truncate', bytes: 50 } });
    await expectFailure(doConvert({ repository: 'f/trunc' }, await none()), 'DIGEST_MISMATCH', /download layer 1/, new RegExp(d));
    expect(manifestPuts()).toBe(0);
    expect(await tagExists('f/trunc', 'v1_obd')).toBe(false);
  });

  it('stops on a wrong source blob (another layer served under its digest)', async () => {
    await push('f/wrong', 'v1');
    proxy.reset();
    const d = amd64.layers[2]!.digest;
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${d}$`), times: 100, action: { kind: 'replace', body: arm64.layers[2]!.data } });
    await expectFailure(doConvert({ repository: 'f/wrong' }, await none()), 'DIGEST_MISMATCH', /layer 2/, new RegExp(d));
    expect(manifestPuts()).toBe(0);
  });

  /** Pushes amd64 with layer 1 replaced by `data` (its digest and size in the manifest; the config keeps the true diff_id). */
  async function pushWithLayer1(repo: string, data: Buffer): Promise<string> {
    const bad = blob(amd64.layers[1]!.mediaType, data);
    const layers = [amd64.layers[0]!, bad, amd64.layers[2]!];
    const manifest = blob(amd64.manifest.mediaType, JSON.stringify({ ...JSON.parse(amd64.manifest.data.toString()), layers: layers.map(desc) }));
    const lay = path.join(work, `layout-${repo.replace('/', '-')}`);
    writeOciLayout(lay, { v1: { ...amd64, layers, manifest } });
    await skopeoCopy(lay, 'v1', `${reg.host}/${repo}:v1`);
    return bad.digest;
  }
  const layer1Tar = () => zlib.gunzipSync(amd64.layers[1]!.data);
  const leftovers = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }) : []);

  it('stops on gzip data corrupt mid-stream (its digest right), names the layer, leaves no files', async () => {
    // Stored blocks: one flipped byte in the file data only breaks the gzip CRC, found as the stream ends.
    const gz = zlib.gzipSync(layer1Tar(), { level: 0 });
    gz[gz.length >> 1]! ^= 0xff;
    const d = await pushWithLayer1('f/gzbad', gz);
    proxy.reset();
    const dir = path.join(work, 'conv-gzbad');
    await expectFailure(doConvert({ repository: 'f/gzbad', workDir: dir }, await none()), 'GZIP_CORRUPT', /convert layer 1/, new RegExp(d));
    expect(manifestPuts()).toBe(0);
    expect(leftovers(dir)).toEqual([]);
  });

  it('stops on a gzip blob cut short (its digest right) with a clear error, no hang', async () => {
    const gz = zlib.gzipSync(layer1Tar());
    await pushWithLayer1('f/gzcut', gz.subarray(0, gz.length >> 1));
    proxy.reset();
    const dir = path.join(work, 'conv-gzcut');
    await expectFailure(doConvert({ repository: 'f/gzcut', workDir: dir }, await none()), 'GZIP_CORRUPT', /layer 1/, /truncated/);
    expect(manifestPuts()).toBe(0);
    expect(leftovers(dir)).toEqual([]);
  });

  it('stops when the config lists a diff_id the layer does not have', async () => {
    // A manifest whose config claims other diff_ids: the blob digest is right, the tar is not the one the config names.
    const cfg = JSON.parse(amd64.config.data.toString()) as { rootfs: { diff_ids: string[] } };
    cfg.rootfs.diff_ids[0] = arm64.diffIds[1]!;
    const config = blob(amd64.config.mediaType, JSON.stringify(cfg));
    const manifest = blob(amd64.manifest.mediaType, JSON.stringify({ ...JSON.parse(amd64.manifest.data.toString()), config: desc(config) }));
    const lay = path.join(work, 'layout-bad');
    writeOciLayout(lay, { v1: { ...amd64, config, manifest } });
    await skopeoCopy(lay, 'v1', `${reg.host}/f/diffid:v1`);
    proxy.reset();
    await expectFailure(doConvert({ repository: 'f/diffid' }, await none()), 'DIGEST_MISMATCH', /layer 0/, /diff_id/);
    expect(manifestPuts()).toBe(0);
  });

  it('refuses to push a manifest when the registry does not have one of its blobs', async () => {
    await push('f/lost', 'v1');
    proxy.reset();
    // The registry claims the layer exists, so it is never uploaded; a blob
    // this run uploaded (a 201) is trusted and not asked about again.
    proxy.add({ method: 'HEAD', path: new RegExp(`/f/lost/blobs/${firstLayers[1]}$`), times: 1, action: { kind: 'status', status: 200 } });
    await expectFailure(doConvert({ repository: 'f/lost' }, await none()), 'CONVERT_FAILED', /refusing to push manifest/, new RegExp(`${firstLayers[1]} is missing`));
    expect(manifestPuts()).toBe(0);
  });

  it('fails with a registry error when the registry dies mid-upload, and no manifest appears', async () => {
    const r2 = await startRegistry({ mode: 'plain' });
    const p2 = await startFaultProxy(r2.url);
    try {
      await skopeoCopy(layout, 'v1', `${r2.host}/f/kill:v1`);
      p2.add({ method: ['POST', 'PUT', 'PATCH'], path: /\/blobs\/uploads\//, times: 1, action: { kind: 'delay', ms: 400 } });
      const killer = (async () => {
        while (!p2.log.some((e) => /\/blobs\/uploads\//.test(e.path))) await new Promise((res) => setTimeout(res, 10));
        await r2.stop();
      })();
      const c = client();
      const e = await convert(
        { repository: `${p2.host}/f/kill`, inputTag: 'v1', overlaybdTag: 'v1_obd', vsizeGB: VSIZE, workDir: path.join(work, 'conv-kill') },
        { client: c, store: await none(), logger: silentLogger },
      ).then(
        () => undefined,
        (x: unknown) => x,
      );
      c.close();
      await killer;
      expect(isOverlaybdError(e)).toBe(true);
      expect((e as Error).message).toMatch(/upload layer \d|upload config/);
      expect((e as { code: string }).code).toMatch(/^REGISTRY_/);
      expect(p2.log.filter((x) => x.method === 'PUT' && /\/manifests\//.test(x.path) && (x.status ?? 0) < 300)).toHaveLength(0);
    } finally {
      await p2.close();
      await r2.stop();
    }
  });
});
