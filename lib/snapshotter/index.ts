/** The overlaybd snapshotter: a containerd proxy snapshotter (accelerated-container-image.md §1). */
export { DEFAULT_CONFIG_PATH, loadSnapshotterConfig, parseSnapshotterConfig, rwModeOf, type RwMode, type SnapshotterConfig } from './config.js';
export { parseFilter, parseFilters, type Adaptor, type Filter } from './filters.js';
export { MetaStore, type Info, type Kind, type Snapshot, type Usage } from './metastore.js';
export { type Mount } from './mounts.js';
export { Snapshotter } from './snapshotter.js';
export { grpcStatusOf, serveSnapshots, snapshotsHandlers, type SnapshotsServer } from './server.js';
export { createSnapshotterMetrics, startMetricsExporter, type SnapshotterMetrics } from './metrics.js';
export { runSnapshotter, type RunningSnapshotter } from './run.js';
