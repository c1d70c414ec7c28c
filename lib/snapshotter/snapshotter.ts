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
import { rwModeOf, type RwMode, type SnapshotterConfig } from './config.js';
import { BlockDevices, isMountPoint } from './block-device.js';
import { constructSpec, constructWritableSpec, readBsConfig, writeBsConfig } from './bs-config.js';
import { sealLayer } from '../layer.js';
import { LABELS, REMOTE_SNAPSHOT } from './labels.js';
import { diskUsage, Layout } from './layout.js';
import { MetaStore, type Info, type Kind, type Usage } from './metastore.js';
import { bind, normalMounts, type Mount } from './mounts.js';
import { applyRootfsQuota, clearProjectLimit, projectOfDir, rootfsQuotaOf } from './quota.js';
import { identifyStorageType, isBlock, type StorageType } from './storage-type.js';

export interface SnapshotterOptions {
  logger?: Logger;
}

export class Snapshotter {
  readonly layout: Layout;
  readonly store: MetaStore;
  readonly config: SnapshotterConfig;
  readonly log: Logger;
  readonly devices: BlockDevices;

  private constructor(config: SnapshotterConfig, layout: Layout, store: MetaStore, log: Logger) {
    this.config = config;
    this.layout = layout;
    this.store = store;
    this.log = log;
    this.devices = new BlockDevices(layout, config, log);
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

  async #create(kind: Kind, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const ref = labels[LABELS.targetSnapshotRef];
    // Upstream's isPrepareRootfs: a container's rootfs, not a layer being unpacked or an image view.
    const rootfs = ref === undefined && labels[LABELS.snapshotType] !== 'image';
    const turbo = labels[LABELS.turboOciTargetDigest] ?? labels[LABELS.fastOciTargetDigest];
    if (ref !== undefined && turbo !== undefined) {
      // Unpacked as a plain layer, its fs metadata files would become the container's rootfs.
      throw new OverlaybdError(
        'ENOTSUP',
        `layer ${ref} is a TurboOCI layer (target ${turbo}), which this snapshotter cannot run yet: ` +
          'convert the image to overlaybd (convertor --overlaybd) or pull the original OCI image',
      );
    }
    const out = await this.store.tx(async () => {
      const td = this.layout.makeTemp(kind === 'ACTIVE');
      let placed: string | undefined;
      let project: number | undefined;
      try {
        const s = this.store.createSnapshot(kind, key, parent, labels);
        if (s.parentIds.length) {
          const st = fs.statSync(this.layout.fs(s.parentIds[0]!));
          fs.chownSync(path.join(td, 'fs'), st.uid, st.gid);
        }
        const quota = rootfs ? rootfsQuotaOf(labels, this.config.rootfsQuota) : undefined;
        if (quota) {
          // As upstream: the upper always, work/ when overlayfs will use it (a parent).
          const dirs = [path.join(td, 'fs'), ...(s.parentIds.length && kind === 'ACTIVE' ? [path.join(td, 'work')] : [])];
          let bytes: number;
          ({ bytes, project } = await applyRootfsQuota(s.id, dirs, quota));
          this.log.info('snapshot.quota', { key, id: s.id, project, bytes, from: quota.from });
        }
        this.layout.commitTemp(td, s.id);
        placed = this.layout.dir(s.id);
        const imageRef = labels[LABELS.criImageRef] ?? labels[LABELS.imageRef];
        if (imageRef) fs.writeFileSync(path.join(placed, 'image_ref'), imageRef);
        this.log.debug('snapshot.created', { key, id: s.id, kind, parent });
        if (ref !== undefined && labels[LABELS.accelerationLayer] === 'yes') {
          // A trace (acceleration) layer: the parent's lowers plus this dir; containerd unpacks the trace into fs/.
          writeBsConfig(this.layout, s.id, constructSpec(this.layout, this.config, s.id, s.parentIds[0], 'localBlock', labels));
          return { mounts: [bind(this.layout.fs(s.id), false)] };
        }
        if (!rootfs) {
          const type = identifyStorageType(this.layout, s.id, labels);
          if (ref !== undefined && type === 'remoteBlock' && labels[LABELS.downloadRemoteBlob] === 'download') {
            // download-remote-blob: the config names the blob (the backstore prefers fs/overlaybd.commit once
            // containerd has unpacked it there), and containerd unpacks into a plain rw bind of fs/.
            writeBsConfig(this.layout, s.id, constructSpec(this.layout, this.config, s.id, s.parentIds[0], type, labels));
            return { mounts: [bind(this.layout.fs(s.id), false)] };
          }
          if (ref !== undefined && type === 'remoteBlock') {
            // containerd's remote-snapshot protocol: commit under the chainID and answer AlreadyExists.
            const committed = { ...labels, [LABELS.remote]: REMOTE_SNAPSHOT };
            this.store.commitActive(key, ref, { size: 0, inodes: 0 }, committed);
            writeBsConfig(this.layout, s.id, constructSpec(this.layout, this.config, s.id, s.parentIds[0], type, committed));
            this.log.info('snapshot.remote', { key, ref, id: s.id });
            return { exists: `target snapshot ${JSON.stringify(ref)}`, warm: s.id };
          }
          this.#dropWritableLabel(key, labels);
          return { mounts: this.#normalMounts(s.id, kind, s.parentIds) };
        }
        const { mounts, block } = await this.#rootfsMounts(s.id, kind, s.parentIds, labels, true);
        if (!block) this.#dropWritableLabel(key, labels);
        return { mounts };
      } catch (e) {
        fs.rmSync(placed ?? td, { recursive: true, force: true });
        if (project !== undefined) await clearProjectLimit(this.layout.root, project).catch(() => {});
        throw e;
      }
    });
    if (out.exists !== undefined) {
      // Committed: the layer's config is there for the device service to read ahead.
      this.devices.warmSoon(out.warm);
      throw new OverlaybdError('EEXIST', `${out.exists}: already exists`);
    }
    return out.mounts;
  }

  /**
   * The trace settings a rootfs gives its image's config: replay the
   * parent's acceleration layer, or record/replay the record-trace path
   * the rootfs asks for, or neither (a previous rootfs's settings go).
   */
  #traceSettings(parentId: string, labels: Record<string, string>): { accelerationLayer?: true; recordTracePath?: string } {
    const parentLabels = this.store.labelsById(parentId);
    if (parentLabels[LABELS.accelerationLayer] === 'yes') return { accelerationLayer: true, recordTracePath: undefined };
    const tracePath = labels[LABELS.recordTracePath];
    if (labels[LABELS.recordTrace] === 'yes' && tracePath) return { accelerationLayer: undefined, recordTracePath: tracePath };
    return { accelerationLayer: undefined, recordTracePath: undefined };
  }

