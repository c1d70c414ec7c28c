export * from './attach.js';
export * from './service.js';
export * from './state.js';
export * from './ublk.js';
