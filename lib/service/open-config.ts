/**
 * Opens a config.v1.json from the command line or an embedder without a
 * running service: local-only images open straight on the native stack;
 * anything that needs the image service (remote lowers, a trace, a
 * download) gets a private service that closes with the image.
 */
import { argument, filePath, localSpec, resolveImageConfig, type ResolvedImageConfig } from '../config.js';
import { openImage, type Image } from '../image.js';
import { ImageService, type ImageServiceOptions, type OpenOptions } from './image-service.js';
import { buildImageRequest } from './image-request.js';

export interface OpenConfigOptions extends ImageServiceOptions, OpenOptions {
  /** An image service to open it with (its global config applies); default: a private one. */
  service?: ImageService;
  /** I/O engine for local files (overrides the global ioEngine). */
  ioEngine?: 'psync' | 'io_uring';
}

export async function openImageConfig(configPath: string, opts: OpenConfigOptions = {}): Promise<Image> {
  const file = argument(filePath, configPath, 'configPath');
  if (opts.service) return opts.service.openImage(file, opts);
  return openResolvedConfig(file, await resolveImageConfig(file), opts);
}

/** openImageConfig for a config its caller has read already (`resolveImageConfig(file)`). */
export async function openResolvedConfig(file: string, r: ResolvedImageConfig, opts: Omit<OpenConfigOptions, 'service'> = {}): Promise<Image> {
  const spec = r.config.recordTracePath === undefined && r.config.accelerationLayer !== true ? localSpec(r) : undefined;
  if (spec) return openImage({ ...spec, ...(opts.ioEngine ? { ioEngine: opts.ioEngine } : {}) });
  const overrides = { ...opts.overrides, ...(opts.ioEngine ? { ioEngine: opts.ioEngine } : {}) };
  const service = await ImageService.create({ ...opts, overrides });
  try {
    const req = await buildImageRequest(file, service.global, opts, r);
    return await service.openRequest(req, () => service.close());
  } catch (e) {
    await service.close();
    throw e;
  }
}
