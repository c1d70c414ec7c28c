/**
 * The convertor's dedup store: which overlaybd layer a source layer stack
 * (chain ID) became, and which overlaybd manifest a source manifest became,
 * per registry host and repository. Column names and meaning follow
 * upstream's `overlaybd_layers` / `overlaybd_manifests`, so a MySQL store can
 * be shared with upstream's convertor.
 */
import { z } from 'zod';

const digest = z.string().regex(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/, 'must be <algorithm>:<hex>');
const name = z.string().min(1).max(255);

export const LayerEntrySchema = z.object({
  /** Registry host as parsed from `-r` (with `:port` if any). */
  host: name,
  /** Repository path in that registry. */
  repo: name,
  /** Chain ID of the source layer stack up to this layer (`sha256:...`). */
  chainId: digest,
  /** Digest of the overlaybd layer blob. */
  dataDigest: digest,
  /** Size of the overlaybd layer blob. */
  dataSize: z.number().int().nonnegative(),
});
export type LayerEntry = z.infer<typeof LayerEntrySchema>;

export const ManifestEntrySchema = z.object({
  host: name,
  repo: name,
  /** Digest of the source (platform) manifest. */
  srcDigest: digest,
  /** Digest of the converted manifest. */
  outDigest: digest,
  /** Size of the converted manifest. */
  dataSize: z.number().int().nonnegative(),
  /** Media type of the converted manifest (OCI or Docker). */
  mediaType: name,
});
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

export type StoreKind = 'sqlite' | 'mysql' | 'none';

export interface DedupStore {
  readonly kind: StoreKind;
  /** A human description without secrets: the file path or `mysql host:port/db`. */
  readonly location: string;

  getLayerEntry(host: string, repo: string, chainId: string): Promise<LayerEntry | undefined>;
  /** Rows for this chain ID in every repository of `host` (for cross-repository mounts), ordered by repo. */
  getLayerEntriesByHost(host: string, chainId: string): Promise<LayerEntry[]>;
  /** Inserts a row; returns false (and changes nothing) when one exists for (host, repo, chainId). */
  createLayerEntry(entry: LayerEntry): Promise<boolean>;
  deleteLayerEntry(host: string, repo: string, chainId: string): Promise<void>;

  getManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<ManifestEntry | undefined>;
  /** Rows for this source manifest and output media type in every repository of `host`, ordered by repo. */
  getManifestEntriesByHost(host: string, mediaType: string, srcDigest: string): Promise<ManifestEntry[]>;
  /** Inserts a row; returns false (and changes nothing) when one exists for (host, repo, srcDigest, mediaType). */
  createManifestEntry(entry: ManifestEntry): Promise<boolean>;
  deleteManifestEntry(host: string, repo: string, mediaType: string, srcDigest: string): Promise<void>;

  close(): Promise<void>;
}
