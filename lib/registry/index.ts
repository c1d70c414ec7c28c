/**
 * OCI distribution client. Typical use:
 *
 *   const c = new RegistryClient({ transport: { plainHttp: true }, credentials: { userPass: 'u:p' } });
 *   const { descriptor, bytes } = await c.resolve('127.0.0.1:5000/app:v1');
 *   const layer = await c.fetchBlob({ registry, repository }, { digest, size }); // verified stream
 *   await c.pushBlob(dst, desc, { file: path }, { mountFrom: ['other/repo'] });
 *   await c.pushManifest(dst, bytes, mediaType, 'tag');
 *
 * Errors are OverlaybdError with REGISTRY_* or DIGEST_MISMATCH codes; every
 * message names the registry URL and the operation. Pass a Logger (lib/log.ts)
 * to see requests, retries and token fetches.
 */
export * from './reference.js';
export * from './media-types.js';
export * from './logger.js';
// The client logs through lib/log.ts's Logger; re-exported for existing imports.
export { silentLogger, type Logger } from '../log.js';
export * from './digest.js';
export * from './credentials.js';
export * from './retry.js';
export * from './transport.js';
export * from './auth.js';
export * from './http-errors.js';
export * from './upload.js';
export * from './client.js';
