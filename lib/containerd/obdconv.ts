/**
 * `obdconv`: upstream's embedded convertor (`ctr obdconv SRC DST`). The
 * source image is read from containerd's content store (index -> this
 * host's manifest -> config and layers), each layer is converted with the
 * standalone convertor's user-space engine (libext2fs apply, commit as
 * tar(ZFile(LSMT))), and the layers, config and manifest are written back
 * into the content store under a lease, with containerd's GC labels; then
 * image DST names the new manifest. No snapshotter, block device or mount
 * is involved (docs/decisions.md).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { applyWithExt4 } from '../convertor/apply.js';
import { chainIds, uuidFromChainId } from '../convertor/chain.js';
import { buildLayer, saveSourceLayer } from '../convertor/layer-engine.js';
import { ANNOTATION_BLOB_DIGEST, ANNOTATION_BLOB_SIZE, ANNOTATION_VERSION, OVERLAYBD_VERSION } from '../convertor/media.js';
import { ImageConfigSchema, IndexSchema, ManifestSchema, parseDocument, type Descriptor, type Manifest } from '../convertor/spec.js';
import { isIndexMediaType, isManifestMediaType, MediaTypes, sha256Digest, sha256File } from '../registry/index.js';
import { ContainerdConnection, isGrpcStatus, type ConnectionOptions } from './connection.js';
import { contentInfo, readContent, readContentBytes, updateContentLabels, writeContent } from './content-store.js';
import { getImage, putImage } from './image-store.js';
import { childGcLabels } from './labels.js';
import { dropLease, takeLease } from './leases.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from './platform.js';
import { obdconvConfig, obdconvManifest } from './obdconv-docs.js';

export const ANNOTATION_BLOB_FS_TYPE = 'containerd.io/snapshot/overlaybd/blob-fs-type';

export const ObdconvOptionsSchema = z.object({
  src: z.string().min(1, 'the source image name is empty'),
  dst: z.string().min(1, 'the destination image name is empty'),
  /** `fstype[;mountopts[;mkfsopts]]`, written as the layers' blob-fs-type annotation. */
  fsType: z
    .string()
    .default('ext4')
    .refine((s) => s.split(';')[0] === 'ext4', 'only ext4 is built here (the user-space engine is libext2fs)')
    .refine((s) => (s.split(';')[2] ?? '').trim() === '', 'mkfs options are not supported (the user-space mkfs takes none)'),
  /** Virtual device size of the bottom layer in GiB. */
  vsizeGB: z.number().int().positive().max(64 * 1024).default(64),
  /** Remote dedup mode (MySQL DSN): not implemented. */
  dbstr: z.string().optional(),
  /** Dead upstream since May 2023 (the zfile-config label has no reader): accepted, ignored. */
  algorithm: z.string().optional(),
  bs: z.number().int().nonnegative().optional(),
});
export type ObdconvOptionsInput = z.input<typeof ObdconvOptionsSchema>;

export interface ObdconvOptions extends ConnectionOptions, ObdconvOptionsInput {
  platform?: Platform;
  /** Where the per-layer work directories go (default: the OS temp dir). */
  tmpDir?: string;
  progress?: (line: string) => void;
}

export interface ObdconvLayer {
  source: string;
  digest: string;
  size: number;
}

export interface ObdconvResult {
  name: string;
  target: { mediaType: string; digest: string; size: number };
  image: 'created' | 'updated';
  config: { mediaType: string; digest: string; size: number };
  layers: ObdconvLayer[];
}

/** Upstream's lease: one hour. */
const LEASE_TTL_MS = 3600_000;
const ZFILE = { algorithm: 'lz4', blockSize: 4096 } as const;

/** remotes.MakeRefKey for what obdconv writes. */
const refKey = (kind: 'manifest' | 'config' | 'layer', digest: string) => `${kind}-${digest}`;

