/** `--db-type none`: no dedup. Lookups find nothing; writes are dropped. */
import type { DedupStore, LayerEntry, ManifestEntry } from './types.js';

export class NoDedupStore implements DedupStore {
  readonly kind = 'none' as const;
  readonly location = 'none';
  getLayerEntry(): Promise<LayerEntry | undefined> {
    return Promise.resolve(undefined);
  }
  getLayerEntriesByHost(): Promise<LayerEntry[]> {
    return Promise.resolve([]);
  }
  createLayerEntry(): Promise<boolean> {
    return Promise.resolve(false);
  }
  deleteLayerEntry(): Promise<void> {
    return Promise.resolve();
  }
  getManifestEntry(): Promise<ManifestEntry | undefined> {
    return Promise.resolve(undefined);
  }
  getManifestEntriesByHost(): Promise<ManifestEntry[]> {
    return Promise.resolve([]);
  }
  createManifestEntry(): Promise<boolean> {
    return Promise.resolve(false);
  }
  deleteManifestEntry(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
