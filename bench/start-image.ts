/**
 * The larger image of the start bench: bookworm plus one layer holding a
 * file of random bytes that `cat /etc/debian_version` never reads, as an
 * OCI image (gzip layers) and as its overlaybd conversion by our convertor.
 * The random layer depends only on its size (an AES-CTR keystream of a fixed
 * key) and is cached under /var/cache/overlaybd-test; the layout and the
 * conversion are cached next to the day's bookworm tarball, as
 * test/helpers/remote-image.ts caches bookworm's conversion.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { convert, openDedupStore } from '../lib/convertor/index.js';
import { silentLogger } from '../lib/log.js';
import { ustarHeader } from '../lib/ustar.js';
import type { RepoLocator } from '../lib/registry/index.js';
import { bookwormLayout } from '../test/helpers/bookworm.js';
import type { TestRegistry } from '../test/helpers/registry.js';
import { registryClient } from '../test/helpers/remote-image.js';

const CACHE = '/var/cache/overlaybd-test';
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** Where the file lands in the image (one path, read by nothing the bench runs). */
const BULK_PATH = 'opt/bulk/random.bin';

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BulkyImage {
  /** MB of the random file. */
  bulkMB: number;
  /** OCI image layout (tag `bulky`). */
  layout: string;
  tag: string;
  ociManifest: Buffer;
  ociLayers: Desc[];
  /** The overlaybd conversion: its manifest bytes and a dir of blobs by hex digest. */
  obdManifest: Buffer;
  obdBlobs: string;
  obdLayers: Desc[];
}

const hex = (digest: string) => digest.replace(/^sha256:/, '');
const tarHeader = (name: string, size: number, mode: number, typeflag: '0' | '5') => ustarHeader({ name, size, mode, typeflag });

/** The layer's tar: the dirs, then `bytes` of AES-256-CTR keystream (incompressible, the same every time). */
async function* bulkTar(bytes: number): AsyncGenerator<Buffer> {
  yield tarHeader('opt/', 0, 0o755, '5');
  yield tarHeader('opt/bulk/', 0, 0o755, '5');
  yield tarHeader(BULK_PATH, bytes, 0o644, '0');
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(1 << 20);
  for (let left = bytes; left > 0; left -= zeros.length) yield cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
  yield Buffer.alloc((512 - (bytes % 512)) % 512 + 1024);
}

