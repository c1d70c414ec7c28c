/**
 * `rpull`: a pull THROUGH containerd's own services, as containerd's Go
 * client Pull with unpack does, for snapshotters that take layers remotely
 * (overlaybd): the registry client resolves the image, its index, manifest
 * and config go into containerd's content store with containerd's GC labels,
 * the layers are unpacked through the snapshots service (a layer blob is
 * fetched only when the snapshotter wants it), and the image record is
 * written last. Everything is written under a lease, dropped at the end.
 */
import type { Readable } from 'node:stream';
import { OverlaybdError } from '../errors.js';
import type { RegistryClient } from '../registry/index.js';
import * as grpc from '@grpc/grpc-js';
import { ContainerdConnection, ContainerdError, type ConnectionOptions } from './connection.js';
import { contentInfo, updateContentLabels, writeContent } from './content-store.js';
import { putImage } from './image-store.js';
import { chainIds, childGcLabels, distributionSourceLabel, Labels } from './labels.js';
import { dropLease, takeLease } from './leases.js';
import { hostPlatform, type Platform } from './platform.js';
import { resolveImage, type Descriptor, type ResolvedImage } from './resolve.js';
import { Snapshots } from './snapshots.js';
import { unpackLayers, type UnpackResult } from './unpack.js';

export const DEFAULT_SNAPSHOTTER = 'overlaybd';

export interface PullOptions extends ConnectionOptions {
  /** Image reference (`host/repo:tag`, `host/repo@sha256:...`; Docker Hub names are normalised). */
  ref: string;
  registry: RegistryClient;
  snapshotter?: string;
  /** Ask overlaybd's snapshotter to download the blobs (`download-remote-blob=download`). */
  downloadBlobs?: boolean;
  /** Labels of the image record (ctr's --label). */
  imageLabels?: Record<string, string>;
  platform?: Platform;
  /** One line per step (fetched, unpacked, ...). */
  progress?: (line: string) => void;
}

export interface PullResult {
  name: string;
  target: { mediaType: string; digest: string; size: number };
  image: 'created' | 'updated';
  snapshotter: string;
  unpack: UnpackResult;
  /** Blobs written into the content store (index/manifest/config/layers), by digest. */
  written: string[];
}

/** remotes.MakeRefKey: the ingest ref of a blob by its kind. */
function refKey(kind: 'index' | 'manifest' | 'config' | 'layer', digest: string): string {
  return `${kind}-${digest}`;
}

