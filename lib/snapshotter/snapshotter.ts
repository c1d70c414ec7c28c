/**
 * The overlaybd snapshotter's state machine (accelerated-container-image.md
 * §1.4): containerd's Snapshotter calls over the metadata store and the
 * directory layout. Every call runs in one store transaction, committed
 * before it returns. Plain OCI layers are overlayfs lowerdirs; overlaybd
 * layers go through the block storage (block.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { SnapshotterConfig } from './config.js';
import { diskUsage, Layout } from './layout.js';
import { MetaStore, type Info, type Kind, type Usage } from './metastore.js';
import { normalMounts, type Mount } from './mounts.js';

export interface SnapshotterOptions {
  logger?: Logger;
}

export class Snapshotter {
  readonly layout: Layout;
  readonly store: MetaStore;
  readonly config: SnapshotterConfig;
  readonly log: Logger;

  private constructor(config: SnapshotterConfig, layout: Layout, store: MetaStore, log: Logger) {
    this.config = config;
    this.layout = layout;
    this.store = store;
    this.log = log;
  }

  /** Opens (creating) root and its metadata.db and removes orphan dirs a crash left. */
  static async open(config: SnapshotterConfig, opts: SnapshotterOptions = {}): Promise<Snapshotter> {
    const layout = new Layout(config.root);
    layout.ensure();
    const root = fs.realpathSync(config.root);
    const real = new Layout(root);
    const store = MetaStore.open(path.join(root, 'metadata.db'));
    const s = new Snapshotter({ ...config, root }, real, store, opts.logger ?? silentLogger);
    await s.cleanup();
    return s;
  }

  close(): void {
    this.store.close();
  }

  prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.#create('ACTIVE', key, parent, labels);
  }

  view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.#create('VIEW', key, parent, labels);
  }

  #create(kind: Kind, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.store.tx(() => {
      const td = this.layout.makeTemp(kind === 'ACTIVE');
      let placed: string | undefined;
      try {
        const s = this.store.createSnapshot(kind, key, parent, labels);
        if (s.parentIds.length) {
          const st = fs.statSync(this.layout.fs(s.parentIds[0]!));
          fs.chownSync(path.join(td, 'fs'), st.uid, st.gid);
        }
        this.layout.commitTemp(td, s.id);
        placed = this.layout.dir(s.id);
        const imageRef = labels['containerd.io/snapshot/cri.image-ref'] ?? labels['containerd.io/snapshot/image-ref'];
        if (imageRef) fs.writeFileSync(path.join(placed, 'image_ref'), imageRef);
        this.log.debug('snapshot.created', { key, id: s.id, kind, parent });
        return this.#mounts(s.id, kind, s.parentIds);
      } catch (e) {
        fs.rmSync(placed ?? td, { recursive: true, force: true });
        throw e;
      }
    });
  }

  #mounts(id: string, kind: Kind, parentIds: string[]): Mount[] {
    return normalMounts(kind, this.layout.fs(id), this.layout.work(id), parentIds.map((p) => this.layout.fs(p)));
  }

  mounts(key: string): Promise<Mount[]> {
    return this.store.tx(() => {
      const s = this.store.getSnapshot(key);
      return this.#mounts(s.id, s.kind, s.parentIds);
    });
  }

  commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    return this.store.tx(() => {
      const s = this.store.getSnapshot(key);
      if (s.kind !== 'ACTIVE') throw new OverlaybdError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} is not active`);
      const usage = diskUsage(this.layout.fs(s.id));
      this.store.commitActive(key, name, usage, labels);
      this.log.debug('snapshot.committed', { key, name, id: s.id });
    });
  }

  async remove(key: string): Promise<void> {
    await this.store.tx(() => {
      const { id } = this.store.remove(key);
      this.log.debug('snapshot.removed', { key, id });
    });
    if (!this.config.asyncRemove) await this.cleanup();
  }

  stat(key: string): Promise<Info> {
    return this.store.tx(() => this.store.getInfo(key).info);
  }

  update(info: { name: string; labels: Record<string, string> }, fieldpaths: string[]): Promise<Info> {
    return this.store.tx(() => this.store.updateInfo(info.name, info.labels, fieldpaths));
  }

  list(filters: string[]): Promise<Info[]> {
    return this.store.tx(() => this.store.walkInfo(filters));
  }

  usage(key: string): Promise<Usage> {
    return this.store.tx(() => {
      const { id, info, usage } = this.store.getInfo(key);
      if (info.kind === 'ACTIVE') return diskUsage(this.layout.fs(id));
      return usage;
    });
  }

  /** Removes every dir under snapshots/ that is not a live id. */
  cleanup(): Promise<void> {
    return this.store.tx(() => {
      for (const dir of this.layout.orphans(new Set(this.store.idMap().keys()))) {
        this.log.info('snapshot.orphan_removed', { dir });
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}
