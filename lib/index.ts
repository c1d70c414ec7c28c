/** @dadi/overlaybd: the public TypeScript API. */
export { OverlaybdError, isOverlaybdError, ERROR_CODES, type ErrorCode } from './errors.js';
export { openImage, Image, type ImageSpec, type PrefetchStats, type DownloadState } from './image.js';
export { ImageService, openImageConfig, type ServiceEvent, type ImageServiceOptions, type OpenConfigOptions } from './service/index.js';
export * as service from './service/index.js';
export { attachDevice, resizeImage, type AttachOptions, type AttachedDevice, type Frontend, type ResizeOptions } from './device/index.js';
export { createLayer, commitLayer, sealLayer, inspectLayer } from './layer.js';
export type { CreateLayerOptions, CommitLayerOptions, LayerInspection, LayerEntry, LsmtRecord } from './layer.js';
export * as zfile from './zfile.js';
export { loadImageConfig, resolveImageConfig, ImageConfigSchema, type ImageConfig } from './config.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export * as registry from './registry/index.js';
export * as convertor from './convertor/index.js';
