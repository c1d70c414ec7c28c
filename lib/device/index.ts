export * from './attach.js';
export * from './service.js';
export { snapshotDevice, type SnapshotTarget } from './snapshot.js';
export { resizeImage, type ResizeOptions, type ResizeResult } from './resize.js';
export * from './state.js';
export * from './ublk.js';
