export * from './global-config.js';
export * from './metrics.js';
export * from './result-file.js';
export * from './image-request.js';
export * from './image-service.js';
export * from './open-config.js';