/** Follows indexes down to the manifest of `platform`; returns it and its parsed body. */
export async function sourceManifest(conn: ContainerdConnection, src: string, top: Descriptor, platform: Platform): Promise<{ desc: Descriptor; manifest: Manifest }> {
  let cur = top;
  for (let depth = 0; ; depth++) {
    const mt = cur.mediaType ?? '';
    const bytes = await readBlob(conn, src, cur, isIndexMediaType(mt) ? 'index' : 'manifest');
    if (isManifestMediaType(mt)) return { desc: cur, manifest: parseDocument(ManifestSchema, bytes, `manifest ${cur.digest} of ${src}`) };
    if (!isIndexMediaType(mt)) throw new OverlaybdError('CONVERT_FAILED', `${src}: ${cur.digest} has media type ${mt || '(none)'}, not an image manifest or index`);
    if (depth >= 4) throw new OverlaybdError('CONVERT_FAILED', `${src}: indexes nested more than 4 deep`);
    const idx = parseDocument(IndexSchema, bytes, `index ${cur.digest} of ${src}`);
    const list = idx.manifests ?? [];
    const hit = list.find((d) => platformMatches(platform, d.platform as Partial<Platform> | undefined)) ?? list.find((d) => !d.platform);
    if (!hit) {
      const have = list.map((d) => formatPlatform(d.platform as Partial<Platform> | undefined)).join(', ');
      throw new OverlaybdError('ENOENT', `${src}: index ${cur.digest} has no manifest for platform ${formatPlatform(platform)} (it has ${have || 'nothing'})`);
    }
    cur = hit;
  }
}

/** A missing blob named as such, with what to do about it. */
function missingBlob(src: string, what: string, digest: string, namespace: string): OverlaybdError {
  return new OverlaybdError('ENOENT', `${src}: ${what} ${digest} is not in containerd's content store (namespace ${namespace}); pull the image fully first`);
}

export async function readBlob(conn: ContainerdConnection, src: string, d: Descriptor, what: string): Promise<Buffer> {
  try {
    const bytes = await readContentBytes(conn, { digest: d.digest, size: d.size });
    if (sha256Digest(bytes) !== d.digest) throw new OverlaybdError('DIGEST_MISMATCH', `${src}: ${what} ${d.digest} hashes to ${sha256Digest(bytes)}`);
    return bytes;
  } catch (e) {
    if (isGrpcStatus(e, grpc.status.NOT_FOUND)) throw missingBlob(src, what, d.digest, conn.namespace);
    throw e;
  }
}

