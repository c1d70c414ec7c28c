/** User-space ext4 on overlaybd images: mkfs and OCI layer apply. */
export { applyLayer, type ApplyOptions, type ApplyProgress, type ApplyResult } from './apply.js';
export { mkfs, type MkfsOptions } from './mkfs.js';
export { DEFAULT_VSIZE_GB, type Ext4Device } from './device.js';
