export * from './attach.js';