/** The gzip layer blob and its diffID, built once per size. */
async function bulkLayer(mb: number): Promise<{ file: string; desc: Desc; diffId: string }> {
  const dir = path.join(CACHE, `start-bulk-layer-${mb}m-v1`);
  const meta = path.join(dir, 'layer.json');
  if (!fs.existsSync(meta)) {
    const tmp = `${dir}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    const diff = createHash('sha256');
    const blob = createHash('sha256');
    let size = 0;
    const hashTar = async function* (src: AsyncIterable<Buffer>) {
      for await (const c of src) {
        diff.update(c);
        yield c;
      }
    };
    const hashGz = async function* (src: AsyncIterable<Buffer>) {
      for await (const c of src) {
        blob.update(c);
        size += c.length;
        yield c;
      }
    };
    await pipeline(Readable.from(bulkTar(mb << 20)), hashTar, zlib.createGzip({ level: 1 }), hashGz, fs.createWriteStream(path.join(tmp, 'layer.tar.gz')));
    fs.writeFileSync(path.join(tmp, 'layer.json'), JSON.stringify({ digest: `sha256:${blob.digest('hex')}`, size, diffId: `sha256:${diff.digest('hex')}` }));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  const m = JSON.parse(fs.readFileSync(meta, 'utf8')) as { digest: string; size: number; diffId: string };
  return { file: path.join(dir, 'layer.tar.gz'), desc: { mediaType: GZ, digest: m.digest, size: m.size }, diffId: m.diffId };
}

function jsonBlob(mediaType: string, doc: unknown): { desc: Desc; data: Buffer } {
  const data = Buffer.from(JSON.stringify(doc));
  return { desc: { mediaType, digest: 'sha256:' + createHash('sha256').update(data).digest('hex'), size: data.length }, data };
}

/** bookworm's layout plus the bulk layer on top: an OCI layout tagged `bulky` (blobs hard-linked, not copied). */
async function bulkyLayout(mb: number): Promise<{ layout: string; tag: string; manifest: Buffer; layers: Desc[] }> {
  const bw = await bookwormLayout();
  const tag = 'bulky';
  const layout = `${bw.tar}.bulky-${mb}m.oci`;
  const bulk = await bulkLayer(mb);
  const base = bw.image.layers[0]!;
  const layers: Desc[] = [{ mediaType: base.mediaType, digest: base.digest, size: base.size }, bulk.desc];
  const done = () => {
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Desc[] };
    return { layout, tag, manifest: fs.readFileSync(path.join(layout, 'blobs', 'sha256', hex(index.manifests[0]!.digest))), layers };
  };
  if (fs.existsSync(path.join(layout, 'index.json'))) return done();
  const baseConfig = JSON.parse(bw.image.config.data.toString('utf8')) as { rootfs: { diff_ids: string[] }; history: unknown[] };
  const config = jsonBlob('application/vnd.oci.image.config.v1+json', {
    ...baseConfig,
    rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, bulk.diffId] },
    history: [...baseConfig.history, { created: '2025-05-20T00:00:00Z', created_by: `${mb} MB of random bytes in /${BULK_PATH}` }],
  });
  const manifest = jsonBlob('application/vnd.oci.image.manifest.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: config.desc,
    layers,
  });
  const tmp = `${layout}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const blobs = path.join(tmp, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  fs.linkSync(path.join(bw.layout, 'blobs', 'sha256', hex(base.digest)), path.join(blobs, hex(base.digest)));
  fs.linkSync(bulk.file, path.join(blobs, hex(bulk.desc.digest)));
  fs.writeFileSync(path.join(blobs, hex(config.desc.digest)), config.data);
  fs.writeFileSync(path.join(blobs, hex(manifest.desc.digest)), manifest.data);
  fs.writeFileSync(path.join(tmp, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(tmp, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...manifest.desc, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  fs.rmSync(layout, { recursive: true, force: true });
  fs.renameSync(tmp, layout);
  return done();
}

/**
 * The bulky image as OCI layout and overlaybd conversion (lz4 ZFile, 2 GiB
 * device), converting through `reg` the first time (minutes).
 */
export async function bulkyImage(reg: TestRegistry, mb = 500): Promise<BulkyImage> {
  const oci = await bulkyLayout(mb);
  const conv = `${oci.layout.replace(/\.oci$/, '')}.obd`;
  const manifestFile = path.join(conv, 'manifest.json');
  if (!fs.existsSync(manifestFile)) {
    const tmp = `${conv}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(path.join(tmp, 'blobs'), { recursive: true });
    const client = registryClient(reg);
    try {
      const repo = `bulky-src-${process.pid}`;
      await pushImage(reg, path.join(oci.layout, 'blobs', 'sha256'), oci.manifest, repo, oci.tag);
      const store = await openDedupStore({ dbType: 'none' });
      try {
        await convert(
          { repository: `${reg.host}/${repo}`, inputTag: oci.tag, overlaybdTag: 'obd', vsizeGB: 2, workDir: path.join(tmp, 'conv'), zfile: { algorithm: 'lz4', blockSize: 4096 } },
          { client, store, logger: silentLogger },
        );
      } finally {
        await store.close();
      }
      fs.rmSync(path.join(tmp, 'conv'), { recursive: true, force: true });
      const loc: RepoLocator = { registry: reg.host, repository: repo };
      const { bytes } = await client.getManifest(`${reg.host}/${repo}:obd`);
      const m = JSON.parse(bytes.toString('utf8')) as { config: Desc; layers: Desc[] };
      for (const d of [m.config, ...m.layers]) await client.fetchBlobToFile(loc, d, path.join(tmp, 'blobs', hex(d.digest)));
      fs.writeFileSync(path.join(tmp, 'manifest.json'), bytes);
      fs.rmSync(conv, { recursive: true, force: true });
      fs.renameSync(tmp, conv);
    } finally {
      await client.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const obdManifest = fs.readFileSync(manifestFile);
  const m = JSON.parse(obdManifest.toString('utf8')) as { layers: Desc[] };
  return {
    bulkMB: mb,
    layout: oci.layout,
    tag: oci.tag,
    ociManifest: oci.manifest,
    ociLayers: oci.layers,
    obdManifest,
    obdBlobs: path.join(conv, 'blobs'),
    obdLayers: m.layers,
  };
}

/**
 * Pushes a manifest and its blobs (files named by hex digest in `blobs`) as
 * `repo:tag`; returns the reference. Our client, not skopeo: no time limit
 * on a 500 MB layer.
 */
export async function pushImage(reg: TestRegistry, blobs: string, manifest: Buffer, repo: string, tag: string): Promise<string> {
  const client = registryClient(reg);
  try {
    const loc: RepoLocator = { registry: reg.host, repository: repo };
    const m = JSON.parse(manifest.toString('utf8')) as { mediaType: string; config: Desc; layers: Desc[] };
    for (const d of [m.config, ...m.layers]) await client.pushBlob(loc, d, { file: path.join(blobs, hex(d.digest)) });
    await client.pushManifest(loc, manifest, m.mediaType, tag);
    return `${reg.host}/${repo}:${tag}`;
  } finally {
    await client.close();
  }
}
