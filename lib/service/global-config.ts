/**
 * The image service's global config, upstream's `/etc/overlaybd/overlaybd.json`
 * (docs/overlaybd-format.md §5.2): every field with upstream's default,
 * unknown fields kept and ignored, the legacy top-level fields used where
 * upstream falls back to them, and each bad value named by its field.
 * `toNativeSettings` turns it into the plain object the native service takes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseWith, readJsonFile } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { packageRoot } from '../native.js';

export const DEFAULT_GLOBAL_CONFIG_PATH = '/etc/overlaybd/overlaybd.json';

const uint32 = z.number().int().min(0).max(2 ** 32 - 1);
const str = z.string();
/** A cache refill unit: whole 4 KiB pages, a power of two (the cache rounds misses out to it). */
const refill = uint32.refine((v) => v >= 4096 && (v & (v - 1)) === 0, 'must be a power of two and a multiple of 4096');

/** A nested object whose omitted fields take their defaults (zod 4: prefault parses the default). */
function section<S extends z.ZodRawShape>(shape: S) {
  // Every field has a default, so {} is valid input (the generic cannot show it).
  return z.object(shape).loose().prefault({} as never);
}

/** `download` fields without defaults: the per-image override takes any subset of them. */
const downloadFields = {
  enable: z.boolean(),
  /** Seconds before the download starts. */
  delay: uint32,
  /** Up to this many more seconds, chosen at random per image. */
  delayExtra: uint32,
  maxMBps: uint32.min(1),
  tryCnt: uint32.min(1),
  blockSize: uint32.refine((v) => v > 0 && v % 4096 === 0, 'must be a positive multiple of 4096'),
};

export const DownloadSchema = z
  .object({
    enable: downloadFields.enable.default(false),
    delay: downloadFields.delay.default(300),
    delayExtra: downloadFields.delayExtra.default(30),
    maxMBps: downloadFields.maxMBps.default(100),
    tryCnt: downloadFields.tryCnt.default(5),
    blockSize: downloadFields.blockSize.default(262144),
  })
  .loose();
export type DownloadConfig = z.output<typeof DownloadSchema>;

const DownloadOverrideSchema = z.object({ download: z.object(downloadFields).partial().loose().optional() }).loose();

function userAgent(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return `overlaybd/${pkg.version}`;
}