  /** A normal (OCI) snapshot loses the overlaybd.writable label, as upstream does for buildkit. */
  #dropWritableLabel(key: string, labels: Record<string, string>): void {
    if (labels[LABELS.writable] === undefined) return;
    const next = { ...labels };
    delete next[LABELS.writable];
    this.store.updateInfo(key, next, ['labels']);
  }

  /** The type of a snapshot from its labels and files. */
  #typeOf(id: string): StorageType {
    return identifyStorageType(this.layout, id, this.store.labelsById(id));
  }

  #fsTypeOf(id: string): string {
    return this.store.labelsById(id)[LABELS.blobFsType] ?? this.config.defaultFsType;
  }

  /**
   * getWritableType: an OCI parent (no config.v1.json) always gives
   * overlayfs; else the overlaybd.writable label, else config rwMode.
   */
  #writeType(parentId: string | undefined, labels: Record<string, string>): RwMode {
    if (parentId !== undefined && readBsConfig(this.layout, parentId) === undefined) return 'overlayfs';
    return rwModeOf(labels[LABELS.writable] ?? this.config.rwMode);
  }

  /**
   * A container rootfs. overlayfs mode: an overlay whose lowest lower is
   * the device of the nearest overlaybd layer (#lowerDirs). dir/dev: a writable
   * overlaybd device of its own (created on Prepare).
   */
  async #rootfsMounts(id: string, kind: Kind, parentIds: string[], labels: Record<string, string>, create: boolean): Promise<{ mounts: Mount[]; block: boolean }> {
    const parentId = parentIds[0];
    const mode = this.#writeType(parentId, labels);
    if (mode !== 'overlayfs') {
      if (create) {
        const spec = await constructWritableSpec(this.layout, this.config, id, parentId, labels);
        if (parentId !== undefined) Object.assign(spec, this.#traceSettings(parentId, labels));
        writeBsConfig(this.layout, id, spec);
      }
      await this.devices.attachAndMount(id, mode, labels[LABELS.blobFsType] ?? this.config.defaultFsType);
      if (mode === 'dir') return { mounts: [bind(this.layout.mountpoint(id), false)], block: true };
      return { mounts: [{ type: 'ext4', source: this.devices.devicePath(id)!, options: [kind === 'VIEW' ? 'ro' : 'rw', 'discard'] }], block: true };
    }
    const under = this.#blockUnder(parentIds);
    // The parent is the image itself: its config takes the trace settings before its device is attached below.
    const onBlock = under !== undefined && under.above.length === 0;
    if (onBlock && create) {
      const spec = readBsConfig(this.layout, under.id);
      if (spec) writeBsConfig(this.layout, under.id, { ...spec, ...this.#traceSettings(under.id, labels) });
    }
    const lowers = await this.#lowerDirs(parentIds, under);
    return { mounts: normalMounts(kind, this.layout.fs(id), this.layout.work(id), lowers), block: onBlock };
  }

  /**
   * The lower dirs of an overlayfs rootfs, nearest first: its parents' fs/
   * dirs down to the first overlaybd layer, then that layer's mounted device
   * (attached if needed), which holds it and every layer below (their fs/
   * dirs are empty). On an image that is the device alone; on a commit of
   * an overlayfs upper, the commit over the device, where upstream lists
   * the empty fs/ dirs and loses the image (docs/decisions.md).
   */
  async #lowerDirs(parentIds: string[], under: { id: string; above: string[] } | undefined): Promise<string[]> {
    if (under === undefined) return parentIds.map((p) => this.layout.fs(p));
    await this.devices.attachAndMount(under.id, 'overlayfs', this.#fsTypeOf(under.id));
    return [...under.above.map((p) => this.layout.fs(p)), this.layout.mountpoint(under.id)];
  }

  /** The first overlaybd layer of a parent chain (nearest first) and the plain layers above it. */
  #blockUnder(parentIds: string[]): { id: string; above: string[] } | undefined {
    const i = parentIds.findIndex((p) => isBlock(this.#typeOf(p)));
    return i < 0 ? undefined : { id: parentIds[i]!, above: parentIds.slice(0, i) };
  }

  /**
   * Whether a chain's rootfs is mounted over `blockId`'s device: `blockId`
   * is its first overlaybd layer (#blockUnder). Only the layers above it
   * are typed, so a Remove does not read the type of every live chain.
   */
  #mountsOver(parentIds: string[], blockId: string): boolean {
    const i = parentIds.indexOf(blockId);
    return i >= 0 && !parentIds.slice(0, i).some((p) => isBlock(this.#typeOf(p)));
  }

  #normalMounts(id: string, kind: Kind, parentIds: string[]): Mount[] {
    return normalMounts(kind, this.layout.fs(id), this.layout.work(id), parentIds.map((p) => this.layout.fs(p)));
  }

  mounts(key: string): Promise<Mount[]> {
    return this.store.tx(async () => {
      const s = this.store.getSnapshot(key);
      const { labels } = this.store.getInfo(key).info;
      if (labels[LABELS.targetSnapshotRef] !== undefined) return this.#normalMounts(s.id, s.kind, s.parentIds);
      // Re-attaches the device when needed (after a reboot or a detach).
      return (await this.#rootfsMounts(s.id, s.kind, s.parentIds, labels, false)).mounts;
    });
  }

  commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    return this.store.tx(async () => {
      const s = this.store.getSnapshot(key);
      if (s.kind !== 'ACTIVE') throw new OverlaybdError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} is not active`);
      const active = this.store.getInfo(key).info.labels;
      const committed = { ...labels };
      if (active[LABELS.writable] !== undefined && active[LABELS.accelerationLayer] !== 'yes' && readBsConfig(this.layout, s.id)) {
        await this.#sealWritable(s.id, active);
      }
      const usage = diskUsage(this.layout.fs(s.id));
      this.store.commitActive(key, name, usage, committed);
      const type = identifyStorageType(this.layout, s.id, committed);
      if (type === 'localBlock') {
        writeBsConfig(this.layout, s.id, constructSpec(this.layout, this.config, s.id, s.parentIds[0], type, committed));
        const sealed = path.join(this.layout.fs(s.id), 'overlaybd.sealed');
        const next = { ...committed };
        delete next[LABELS.writable];
        if (fs.existsSync(sealed)) next[LABELS.localCommitPath] = sealed;
        this.store.updateInfo(name, next, ['labels']);
      }
      this.log.debug('snapshot.committed', { key, name, id: s.id, type });
    });
  }

  /** Commit of a writable layer: detach, seal its data in place, move it to fs/overlaybd.sealed. */
  async #sealWritable(id: string, labels: Record<string, string>): Promise<void> {
    await this.devices.unmountAndDetach(id, true);
    const rwDir = labels[LABELS.overlayActivePath] ?? this.layout.block(id);
    const data = path.join(rwDir, 'writable_data');
    const index = path.join(rwDir, 'writable_index');
    await sealLayer(data, this.config.writableLayerType === 'sparse' ? undefined : index);
    fs.renameSync(data, path.join(this.layout.fs(id), 'overlaybd.sealed'));
    fs.rmSync(index, { force: true });
    this.log.info('snapshot.sealed', { id });
  }

  async remove(key: string): Promise<void> {
    await this.store.tx(async () => {
      const before = this.store.getInfo(key);
      const type = this.#typeOf(before.id);
      // First in the transaction: a snapshot with children stays, device and all.
      const { id } = this.store.remove(key);
      if (type !== 'normal' && fs.existsSync(path.join(this.layout.block(id), 'backstore_mark'))) await this.devices.unmountAndDetach(id);
      // autoRemoveDev: the image's device goes with the last container
      // mounted over it, directly or through commits of overlayfs uppers.
      const under = this.config.autoRemoveDev && before.info.kind === 'ACTIVE' ? this.#blockUnder(before.parentIds) : undefined;
      if (under && this.devices.devicePath(under.id) !== undefined && !this.store.liveChains().some((s) => this.#mountsOver(s.parentIds, under.id))) {
        await this.devices.unmountAndDetach(under.id);
      }
      if (isMountPoint(this.layout.mountpoint(id))) throw new OverlaybdError('FAILED_PRECONDITION', `snapshot ${key}: ${this.layout.mountpoint(id)} is still mounted`);
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
      const type = identifyStorageType(this.layout, id, info.labels);
      const block = isBlock(type);
      if (info.kind !== 'ACTIVE' && !block) return usage;
      const u = diskUsage(this.layout.fs(id));
      if (!block) return u;
      const b = diskUsage(this.layout.block(id), this.layout.mountpoint(id));
      return { size: u.size + b.size, inodes: u.inodes + b.inodes };
    });
  }

  /** Removes every dir under snapshots/ that is not a live id, and the quota limit a rootfs had. */
  cleanup(): Promise<void> {
    return this.store.tx(async () => {
      for (const dir of this.layout.orphans(new Set(this.store.idMap().keys()))) {
        // Never recurse into a mounted filesystem; a later Cleanup retries.
        if (isMountPoint(path.join(dir, 'block', 'mountpoint'))) {
          this.log.warn('snapshot.orphan_mounted', { dir });
          continue;
        }
        const project = await projectOfDir(path.join(dir, 'fs'));
        this.log.info('snapshot.orphan_removed', { dir });
        fs.rmSync(dir, { recursive: true, force: true });
        if (project !== undefined) {
          await clearProjectLimit(this.layout.root, project).catch((e: unknown) =>
            this.log.warn('snapshot.quota_not_cleared', { dir, project, error: (e as Error).message }),
          );
        }
      }
    });
  }
}
