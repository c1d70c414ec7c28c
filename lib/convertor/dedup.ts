/**
 * Dedup decisions, in upstream's order: a row for this repository is
 * trusted only if the registry still has the blob (HEAD); otherwise rows of
 * other repositories on the same host are tried through cross-repository
 * mounts. Stale rows are deleted. Dedup is an optimisation: a store or
 * registry failure here is logged and the layer is converted instead.
 */
import type { Logger } from '../log.js';
import { isOverlaybdError } from '../errors.js';
import { isManifestMediaType, type Descriptor as RegistryDescriptor, type RegistryClient } from '../registry/index.js';
import type { DedupStore } from './db/index.js';
import { ManifestSchema, parseDocument } from './spec.js';

export interface Target {
  registry: string;
  repository: string;
}

export interface ReusedLayer {
  digest: string;
  size: number;
  how: 'exists' | 'mounted';
  from?: string;
}

export interface DedupContext {
  client: RegistryClient;
  store: DedupStore;
  target: Target;
  logger: Logger;
  /** Read-only: find, but neither mount nor write rows (--no-upload). */
  readOnly: boolean;
}

function soft(ctx: DedupContext, what: string, e: unknown): undefined {
  ctx.logger.warn('dedup.error', { what, code: isOverlaybdError(e) ? e.code : undefined, error: (e as Error).message });
  return undefined;
}

/** A converted layer for this chain ID that the target repository has, or can mount. */
export async function findConvertedLayer(ctx: DedupContext, chainId: string): Promise<ReusedLayer | undefined> {
  const { store, client, target } = ctx;
  try {
    const row = await store.getLayerEntry(target.registry, target.repository, chainId);
    if (row) {
      const size = await client.statBlob(target, row.dataDigest);
      if (size !== undefined && (size < 0 || size === row.dataSize)) {
        return { digest: row.dataDigest, size: row.dataSize, how: 'exists' };
      }
      ctx.logger.info('dedup.stale', { chainId, digest: row.dataDigest, repo: target.repository });
      if (!ctx.readOnly) await store.deleteLayerEntry(target.registry, target.repository, chainId);
    }
    if (ctx.readOnly) return undefined;
    for (const other of await store.getLayerEntriesByHost(target.registry, chainId)) {
      if (other.repo === target.repository) continue;
      const r = await client.mountBlob(target, other.dataDigest, other.repo);
      if (r !== 'mounted') continue;
      const size = await client.statBlob(target, other.dataDigest);
      if (size !== undefined && size >= 0 && size !== other.dataSize) continue;
      await store
        .createLayerEntry({ host: target.registry, repo: target.repository, chainId, dataDigest: other.dataDigest, dataSize: other.dataSize })
        .catch((e: unknown) => soft(ctx, `record mounted layer ${chainId}`, e));
      return { digest: other.dataDigest, size: other.dataSize, how: 'mounted', from: other.repo };
    }
    return undefined;
  } catch (e) {
    return soft(ctx, `look up converted layer ${chainId}`, e);
  }
}

export interface ReusedManifest {
  descriptor: RegistryDescriptor;
  bytes: Buffer;
  how: 'exists' | 'mounted';
  from?: string;
  /** Already pushed under the tag asked for: nothing left to push. */
  tagged?: boolean;
}

/**
 * Every blob a manifest names is in the target repository with its size.
 * `confirmed` names blobs this run has just seen committed there (a 201 to
 * an upload or a mount), which are not asked about again.
 */
export async function manifestBlobsPresent(
  client: RegistryClient,
  target: Target,
  bytes: Buffer,
  what: string,
  confirmed: ReadonlySet<string> = new Set(),
): Promise<string | undefined> {
  const m = parseDocument(ManifestSchema, bytes, what);
  for (const d of [m.config, ...(m.layers ?? [])]) {
    if (confirmed.has(d.digest)) continue;
    const size = await client.statBlob(target, d.digest);
    if (size === undefined) return `blob ${d.digest} is missing`;
    if (size >= 0 && size !== d.size) return `blob ${d.digest} has ${size} bytes, the manifest says ${d.size}`;
  }
  return undefined;
}

/**
 * A converted manifest of `srcDigest` with this media type: in the target
 * repository, or copied from another repository of the host (its blobs
 * mounted, then the manifest pushed once, by `tag` if given, else by digest).
 */
export async function findConvertedManifest(
  ctx: DedupContext,
  srcDigest: string,
  mediaType: string,
  tag?: string,
): Promise<ReusedManifest | undefined> {
  const { store, client, target } = ctx;
  try {
    const row = await store.getManifestEntry(target.registry, target.repository, mediaType, srcDigest);
    if (row) {
      const got = await fetchIfPresent(client, target, row.outDigest);
      const problem = got && (await manifestBlobsPresent(client, target, got.bytes, `manifest ${row.outDigest}`));
      if (got && !problem && isManifestMediaType(got.descriptor.mediaType)) {
        return { descriptor: { ...got.descriptor, mediaType }, bytes: got.bytes, how: 'exists' };
      }
      ctx.logger.info('dedup.stale', { srcDigest, digest: row.outDigest, repo: target.repository, problem: problem ?? 'manifest missing' });
      await store.deleteManifestEntry(target.registry, target.repository, mediaType, srcDigest);
    }
    for (const other of await store.getManifestEntriesByHost(target.registry, mediaType, srcDigest)) {
      if (other.repo === target.repository) continue;
      const from = { registry: target.registry, repository: other.repo };
      const got = await fetchIfPresent(client, from, other.outDigest);
      if (!got) {
        await store.deleteManifestEntry(target.registry, other.repo, mediaType, srcDigest);
        continue;
      }
      const m = parseDocument(ManifestSchema, got.bytes, `manifest ${other.outDigest} in ${other.repo}`);
      let all = true;
      for (const d of [m.config, ...(m.layers ?? [])]) {
        if ((await client.mountBlob(target, d.digest, other.repo)) !== 'mounted') {
          all = false;
          break;
        }
      }
      // Every blob was just mounted (a 201): no need to HEAD them again.
      if (!all) continue;
      const descriptor = await client.pushManifest(target, got.bytes, mediaType, tag ?? other.outDigest);
      await store
        .createManifestEntry({ host: target.registry, repo: target.repository, srcDigest, outDigest: other.outDigest, dataSize: got.bytes.length, mediaType })
        .catch((e: unknown) => soft(ctx, `record mounted manifest ${srcDigest}`, e));
      return { descriptor, bytes: got.bytes, how: 'mounted', from: other.repo, ...(tag !== undefined ? { tagged: true } : {}) };
    }
    return undefined;
  } catch (e) {
    return soft(ctx, `look up converted manifest ${srcDigest}`, e);
  }
}

async function fetchIfPresent(
  client: RegistryClient,
  repo: Target,
  digest: string,
): Promise<{ descriptor: RegistryDescriptor; bytes: Buffer } | undefined> {
  try {
    return await client.getManifest({ ...repo, digest });
  } catch (e) {
    if (isOverlaybdError(e, 'REGISTRY_NOT_FOUND')) return undefined;
    throw e;
  }
}
