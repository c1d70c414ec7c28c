/**
 * Pushes a single-platform image whose manifest and config are in
 * containerd's content store to a registry. A lazily pulled image lacks its
 * layer blobs locally, so each layer is taken, in this order, from: the
 * target repository (HEAD), a cross-repository mount from the source
 * repository on the same registry, or the content store. A layer none of
 * them has fails with an error naming it.
 */
import { Readable } from 'node:stream';
import { OverlaybdError } from '../errors.js';
import type { Descriptor } from '../convertor/spec.js';
import { formatReference, parseReference, type RegistryClient } from '../registry/index.js';
import type { ContainerdConnection } from './connection.js';
import { contentInfo, readContent, readContentBytes } from './content-store.js';

export interface PushImageOptions {
  registry: RegistryClient;
  /** Where to push: `host/repo:tag`. */
  ref: string;
  manifest: { mediaType: string; digest: string; size: number };
  config: Descriptor;
  layers: Descriptor[];
  /** The source image's reference: its repository is tried for cross-repository mounts. */
  mountFrom?: string;
  signal?: AbortSignal;
  say?: (line: string) => void;
}

export async function pushImage(conn: ContainerdConnection, o: PushImageOptions): Promise<void> {
  const say = o.say ?? (() => {});
  const dst = parseReference(o.ref);
  const src = o.mountFrom !== undefined ? parseReference(o.mountFrom) : undefined;
  const from = src && src.registry === dst.registry && src.repository !== dst.repository ? [src.repository] : [];
  const sig = o.signal ? { signal: o.signal } : {};
  for (const [i, d] of [o.config, ...o.layers].entries()) {
    const what = i === 0 ? 'config' : `layer ${i - 1}`;
    const local = await contentInfo(conn, d.digest);
    const source = local ? { open: (offset: number) => openContent(conn, d.digest, offset), size: d.size } : undefined;
    const r = await o.registry.pushBlob(dst, { digest: d.digest, size: d.size }, source, { mountFrom: from, ...sig });
    if (r.status === 'not-mounted') {
      throw new OverlaybdError(
        'ENOENT',
        `push ${formatReference(dst)}: ${what} ${d.digest} is neither in the target repository, nor mountable from ${from[0] ?? '(no source repository on this registry)'}, nor in containerd's content store`,
      );
    }
    say(`${what} ${d.digest}: ${r.status}${r.from ? ` from ${r.from}` : ''}`);
  }
  const bytes = await readContentBytes(conn, o.manifest);
  await o.registry.pushManifest(dst, bytes, o.manifest.mediaType, dst.tag ?? dst.digest, sig);
  say(`manifest ${o.manifest.digest}: pushed as ${formatReference(dst)}`);
}

/** The blob from `offset` on (a retried upload restarts where the registry stopped). */
function openContent(conn: ContainerdConnection, digest: string, offset: number): Readable {
  const it = (async function* () {
    let skip = offset;
    for await (const c of readContent(conn, digest)) {
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      yield skip > 0 ? c.subarray(skip) : c;
      skip = 0;
    }
  })();
  return Readable.from(it, { objectMode: false });
}
