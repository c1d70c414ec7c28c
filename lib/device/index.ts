export * from './attach.js';
export * from './service.js';
