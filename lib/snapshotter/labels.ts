/**
 * Snapshot label keys the overlaybd snapshotter reads and writes
 * (accelerated-container-image.md §1.3), with upstream's names.
 */
export const LABELS = {
  /** Set by containerd's unpacker (value: chainID): a layer Prepare, not a rootfs. */
  targetSnapshotRef: 'containerd.io/snapshot.ref',
  imageRef: 'containerd.io/snapshot/image-ref',
  criImageRef: 'containerd.io/snapshot/cri.image-ref',
  blobDigest: 'containerd.io/snapshot/overlaybd/blob-digest',
  blobSize: 'containerd.io/snapshot/overlaybd/blob-size',
  blobFsType: 'containerd.io/snapshot/overlaybd/blob-fs-type',
  version: 'containerd.io/snapshot/overlaybd/version',
  accelerationLayer: 'containerd.io/snapshot/overlaybd/acceleration-layer',
  recordTrace: 'containerd.io/snapshot/overlaybd/record-trace',
  recordTracePath: 'containerd.io/snapshot/overlaybd/record-trace-path',
  vsize: 'containerd.io/snapshot/overlaybd/vsize',
  turboOciTargetDigest: 'containerd.io/snapshot/overlaybd/turbo-oci/target-digest',
  turboOciTargetMediaType: 'containerd.io/snapshot/overlaybd/turbo-oci/target-media-type',
  /** Older convertors' name for turbo-oci/target-digest. */
  fastOciTargetDigest: 'containerd.io/snapshot/overlaybd/fastoci/target-digest',
  downloadRemoteBlob: 'containerd.io/snapshot/overlaybd/download-remote-blob',
  /** Written onto remote-block snapshots; value `remote snapshot`. */
  remote: 'containerd.io/snapshot/remote',
  snapshotType: 'containerd.io/snapshot/type',
  diskQuota: 'containerd.io/snapshot/disk_quota',
  overlayActivePath: 'containerd.io/snapshot/overlay.active.path',
  /** Per-snapshot rwMode: dir, dev, anything else overlayfs. */
  writable: 'containerd.io/snapshot/overlaybd.writable',
  localCommitPath: 'containerd.io/snapshot/overlaybd.localcommitpath',
} as const;

export const REMOTE_SNAPSHOT = 'remote snapshot';