export async function obdconv(o: ObdconvOptions): Promise<ObdconvResult> {
  const opts = parseWith(ObdconvOptionsSchema, o, 'obdconv options');
  if (opts.dbstr !== undefined) {
    throw new OverlaybdError('ENOTSUP', '--dbstr: remote mode (push and layer dedup through a MySQL database) is not implemented by overlaybd obdconv; convert locally and push with ctr images push');
  }
  const say = o.progress ?? (() => {});
  const t0 = Date.now();
  const conn = new ContainerdConnection(o);
  let work: string | undefined;
  try {
    const img = await getImage(conn, opts.src);
    if (!img) throw new OverlaybdError('ENOENT', `image ${opts.src} not found in containerd (namespace ${conn.namespace})`);
    const platform = o.platform ?? hostPlatform();
    const { desc: srcDesc, manifest } = await sourceManifest(conn, opts.src, img.target, platform);
    const layers = manifest.layers ?? [];
    if (layers.length === 0) throw new OverlaybdError('CONVERT_FAILED', `${opts.src}: manifest ${srcDesc.digest} has no layers`);
    const config = parseDocument(ImageConfigSchema, await readBlob(conn, opts.src, manifest.config, 'config'), `config ${manifest.config.digest} of ${opts.src}`);
    const diffIds = config.rootfs.diff_ids ?? [];
    if (diffIds.length !== layers.length) {
      throw new OverlaybdError('CONVERT_FAILED', `${opts.src}: manifest ${srcDesc.digest} has ${layers.length} layers but config ${manifest.config.digest} has ${diffIds.length} diff_ids`);
    }
    // Every layer blob present before any work (a lazily pulled image lacks them).
    for (const [i, l] of layers.entries()) {
      if (!(await contentInfo(conn, l.digest))) throw missingBlob(opts.src, `layer ${i}`, l.digest, conn.namespace);
    }
    say(`source ${opts.src}: manifest ${srcDesc.digest}, ${layers.length} layers`);

    const chains = chainIds(diffIds);
    work = await fs.promises.mkdtemp(path.join(o.tmpDir ?? os.tmpdir(), 'obdconv-'));
    const lease = await takeLease(conn, LEASE_TTL_MS);
    try {
      const out: ObdconvLayer[] = [];
      const lowers: string[] = [];
      for (const [i, l] of layers.entries()) {
        o.signal?.throwIfAborted();
        const what = `layer ${i} (${l.digest}) of ${opts.src}`;
        const dir = path.join(work, String(i).padStart(4, '0'));
        await fs.promises.mkdir(dir);
        const src = Readable.from(readContent(conn, l.digest), { objectMode: false });
        const tar = await saveSourceLayer(src, l, diffIds[i]!, dir, { what, ...(o.signal ? { signal: o.signal } : {}) });
        const file = await buildLayer({
          dir,
          lowers: [...lowers],
          input: tar.file,
          bottom: i === 0,
          vsizeGB: opts.vsizeGB,
          sparse: true,
          uuid: uuidFromChainId(chains[i]!),
          ...(i > 0 ? { parentUuid: uuidFromChainId(chains[i - 1]!) } : {}),
          zfile: ZFILE,
          apply: applyWithExt4,
          keep: false,
        });
        lowers.push(file);
        const blob = await sha256File(file);
        const r = await writeContent(conn, refKey('layer', blob.digest), blob, () => Promise.resolve(fs.createReadStream(file)));
        out.push({ source: l.digest, ...blob });
        say(`layer ${i + 1}/${layers.length} ${l.digest}: converted to ${blob.digest} (${blob.size} bytes, ${r === 'written' ? 'written to content' : 'in content store already'})`);
      }

      const configBytes = obdconvConfig(config, out.map((l) => l.digest), `config ${manifest.config.digest}`);
      const configDesc = { mediaType: manifest.config.mediaType ?? MediaTypes.dockerConfig, digest: sha256Digest(configBytes), size: configBytes.length };
      await writeContent(conn, refKey('config', configDesc.digest), configDesc, configBytes);

      const layerDescs: Descriptor[] = out.map((l) => ({
        mediaType: MediaTypes.ociLayer,
        digest: l.digest,
        size: l.size,
        annotations: {
          [ANNOTATION_VERSION]: OVERLAYBD_VERSION,
          [ANNOTATION_BLOB_DIGEST]: l.digest,
          [ANNOTATION_BLOB_SIZE]: String(l.size),
          [ANNOTATION_BLOB_FS_TYPE]: opts.fsType,
        },
      }));
      const manifestBytes = obdconvManifest(manifest, configDesc, layerDescs);
      const target = { mediaType: MediaTypes.dockerManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
      await writeContent(conn, refKey('manifest', target.digest), target, manifestBytes);
      await updateContentLabels(conn, target.digest, childGcLabels([configDesc, ...layerDescs.map((d) => ({ mediaType: d.mediaType!, digest: d.digest }))]));

      const image = await putImage(conn, { name: opts.dst, target });
      say(`image ${opts.dst} ${image}: ${target.digest} (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
      return { name: opts.dst, target, image, config: configDesc, layers: out };
    } finally {
      await dropLease(conn, lease).catch((e: unknown) => say(`warning: ${(e as Error).message}`));
    }
  } finally {
    conn.close();
    if (work) await fs.promises.rm(work, { recursive: true, force: true });
  }
}