export const GlobalConfigSchema = z
  .object({
    logConfig: section({
      logLevel: uint32.max(3).default(1),
      /** Empty: the legacy top-level logLevel/logPath apply. */
      logPath: str.default(''),
      logSizeMB: uint32.min(1).default(10),
      logRotateNum: uint32.default(3),
    }),
    /** Legacy, used when logConfig.logPath is empty. */
    logLevel: uint32.max(3).default(1),
    logPath: str.default('/var/log/overlaybd.log'),
    /** Local files: 0 psync, 1 libaio, 2 posix aio. */
    ioEngine: uint32.max(2).default(0),
    cacheConfig: section({
      /** Empty: the legacy cacheType/registryCacheDir/registryCacheSizeGB apply. */
      cacheType: z.enum(['', 'file', 'ocf', 'download']).default(''),
      cacheDir: str.default('/opt/overlaybd/registry_cache'),
      cacheSizeGB: uint32.default(4),
      refillSize: refill.default(262144),
      /** ocf cache block size. */
      blockSize: refill.default(65536),
    }),
    cacheType: z.enum(['file', 'ocf', 'download']).default('file'),
    registryCacheDir: str.default('/opt/overlaybd/registry_cache'),
    registryCacheSizeGB: uint32.default(4),
    gzipCacheConfig: section({
      enable: z.boolean().default(false),
      cacheDir: str.default('/opt/overlaybd/gzip_cache'),
      cacheSizeGB: uint32.default(4),
      refillSize: refill.default(1 << 20),
    }),
    /** Legacy, used when credentialConfig.mode is empty. */
    credentialFilePath: str.default('/opt/overlaybd/cred.json'),
    credentialConfig: section({
      mode: z.enum(['', 'file', 'http', 'https', 'uds']).default(''),
      path: str.default(''),
      /** Seconds. */
      timeout: uint32.min(1).default(1),
      client_cert_path: str.default(''),
      client_key_path: str.default(''),
      server_ca_path: str.default(''),
    }),
    download: DownloadSchema.prefault({}),
    enableAudit: z.boolean().default(true),
    auditPath: str.default('/var/log/overlaybd-audit.log'),
    enableThread: z.boolean().default(false),
    p2pConfig: section({
      enable: z.boolean().default(false),
      address: str.default('http://localhost:9731/accelerator'),
    }),
    exporterConfig: section({
      enable: z.boolean().default(false),
      uriPrefix: str.startsWith('/', 'must start with /').default('/metrics'),
      port: z.number().int().min(1).max(65535).default(9863),
      /** Microseconds. */
      updateInterval: z.number().int().min(1000).max(Number.MAX_SAFE_INTEGER).default(60_000_000),
    }),
    registryFsVersion: z.enum(['v1', 'v2']).default('v2'),
    prefetchConfig: section({ concurrency: uint32.min(1).max(1024).default(16) }),
    certConfig: section({
      certFile: str.default(''),
      keyFile: str.default(''),
      /** Our extension: a CA bundle for registries (upstream uses the system bundle only). */
      caFile: str.default(''),
    }),
    userAgent: str.min(1).default(userAgent),
    serviceConfig: section({
      enable: z.boolean().default(false),
      address: str.default('http://127.0.0.1:9862'),
    }),
    /** Our extension: the device service's control socket (overlaybd attach/detach/list). */
    controlSocket: str.min(1).default('/run/overlaybd/overlaybd.sock'),
  })
  .loose()
  .superRefine((g, ctx) => {
    const { mode, path: credPath } = g.credentialConfig;
    if (mode !== '' && credPath === '') {
      ctx.addIssue({ code: 'custom', path: ['credentialConfig', 'path'], message: `must be set for mode ${mode}` });
    }
    if (g.enableThread && cacheSettings(g).type === 'file') {
      ctx.addIssue({ code: 'custom', path: ['enableThread'], message: 'cannot be used with the file cache' });
    }
  });

export type GlobalConfig = z.output<typeof GlobalConfigSchema>;

/** Validates a parsed overlaybd.json; errors are CONFIG_INVALID naming `source` and the field. */
export function parseGlobalConfig(value: unknown, source = 'overlaybd.json'): GlobalConfig {
  return parseWith(GlobalConfigSchema, value, source);
}

/**
 * Loads the global config: an explicit `file` must exist; otherwise the
 * default path (env OVERLAYBD_GLOBAL_CONFIG overrides it) if it exists, else
 * the defaults.
 */
export async function loadGlobalConfig(file?: string): Promise<GlobalConfig> {
  if (file !== undefined) return parseGlobalConfig(await readJsonFile(file), file);
  const def = process.env.OVERLAYBD_GLOBAL_CONFIG || DEFAULT_GLOBAL_CONFIG_PATH;
  if (!fs.existsSync(def)) return parseGlobalConfig({}, 'default global config');
  return parseGlobalConfig(await readJsonFile(def), def);
}

/** Log level, path and rotation after the legacy fallback. */
export function logSettings(g: GlobalConfig): { level: number; path: string; sizeBytes: number; rotateNum: number } {
  const c = g.logConfig;
  if (c.logPath === '') return { level: g.logLevel, path: g.logPath, sizeBytes: 10 << 20, rotateNum: 3 };
  return { level: c.logLevel, path: c.logPath, sizeBytes: c.logSizeMB * 2 ** 20, rotateNum: c.logRotateNum };
}

/** Cache type, dir and size after the legacy fallback (all three move together, as upstream). */
export function cacheSettings(g: GlobalConfig): { type: 'file' | 'ocf' | 'download'; dir: string; sizeGB: number; refillSize: number } {
  const c = g.cacheConfig;
  if (c.cacheType === '') return { type: g.cacheType, dir: g.registryCacheDir, sizeGB: g.registryCacheSizeGB, refillSize: c.refillSize };
  return { type: c.cacheType, dir: c.cacheDir, sizeGB: c.cacheSizeGB, refillSize: c.refillSize };
}

