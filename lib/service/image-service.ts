/**
 * The image service (upstream's ImageService under overlaybd-tcmu, §6): one
 * per process, configured by overlaybd.json. It opens config.v1.json images
 * whose remote lowers are read on demand from the registry, natively (libcurl,
 * the blob cache, background download, prefetch), so device reads never wait
 * on this event loop. Events report fetches, evictions, downloads and
 * prefetches; the Prometheus exporter starts when the config enables it.
 */
import { EventEmitter } from 'node:events';
import { argument, filePath } from '../config.js';
import { Image } from '../image.js';
import { asyncDispose, native } from '../native.js';
import { credentialProvider, type CredentialProvider } from '../registry/credentials.js';
import { silentLogger, type Logger } from '../log.js';
import { loadGlobalConfig, toNativeSettings, type GlobalConfig, type NativeServiceSettings } from './global-config.js';
import { startExporter, type IoStatsSnapshot } from './metrics.js';
import { buildImageRequest, type ImageRequest, type NativeImageRequest } from './image-request.js';

/** One event of the native image service. */
export interface ServiceEvent {
  kind: 'fetch' | 'evict' | 'cache-write-failed' | 'download' | 'prefetch';
  /** The layer blob digest (cache key); for prefetch, the image name. */
  digest?: string;
  offset: number;
  length: number;
  bytes: number;
  latencyUs: number;
  /** download: the layer's position in lowers. */
  layer?: number;
  /** download: waiting | running | done | failed | cancelled. */
  state?: string;
  message?: string;
  ok: boolean;
}

interface NativeImageService {
  readonly p2pActive: boolean;
  openImage(req: NativeImageRequest): Promise<unknown>;
  stats(resetMax: boolean): IoStatsSnapshot;
  addCredentials(prefix: string, username: string, password: string): void;
  setListener(fn: ((e: ServiceEvent) => void) | null): void;
  close(): Promise<void>;
}

export interface ImageServiceOptions {
  /** overlaybd.json path, or a parsed config; default /etc/overlaybd/overlaybd.json when it exists, else upstream's defaults. */
  global?: string | GlobalConfig;
  /** Settings layered over the global config's (tests: a cache in a temp dir, short timeouts). */
  overrides?: Partial<NativeServiceSettings>;
  /** Docker config.json credentials for registries (default: read it); false to skip. */
  dockerConfig?: boolean | string;
  logger?: Logger;
}

export interface OpenOptions {
  /** Start the prefetch of a trace or file list as soon as the image is open (default true). */
  autoPrefetch?: boolean;
  /** Write the config's resultFile (default true; a warm-up that attaches no device does not). */
  reportResult?: boolean;
  /** Record into the config's recordTracePath when it asks for a recording (default true; a warm-up must not). */
  recordTrace?: boolean;
}

export class ImageService extends EventEmitter {
  readonly global: GlobalConfig;
  readonly settings: NativeServiceSettings;
  #n: NativeImageService;
  #creds: CredentialProvider;
  #hosts = new Set<string>();
  #exporter: { url: string; close(): Promise<void> } | undefined;
  #log: Logger;
  #closing: Promise<void> | undefined;

  private constructor(global: GlobalConfig, settings: NativeServiceSettings, n: NativeImageService, opts: ImageServiceOptions) {
    super();
    this.global = global;
    this.settings = settings;
    this.#n = n;
    this.#log = opts.logger ?? silentLogger;
    this.#creds = credentialProvider({ dockerConfig: opts.dockerConfig ?? true });
    // Events cross from native threads only while someone listens.
    this.on('newListener', (name: string | symbol) => {
      if (name === 'event' && this.listenerCount('event') === 0) this.#n.setListener((e) => this.emit('event', e));
    });
    this.on('removeListener', (name: string | symbol) => {
      if (name === 'event' && this.listenerCount('event') === 0) this.#n.setListener(null);
    });
  }

  static async create(opts: ImageServiceOptions = {}): Promise<ImageService> {
    const global = typeof opts.global === 'object' ? opts.global : await loadGlobalConfig(opts.global);
    const settings = { ...toNativeSettings(global), ...opts.overrides };
    const n = (await native().createImageService(settings)) as NativeImageService;
    const svc = new ImageService(global, settings, n, opts);
    const exp = global.exporterConfig;
    if (exp.enable) {
      try {
        svc.#exporter = await startExporter(
          { port: exp.port, uriPrefix: exp.uriPrefix, updateIntervalUs: exp.updateInterval },
          () => svc.stats(),
        );
        svc.#log.info('exporter.started', { url: svc.#exporter.url });
      } catch (e) {
        await n.close();
        throw e;
      }
    }
    return svc;
  }

  override on(event: 'event', listener: (e: ServiceEvent) => void): this;
  override on(event: string | symbol, listener: (...args: never[]) => void): this;
  override on(event: string | symbol, listener: (...args: never[]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  /** True when P2P is enabled and its proxy answered: data reads go through it and bypass the cache (§6.1). */
  get p2pActive(): boolean {
    return this.#n.p2pActive;
  }

  /** Cumulative fetch and cache-read counters; the max latencies since the previous call. */
  stats(): IoStatsSnapshot {
    return this.#n.stats(true);
  }

  /**
   * Opens a config.v1.json: local lowers as files, remote ones (repoBlobUrl +
   * digest) read on demand. Writes the config's resultFile (`success` or
   * `failed:<reason>`) when it names one.
   */
  async openImage(configPath: string, opts: OpenOptions = {}): Promise<Image> {
    const file = argument(filePath, configPath, 'configPath');
    return this.openRequest(await buildImageRequest(file, this.global, opts));
  }

  /** @internal opens a built request; `afterClose` runs once the image has closed. */
  async openRequest(req: ImageRequest, afterClose?: () => Promise<void>): Promise<Image> {
    try {
      for (const host of req.registryHosts) await this.#ensureCredentials(host);
      const n = await this.#n.openImage(req.native);
      await req.reportResult({ ok: true });
      this.#log.info('image.opened', { config: req.configPath, remoteLayers: req.remoteLayers });
      return new Image(n as ConstructorParameters<typeof Image>[0], afterClose);
    } catch (e) {
      await req.reportResult({ ok: false, reason: (e as Error).message }).catch(() => {});
      throw e;
    }
  }

  // Hands the docker config.json / credential helper answer for a registry
  // down once, ahead of the reads that need it (§6.1 token flow is native).
  async #ensureCredentials(host: string): Promise<void> {
    if (this.#hosts.has(host)) return;
    const c = await this.#creds(host);
    this.#hosts.add(host);
    if (c) this.#n.addCredentials(host, c.username, c.password);
  }

  /** Stops the exporter and the service; images already open keep working until closed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.removeAllListeners('event');
      await this.#exporter?.close();
      await this.#n.close();
    })();
    return this.#closing;
  }

  [asyncDispose](): Promise<void> {
    return this.close();
  }
}
