/**
 * A converted overlaybd bookworm image in a running docker-registry, for the
 * remote (lazy) image tests and the bench. The bookworm minbase image
 * (helpers/bookworm.ts) is converted once by our convertor (lz4 or zstd
 * ZFile layers, or plain LSMT ones decompressed from them) and the result
 * (manifest, config, layer blobs) is cached in os.tmpdir() next to the
 * bookworm tarball; each call pushes the cached blobs to a registry and
 * downloads the layers to local files for comparisons.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convert, openDedupStore } from '../../lib/convertor/index.js';
import { ImageConfigSchema, type ImageConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { RegistryClient, type RepoLocator } from '../../lib/registry/index.js';
import { decompress } from '../../lib/zfile.js';
import { bookwormLayout } from './bookworm.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './registry.js';

export type RemoteCompression = 'lz4' | 'zstd' | 'none';

export interface RemoteBookwormOptions {
  /** Layer blobs: lz4 (default) or zstd ZFile in the tar wrapper, or plain LSMT (`none`). */
  compression?: RemoteCompression;
  /** Virtual size of the converted device (default 2 GiB; upstream's images have 64). */
  vsizeGB?: number;
  /** Push to this registry (any mode; not stopped by close), else a new plain one. */
  registry?: TestRegistry;
  /** Repository (default `bookworm/<compression>`). */
  repo?: string;
  /** Convert again instead of using the cached conversion. */
  fresh?: boolean;
}

export interface RemoteLayer {
  digest: string;
  size: number;
}

export interface RemoteBookworm {
  registry: TestRegistry;
  /** `http://127.0.0.1:<port>` (https in TLS mode). */
  registryUrl: string;
  repo: string;
  /** `<registryUrl>/v2/<repo>/blobs`: config.v1.json's repoBlobUrl. */
  repoBlobUrl: string;
  /** The image's layers, bottom first. */
  lowers: RemoteLayer[];
  /** The layer blobs downloaded from the registry, bottom first. */
  localLayers: string[];
  /** The manifest's tag in `repo`. */
  tag: string;
  /**
   * Writes `<dir>/config.v1.json` with remote lowers (digest, size, and an
   * empty `dir/lower<i>` each, where a background download may land), plus
   * `extra` top-level fields; returns its path.
   */
  writeConfig(dir: string, extra?: Partial<ImageConfig> & Record<string, unknown>): string;
  close(): Promise<void>;
}

interface Manifest {
  mediaType: string;
  config: RemoteLayer & { mediaType: string };
  layers: (RemoteLayer & { mediaType: string; annotations?: Record<string, string> })[];
}

/** A cached conversion: `manifest.json` as pushed, and `blobs/<hex>`. */
interface CachedImage {
  dir: string;
  manifestBytes: Buffer;
  manifest: Manifest;
}

const TAG = 'obd';
const BLOB_DIGEST = 'containerd.io/snapshot/overlaybd/blob-digest';
const BLOB_SIZE = 'containerd.io/snapshot/overlaybd/blob-size';