/** What the native image service takes: plain values, every choice made. */
export interface NativeServiceSettings {
  cacheType: 'file' | 'download';
  cacheDir: string;
  cacheSizeBytes: number;
  refillSize: number;
  ioEngine: 'psync' | 'io_uring';
  credentialFile?: string;
  credentialServer?: {
    mode: 'http' | 'https' | 'uds';
    path: string;
    timeoutMs: number;
    clientCert?: string;
    clientKey?: string;
    serverCa?: string;
  };
  tls: { caFile?: string; certFile?: string; keyFile?: string };
  p2pAddress?: string;
  userAgent: string;
  download: { enable: boolean; delayS: number; delayExtraS: number; maxMBps: number; tryCnt: number; blockSize: number };
  prefetchConcurrency: number;
  audit: { enable: boolean; path: string };
  readTimeoutMs: number;
  retries: number;
}

const nonEmpty = (s: string) => (s === '' ? undefined : s);

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function toNativeDownload(d: DownloadConfig): NativeServiceSettings['download'] {
  return { enable: d.enable, delayS: d.delay, delayExtraS: d.delayExtra, maxMBps: d.maxMBps, tryCnt: d.tryCnt, blockSize: d.blockSize };
}

export function toNativeSettings(g: GlobalConfig, logger: Logger = createLogger()): NativeServiceSettings {
  const cache = cacheSettings(g);
  if (cache.type === 'ocf') logger.warn('service.cache.ocf_unsupported', { message: "the 'ocf' cache is not built; using the file cache" });
  const cred = g.credentialConfig;
  let credentialFile: string | undefined;
  let credentialServer: NativeServiceSettings['credentialServer'];
  if (cred.mode === 'file') {
    credentialFile = cred.path;
  } else if (cred.mode === '') {
    // Legacy: upstream reads credentialFilePath on every auth; a missing file means no credentials.
    if (fs.existsSync(g.credentialFilePath)) credentialFile = g.credentialFilePath;
  } else {
    credentialServer = withoutUndefined({
      mode: cred.mode,
      path: cred.path,
      timeoutMs: cred.timeout * 1000,
      clientCert: cred.mode === 'https' ? nonEmpty(cred.client_cert_path) : undefined,
      clientKey: cred.mode === 'https' ? nonEmpty(cred.client_key_path) : undefined,
      serverCa: cred.mode === 'https' ? nonEmpty(cred.server_ca_path) : undefined,
    });
  }
  return withoutUndefined({
    cacheType: cache.type === 'download' ? 'download' : 'file',
    cacheDir: cache.dir,
    cacheSizeBytes: cache.sizeGB * 2 ** 30,
    refillSize: cache.refillSize,
    // libaio (1) and posix aio (2) are upstream's asynchronous-submission
    // engines; io_uring is ours, and it needs no O_DIRECT alignment adaptor.
    ioEngine: g.ioEngine === 0 ? 'psync' : 'io_uring',
    credentialFile,
    credentialServer,
    tls: withoutUndefined({ caFile: nonEmpty(g.certConfig.caFile), certFile: nonEmpty(g.certConfig.certFile), keyFile: nonEmpty(g.certConfig.keyFile) }),
    p2pAddress: g.p2pConfig.enable ? g.p2pConfig.address : undefined,
    userAgent: g.userAgent,
    download: toNativeDownload(g.download),
    prefetchConcurrency: g.prefetchConfig.concurrency,
    audit: { enable: g.enableAudit, path: g.auditPath },
    // §6.1: 30 s per read, 3 retries.
    readTimeoutMs: 30_000,
    retries: 3,
  });
}

/**
 * The download settings of one image: its config.v1.json `download` object
 * overrides the global one field by field (§5.1). `perImage` is that object
 * (or undefined); bad fields are CONFIG_INVALID naming `download.<field>`.
 */
export function mergeDownload(global: DownloadConfig, perImage: unknown, source = 'config.v1.json'): DownloadConfig {
  const { download } = parseWith(DownloadOverrideSchema, { download: perImage }, source);
  const set = Object.fromEntries(Object.entries(download ?? {}).filter(([k, v]) => k in downloadFields && v !== undefined));
  return { ...global, ...set };
}