function descOf(d: Descriptor): { mediaType: string; digest: string; size: number } {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

function humanSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * A blob written into content (unless present) with its GC references and
 * distribution source as labels: set at commit when this call writes it,
 * else merged into the labels it has (another repository's source stays).
 */
async function storeBlob(
  conn: ContainerdConnection,
  img: ResolvedImage,
  kind: 'index' | 'manifest' | 'config' | 'layer',
  desc: { digest: string; size: number },
  source: Buffer | (() => Promise<Readable>),
  gcLabels: Record<string, string>,
  say: (line: string) => void,
  written: string[],
): Promise<void> {
  const labelsOver = (labels: Record<string, string>) => {
    const [key, repos] = distributionSourceLabel(img.ref.registry, img.ref.repository, labels);
    return { ...gcLabels, [key]: repos };
  };
  // A layer is looked up first: fetching it from the registry is what a present blob saves.
  const had = kind === 'layer' ? await contentInfo(conn, desc.digest) : undefined;
  if (!had) {
    const r = await writeContent(conn, refKey(kind, desc.digest), desc, source, labelsOver({}));
    const how = kind === 'layer' ? 'fetched into content' : 'written to content';
    say(`${kind} ${desc.digest}: ${r === 'written' ? `${how} (${humanSize(desc.size)})` : 'in content store already'}`);
    if (r === 'written') {
      written.push(desc.digest);
      return;
    }
  } else {
    say(`${kind} ${desc.digest}: in content store already`);
  }
  const labels = had?.labels ?? (await contentInfo(conn, desc.digest))?.labels ?? {};
  await updateContentLabels(conn, desc.digest, labelsOver(labels));
}

export async function rpull(o: PullOptions): Promise<PullResult> {
  const snapshotter = o.snapshotter ?? DEFAULT_SNAPSHOTTER;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(snapshotter)) throw new OverlaybdError('CONFIG_INVALID', `snapshotter name "${snapshotter}": want letters, digits, . _ -`);
  const say = o.progress ?? (() => {});
  const sig = o.signal ? { signal: o.signal } : {};
  const t0 = Date.now();

  const img = await resolveImage(o.registry, o.ref, o.platform ?? hostPlatform(), sig);
  if (img.layers.length === 0) throw new OverlaybdError('CONFIG_INVALID', `${img.name}: the manifest has no layers to unpack`);
  say(`resolved ${img.name} -> ${img.top.desc.digest} (${img.top.desc.mediaType})`);

  const conn = new ContainerdConnection(o);
  try {
    // Before writing anything: is containerd there, is the snapshotter loaded, is the image unpacked already?
    const topId = chainIds(img.diffIds).at(-1)!;
    const chainTop = await new Snapshots(conn, snapshotter).stat(topId).catch((e: unknown) => {
      throw snapshotterError(e, snapshotter);
    });
    if (chainTop) say(`snapshotter ${snapshotter} holds the image's top layer already`);

    o.signal?.throwIfAborted();
    const lease = await takeLease(conn);
    const written: string[] = [];
    try {
      // The documents at once: nothing collects them under the lease, whatever the order.
      const m = img.manifest;
      await Promise.all([
        ...img.indexes.map(({ doc, children }) => storeBlob(conn, img, 'index', doc.desc, doc.bytes, childGcLabels(children.map(descOf)), say, written)),
        storeBlob(conn, img, 'manifest', m.desc, m.bytes, childGcLabels([img.config.desc, ...img.layers].map(descOf)), say, written),
        storeBlob(conn, img, 'config', img.config.desc, img.config.bytes, {}, say, written),
      ]);

      const extraLabels: Record<string, string> = { [Labels.imageRef]: img.name };
      if (o.downloadBlobs) extraLabels[Labels.downloadRemoteBlob] = 'download';
      const unpack = await unpackLayers(conn, {
        snapshotter,
        layers: img.layers.map((l) => ({ ...descOf(l), ...(l.annotations ? { annotations: l.annotations } : {}) })),
        diffIds: img.diffIds,
        // The top's Stat above said NotFound: for a one-layer image, one round trip fewer.
        ...(chainTop ? {} : { knownAbsent: new Set([topId]) }),
        extraLabels,
        progress: say,
        fetchLayer: (layer) => {
          o.signal?.throwIfAborted();
          return storeBlob(conn, img, 'layer', layer, () => o.registry.fetchBlob(img.ref, layer, sig), {}, say, written);
        },
      }).catch((e: unknown) => {
        throw snapshotterError(e, snapshotter);
      });

      // The unpacker's GC references: config -> top snapshot, layer blob -> its diffID.
      await Promise.all([
        updateContentLabels(conn, img.config.desc.digest, { [`${Labels.gcRefSnapshot}${snapshotter}`]: unpack.top }),
        ...img.layers.map(async (l, i) => {
          if (await contentInfo(conn, l.digest)) await updateContentLabels(conn, l.digest, { [Labels.uncompressed]: img.diffIds[i]! });
        }),
      ]);

      const target = descOf(img.top.desc);
      const image = await putImage(conn, { name: img.name, target, ...(o.imageLabels ? { labels: o.imageLabels } : {}) });
      say(`image ${img.name} ${image}: ${target.digest}, unpacked in ${snapshotter} as ${unpack.top} (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
      return { name: img.name, target, image, snapshotter, unpack, written };
    } finally {
      await dropLease(conn, lease).catch((e: unknown) => say(`warning: ${(e as Error).message}`));
    }
  } finally {
    conn.close();
  }
}

/** An unknown snapshotter is InvalidArgument `snapshotter not loaded: NAME`; say which and where to look. */
function snapshotterError(e: unknown, snapshotter: string): unknown {
  if (e instanceof ContainerdError && e.grpcCode === grpc.status.INVALID_ARGUMENT && /snapshotter not loaded/.test(e.message)) {
    return new ContainerdError(e.call, e.grpcCode, `${e.message} (snapshotter "${snapshotter}" is not loaded in containerd: see ctr plugins ls)`, { cause: e });
  }
  return e;
}