/** A client that can push to and pull from a test registry of any mode. */
export function registryClient(reg: TestRegistry): RegistryClient {
  const user = Object.entries(reg.users)[0];
  return new RegistryClient({
    transport:
      reg.mode === 'tls'
        ? { caFiles: [reg.caFile!], ...(reg.clientCert ? { clientCerts: [reg.clientCert] } : {}) }
        : { plainHttp: true },
    credentials: { dockerConfig: false, ...(user && (reg.mode === 'basic' || reg.mode === 'token') ? { userPass: `${user[0]}:${user[1]}` } : {}) },
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  return 'sha256:' + h.digest('hex');
}

const blobPath = (dir: string, digest: string) => path.join(dir, 'blobs', digest.replace(/^sha256:/, ''));

function readCache(dir: string): CachedImage | undefined {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) return undefined;
  const manifestBytes = fs.readFileSync(file);
  return { dir, manifestBytes, manifest: JSON.parse(manifestBytes.toString('utf8')) as Manifest };
}

/** Converts bookworm on a private registry and stores the result in `dir` (built beside it, renamed into place). */
async function convertToCache(dir: string, compression: RemoteCompression, vsizeGB: number): Promise<CachedImage> {
  const bw = await bookwormLayout();
  const tmp = `${dir}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(tmp, 'blobs'), { recursive: true });
  const reg = await startRegistry({ mode: 'plain' });
  const client = registryClient(reg);
  try {
    await skopeoCopy(bw.layout, bw.tag, `${reg.host}/src:${bw.tag}`);
    const store = await openDedupStore({ dbType: 'none' });
    await convert(
      {
        repository: `${reg.host}/src`,
        inputTag: bw.tag,
        overlaybdTag: TAG,
        vsizeGB,
        workDir: path.join(tmp, 'conv'),
        zfile: { algorithm: compression === 'zstd' ? 'zstd' : 'lz4', blockSize: 4096 },
      },
      { client, store, logger: silentLogger },
    );
    await store.close();
    fs.rmSync(path.join(tmp, 'conv'), { recursive: true, force: true });
    const loc: RepoLocator = { registry: reg.host, repository: 'src' };
    const { bytes } = await client.getManifest(`${reg.host}/src:${TAG}`);
    const manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    for (const d of [manifest.config, ...manifest.layers]) await client.fetchBlobToFile(loc, d, blobPath(tmp, d.digest));
    let manifestBytes = bytes;
    if (compression === 'none') {
      // Plain LSMT layers: the same data without the ZFile (and its tar wrapper).
      for (const l of manifest.layers) {
        const zipped = blobPath(tmp, l.digest);
        const plain = path.join(tmp, 'plain');
        await decompress(zipped, plain);
        fs.rmSync(zipped);
        l.digest = await sha256File(plain);
        l.size = fs.statSync(plain).size;
        if (l.annotations?.[BLOB_DIGEST]) l.annotations[BLOB_DIGEST] = l.digest;
        if (l.annotations?.[BLOB_SIZE]) l.annotations[BLOB_SIZE] = String(l.size);
        fs.renameSync(plain, blobPath(tmp, l.digest));
      }
      manifestBytes = Buffer.from(JSON.stringify(manifest));
    }
    fs.writeFileSync(path.join(tmp, 'manifest.json'), manifestBytes);
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another process cached it first: use theirs.
      if (!readCache(dir)) throw e;
    }
    return readCache(dir)!;
  } finally {
    await client.close();
    await reg.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The converted bookworm's layer blobs as local files (the cached conversion; no registry). */
export async function localBookworm(compression: RemoteCompression = 'lz4', vsizeGB = 2): Promise<{ tar: string; layers: string[] }> {
  const bw = await bookwormLayout();
  const cacheDir = `${bw.tar}.remote-${compression}-${vsizeGB}g`;
  const cached = readCache(cacheDir) ?? (await convertToCache(cacheDir, compression, vsizeGB));
  return { tar: bw.tar, layers: cached.manifest.layers.map((l) => blobPath(cached.dir, l.digest)) };
}

export async function remoteBookworm(opts: RemoteBookwormOptions = {}): Promise<RemoteBookworm> {
  const compression = opts.compression ?? 'lz4';
  const vsizeGB = opts.vsizeGB ?? 2;
  const bw = await bookwormLayout();
  const cacheDir = `${bw.tar}.remote-${compression}-${vsizeGB}g`;
  if (opts.fresh) fs.rmSync(cacheDir, { recursive: true, force: true });
  const cached = readCache(cacheDir) ?? (await convertToCache(cacheDir, compression, vsizeGB));

  const reg = opts.registry ?? (await startRegistry({ mode: 'plain' }));
  const repo = opts.repo ?? `bookworm/${compression}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-remote-bookworm-'));
  const client = registryClient(reg);
  const cleanup = async () => {
    await client.close();
    if (!opts.registry) await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  };
  try {
    const loc: RepoLocator = { registry: reg.host, repository: repo };
    const m = cached.manifest;
    for (const d of [m.config, ...m.layers]) await client.pushBlob(loc, d, { file: blobPath(cached.dir, d.digest) });
    await client.pushManifest(loc, cached.manifestBytes, m.mediaType, TAG);
    const lowers = m.layers.map((l) => ({ digest: l.digest, size: l.size }));
    const localLayers: string[] = [];
    for (const [i, l] of lowers.entries()) {
      const f = path.join(work, `layer${i}.blob`);
      await client.fetchBlobToFile(loc, l, f);
      localLayers.push(f);
    }
    const repoBlobUrl = `${reg.url}/v2/${repo}/blobs`;
    return {
      registry: reg,
      registryUrl: reg.url,
      repo,
      repoBlobUrl,
      lowers,
      localLayers,
      tag: TAG,
      writeConfig(dir, extra = {}) {
        const config = {
          repoBlobUrl,
          lowers: lowers.map((l, i) => {
            const d = path.join(dir, `lower${i}`);
            fs.mkdirSync(d, { recursive: true });
            return { digest: l.digest, size: l.size, dir: d };
          }),
          ...extra,
        };
        ImageConfigSchema.parse(config);
        const file = path.join(dir, 'config.v1.json');
        fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
        return file;
      },
      close: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export interface TestGlobalConfig {
  /** The overlaybd.json written. */
  file: string;
  cacheDir: string;
  /** The audit log it names. */
  audit: string;
}

/**
 * Writes an overlaybd.json in `dir` (created) with its own file cache and
 * audit log, as a user would configure the image service; `extra` fields
 * go over them, `cacheDir` shares another config's cache.
 */
export function writeGlobalConfig(dir: string, extra: Record<string, unknown> = {}, cacheDir = path.join(dir, 'cache')): TestGlobalConfig {
  fs.mkdirSync(dir, { recursive: true });
  const audit = path.join(dir, 'audit.log');
  const file = path.join(dir, 'overlaybd.json');
  const cacheConfig = { cacheType: 'file', cacheDir, cacheSizeGB: 4 };
  // The service's log file beside it, not the default /var/log/overlaybd.log.
  const logConfig = { logPath: path.join(dir, 'overlaybd.log') };
  fs.writeFileSync(file, JSON.stringify({ cacheConfig, logConfig, enableAudit: true, auditPath: audit, ...extra }));
  return { file, cacheDir, audit };
}
