/**
 * Resolves a reference in the registry to what a pull writes into
 * containerd: the top descriptor (index or manifest), the chain of indexes
 * down to the platform's manifest, the manifest and its config, all
 * checked against their digests and parsed with zod.
 */
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { formatReference, isIndexMediaType, isManifestMediaType, parseReference, type Reference, type RegistryClient } from '../registry/index.js';
import { formatPlatform, platformMatches, type Platform } from './platform.js';

const DescriptorSchema = z.object({
  mediaType: z.string().default('application/octet-stream'),
  digest: z.string().regex(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'want <algorithm>:<hex>'),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).nullish(),
  platform: z.object({ os: z.string().optional(), architecture: z.string().optional(), variant: z.string().optional() }).nullish(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

const IndexSchema = z.object({ manifests: z.array(DescriptorSchema) });
const ManifestSchema = z.object({ config: DescriptorSchema, layers: z.array(DescriptorSchema).nullable().default([]) });
const ConfigSchema = z.object({
  os: z.string().optional(),
  architecture: z.string().optional(),
  rootfs: z.object({ diff_ids: z.array(z.string()).nullable().default([]) }),
});

/** One document fetched: its descriptor and bytes. */
export interface Fetched {
  desc: Descriptor;
  bytes: Buffer;
}

export interface ResolvedImage {
  ref: Reference;
  /** The image name containerd records: the normalised reference. */
  name: string;
  /** What the tag or digest names (an index or a manifest). */
  top: Fetched;
  /** Indexes from the top down to the manifest (empty for a single-platform image). */
  indexes: { doc: Fetched; children: Descriptor[] }[];
  manifest: Fetched;
  config: Fetched;
  layers: Descriptor[];
  diffIds: string[];
}

function parseJson<S extends z.ZodType>(schema: S, bytes: Buffer, what: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `${what}: not JSON: ${(e as Error).message}`);
  }
  return parseWith(schema, raw, what);
}

/** The entry of `index` for `platform`: the first match, else the first entry without a platform. */
function pickManifest(index: Descriptor[], platform: Platform, what: string): Descriptor {
  const hit = index.find((d) => platformMatches(platform, d.platform as Partial<Platform> | undefined)) ?? index.find((d) => !d.platform);
  if (!hit) {
    const have = index.map((d) => formatPlatform(d.platform as Partial<Platform> | undefined)).join(', ');
    throw new OverlaybdError('REGISTRY_NOT_FOUND', `${what}: no manifest for platform ${formatPlatform(platform)} (index has ${have || 'nothing'})`);
  }
  return hit;
}

export async function resolveImage(client: RegistryClient, reference: string, platform: Platform, opts: { signal?: AbortSignal } = {}): Promise<ResolvedImage> {
  const ref = parseReference(reference);
  const name = formatReference(ref);
  const sig = opts.signal ? { signal: opts.signal } : {};
  const got = await client.getManifest(ref, sig);
  const top: Fetched = { desc: { mediaType: got.descriptor.mediaType, digest: got.descriptor.digest, size: got.descriptor.size }, bytes: got.bytes };
  const indexes: ResolvedImage['indexes'] = [];
  let cur = top;
  // Nested indexes are allowed, a few levels deep.
  for (let depth = 0; isIndexMediaType(cur.desc.mediaType); depth++) {
    if (depth >= 4) throw new OverlaybdError('CONFIG_INVALID', `${name}: indexes nested more than 4 deep`);
    const idx = parseJson(IndexSchema, cur.bytes, `index ${cur.desc.digest} of ${name}`);
    indexes.push({ doc: cur, children: idx.manifests });
    const pick = pickManifest(idx.manifests, platform, `index ${cur.desc.digest} of ${name}`);
    const m = await client.getManifest({ ...ref, digest: pick.digest }, sig);
    cur = { desc: { ...pick, mediaType: m.descriptor.mediaType, size: m.bytes.length }, bytes: m.bytes };
  }
  if (!isManifestMediaType(cur.desc.mediaType)) {
    throw new OverlaybdError('CONFIG_INVALID', `${name}: ${cur.desc.digest} has media type ${cur.desc.mediaType}, not an image manifest or index`);
  }
  const manifest = parseJson(ManifestSchema, cur.bytes, `manifest ${cur.desc.digest} of ${name}`);
  const layers = manifest.layers ?? [];
  const configBytes = await client.fetchBlobBytes(ref, manifest.config, sig);
  const config = parseJson(ConfigSchema, configBytes, `config ${manifest.config.digest} of ${name}`);
  const diffIds = config.rootfs.diff_ids ?? [];
  if (diffIds.length !== layers.length) {
    throw new OverlaybdError('CONFIG_INVALID', `${name}: manifest has ${layers.length} layers but config ${manifest.config.digest} has ${diffIds.length} rootfs.diff_ids`);
  }
  return { ref, name, top, indexes, manifest: cur, config: { desc: manifest.config, bytes: configBytes }, layers, diffIds };
}
