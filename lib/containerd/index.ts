/**
 * Clients of containerd's own gRPC services (lib/containerd/proto.ts loads
 * the API): content, images, leases, snapshots, diff, and `rpull`, a pull
 * through them that leaves layers to a remote snapshotter.
 */
export * from './connection.js';
export * from './content-store.js';
export * from './image-store.js';
export * from './labels.js';
export * from './leases.js';
export * from './platform.js';
export * from './pull.js';
export * from './resolve.js';
export * from './snapshots.js';
export * from './unpack.js';
export * from './obdconv.js';
export * from './record-trace.js';
export * from './tasks.js';
export * from './oci-spec.js';
export * from './trace-layer.js';
export * from './image-push.js';
export * from './trace-compact.js';
