/**
 * The global overlaybd.json (§5.2): upstream's defaults, the legacy
 * fallbacks, every bad field named, unknown fields kept, the native settings
 * derived from it, the per-image download override, and random JSON never
 * failing with anything but CONFIG_INVALID.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OverlaybdError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/log.js';
import {
  cacheSettings,
  loadGlobalConfig,
  logSettings,
  mergeDownload,
  parseGlobalConfig,
  toNativeSettings,
  type GlobalConfig,
} from '../lib/service/global-config.js';
import { Prng } from './helpers/prng.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-global-config-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function writeJson(name: string, value: unknown): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, JSON.stringify(value));
  return f;
}

function invalid(value: unknown): string {
  try {
    parseGlobalConfig(value, 'cfg.json');
  } catch (e) {
    expect(e).toBeInstanceOf(OverlaybdError);
    expect((e as OverlaybdError).code).toBe('CONFIG_INVALID');
    return (e as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(value)}`);
}

describe('defaults', () => {
  it('are upstream\'s (src/config.h)', () => {
    const g = parseGlobalConfig({});
    const version = (JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')) as { version: string }).version;
    expect(g).toEqual({
      logConfig: { logLevel: 1, logPath: '', logSizeMB: 10, logRotateNum: 3 },
      logLevel: 1,
      logPath: '/var/log/overlaybd.log',
      ioEngine: 0,
      cacheConfig: { cacheType: '', cacheDir: '/opt/overlaybd/registry_cache', cacheSizeGB: 4, refillSize: 262144, blockSize: 65536 },
      cacheType: 'file',
      registryCacheDir: '/opt/overlaybd/registry_cache',
      registryCacheSizeGB: 4,
      gzipCacheConfig: { enable: false, cacheDir: '/opt/overlaybd/gzip_cache', cacheSizeGB: 4, refillSize: 1048576 },
      credentialFilePath: '/opt/overlaybd/cred.json',
      credentialConfig: { mode: '', path: '', timeout: 1, client_cert_path: '', client_key_path: '', server_ca_path: '' },
      download: { enable: false, delay: 300, delayExtra: 30, maxMBps: 100, tryCnt: 5, blockSize: 262144 },
      enableAudit: true,
      auditPath: '/var/log/overlaybd-audit.log',
      enableThread: false,
      p2pConfig: { enable: false, address: 'http://localhost:9731/accelerator' },
      exporterConfig: { enable: false, uriPrefix: '/metrics', port: 9863, updateInterval: 60_000_000 },
      registryFsVersion: 'v2',
      prefetchConfig: { concurrency: 16 },
      certConfig: { certFile: '', keyFile: '', caFile: '' },
      userAgent: `overlaybd/${version}`,
      serviceConfig: { enable: false, address: 'http://127.0.0.1:9862' },
      // Our extension: the device service's control socket.
      controlSocket: '/run/overlaybd/overlaybd.sock',
    });
  });

  it('fill a partly given section', () => {
    const g = parseGlobalConfig({ cacheConfig: { cacheDir: '/c' }, exporterConfig: { enable: true } });
    expect(g.cacheConfig).toEqual({ cacheType: '', cacheDir: '/c', cacheSizeGB: 4, refillSize: 262144, blockSize: 65536 });
    expect(g.exporterConfig).toEqual({ enable: true, uriPrefix: '/metrics', port: 9863, updateInterval: 60_000_000 });
  });

  it('parses upstream\'s example config', () => {
    const g = parseGlobalConfig({
      logConfig: { logLevel: 1, logPath: '/var/log/overlaybd.log' },
      cacheConfig: { cacheType: 'file', cacheDir: '/opt/overlaybd/registry_cache', cacheSizeGB: 4 },
      gzipCacheConfig: { enable: true, cacheDir: '/opt/overlaybd/gzip_cache', cacheSizeGB: 4 },
      credentialConfig: { mode: 'file', path: '/opt/overlaybd/cred.json' },
      ioEngine: 0,
      download: { enable: true, delay: 600, delayExtra: 30, maxMBps: 100 },
      p2pConfig: { enable: false, address: 'localhost:19145/dadip2p' },
      exporterConfig: { enable: false, uriPrefix: '/metrics', port: 9863, updateInterval: 60000000 },
      enableAudit: true,
      auditPath: '/var/log/overlaybd-audit.log',
      registryFsVersion: 'v2',
    });
    expect(g.download).toEqual({ enable: true, delay: 600, delayExtra: 30, maxMBps: 100, tryCnt: 5, blockSize: 262144 });
    expect(g.gzipCacheConfig.refillSize).toBe(1 << 20);
  });
});

describe('legacy fields', () => {
  it('top-level logLevel/logPath apply when logConfig.logPath is empty', () => {
    expect(logSettings(parseGlobalConfig({ logLevel: 3, logPath: '/l', logConfig: { logLevel: 0 } }))).toEqual({
      level: 3,
      path: '/l',
      sizeBytes: 10 << 20,
      rotateNum: 3,
    });
    expect(logSettings(parseGlobalConfig({ logLevel: 3, logConfig: { logLevel: 0, logPath: '/n', logSizeMB: 2, logRotateNum: 7 } }))).toEqual({
      level: 0,
      path: '/n',
      sizeBytes: 2 << 20,
      rotateNum: 7,
    });
  });

  it('cacheType/registryCacheDir/registryCacheSizeGB apply when cacheConfig.cacheType is empty', () => {
    const legacy = parseGlobalConfig({ cacheType: 'download', registryCacheDir: '/old', registryCacheSizeGB: 9, cacheConfig: { cacheDir: '/new', refillSize: 65536 } });
    expect(cacheSettings(legacy)).toEqual({ type: 'download', dir: '/old', sizeGB: 9, refillSize: 65536 });
    const cur = parseGlobalConfig({ cacheType: 'download', registryCacheDir: '/old', cacheConfig: { cacheType: 'file', cacheDir: '/new', cacheSizeGB: 1 } });
    expect(cacheSettings(cur)).toEqual({ type: 'file', dir: '/new', sizeGB: 1, refillSize: 262144 });
  });

  it('credentialFilePath is the credential file when credentialConfig.mode is empty and it exists', () => {
    const cred = writeJson('cred.json', { auths: {} });
    expect(toNativeSettings(parseGlobalConfig({ credentialFilePath: cred }), silentLogger).credentialFile).toBe(cred);
    const missing = toNativeSettings(parseGlobalConfig({ credentialFilePath: path.join(dir, 'none.json') }), silentLogger);
    expect('credentialFile' in missing).toBe(false);
    const fileMode = toNativeSettings(parseGlobalConfig({ credentialFilePath: cred, credentialConfig: { mode: 'file', path: '/x.json' } }), silentLogger);
    expect(fileMode.credentialFile).toBe('/x.json');
  });
});

describe('validation names the bad field', () => {
  const cases: [unknown, RegExp][] = [
    [{ cacheConfig: { refillSize: 3000 } }, /^cfg\.json: cacheConfig\.refillSize: must be a power of two and a multiple of 4096/],
    [{ cacheConfig: { refillSize: 2048 } }, /cacheConfig\.refillSize: must be a power of two/],
    [{ cacheConfig: { refillSize: 12288 } }, /cacheConfig\.refillSize: must be a power of two/],
    [{ gzipCacheConfig: { refillSize: 100 } }, /gzipCacheConfig\.refillSize/],
    [{ cacheConfig: { cacheType: 'memory' } }, /cacheConfig\.cacheType/],
    [{ cacheType: '' }, /^cfg\.json: cacheType/],
    [{ cacheConfig: { cacheSizeGB: -1 } }, /cacheConfig\.cacheSizeGB/],
    [{ ioEngine: 3 }, /^cfg\.json: ioEngine/],
    [{ ioEngine: 1.5 }, /ioEngine/],
    [{ ioEngine: '0' }, /ioEngine/],
    [{ credentialConfig: { mode: 'ftp' } }, /credentialConfig\.mode/],
    [{ credentialConfig: { mode: 'http' } }, /credentialConfig\.path: must be set for mode http/],
    [{ credentialConfig: { mode: 'uds', path: '/s', timeout: 0 } }, /credentialConfig\.timeout/],
    [{ exporterConfig: { port: 0 } }, /exporterConfig\.port/],
    [{ exporterConfig: { port: 65536 } }, /exporterConfig\.port/],
    [{ exporterConfig: { uriPrefix: 'metrics' } }, /exporterConfig\.uriPrefix: must start with \//],
    [{ exporterConfig: { updateInterval: 0 } }, /exporterConfig\.updateInterval/],
    [{ logConfig: { logLevel: 4 } }, /logConfig\.logLevel/],
    [{ logLevel: -1 }, /^cfg\.json: logLevel/],
    [{ download: { blockSize: 1000 } }, /download\.blockSize: must be a positive multiple of 4096/],
    [{ download: { tryCnt: 0 } }, /download\.tryCnt/],
    [{ download: { enable: 'yes' } }, /download\.enable/],
    [{ registryFsVersion: 'v3' }, /registryFsVersion/],
    [{ prefetchConfig: { concurrency: 0 } }, /prefetchConfig\.concurrency/],
    [{ p2pConfig: { enable: 1 } }, /p2pConfig\.enable/],
    [{ enableThread: true }, /enableThread: cannot be used with the file cache/],
    [{ userAgent: '' }, /userAgent/],
    [{ certConfig: { certFile: 5 } }, /certConfig\.certFile/],
    [{ logConfig: [] }, /logConfig/],
    [[], /\(root\)/],
    [null, /\(root\)/],
  ];
  for (const [value, re] of cases) {
    it(JSON.stringify(value), () => {
      expect(invalid(value)).toMatch(re);
    });
  }

  it('enableThread is fine with the download cache', () => {
    expect(parseGlobalConfig({ enableThread: true, cacheConfig: { cacheType: 'download' } }).enableThread).toBe(true);
  });
});

describe('unknown fields', () => {
  it('are kept and ignored, at every level', () => {
    const g = parseGlobalConfig({ future: { a: 1 }, cacheConfig: { tier: 'x' }, download: { extra: true } }) as GlobalConfig & Record<string, unknown>;
    expect(g.future).toEqual({ a: 1 });
    expect((g.cacheConfig as Record<string, unknown>).tier).toBe('x');
    expect((g.download as Record<string, unknown>).extra).toBe(true);
    expect(toNativeSettings(g, silentLogger)).toEqual(toNativeSettings(parseGlobalConfig({}), silentLogger));
  });
});

describe('loadGlobalConfig', () => {
  it('an explicit path must exist', async () => {
    const f = path.join(dir, 'missing.json');
    await expect(loadGlobalConfig(f)).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining(f) });
  });

  it('reads an explicit path and names it in errors', async () => {
    expect((await loadGlobalConfig(writeJson('a.json', { ioEngine: 2 }))).ioEngine).toBe(2);
    const bad = writeJson('bad.json', { ioEngine: 9 });
    await expect(loadGlobalConfig(bad)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(`${bad}: ioEngine`) });
    const notJson = path.join(dir, 'notjson.json');
    fs.writeFileSync(notJson, '{');
    await expect(loadGlobalConfig(notJson)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(notJson) });
  });

  it('without a path: the default file when it exists, else the defaults', async () => {
    const saved = process.env.OVERLAYBD_GLOBAL_CONFIG;
    try {
      process.env.OVERLAYBD_GLOBAL_CONFIG = writeJson('default.json', { auditPath: '/a.log' });
      expect((await loadGlobalConfig()).auditPath).toBe('/a.log');
      process.env.OVERLAYBD_GLOBAL_CONFIG = path.join(dir, 'absent.json');
      expect(await loadGlobalConfig()).toEqual(parseGlobalConfig({}));
    } finally {
      if (saved === undefined) delete process.env.OVERLAYBD_GLOBAL_CONFIG;
      else process.env.OVERLAYBD_GLOBAL_CONFIG = saved;
    }
  });
});

describe('toNativeSettings', () => {
  it('maps the defaults', () => {
    const g = parseGlobalConfig({ credentialFilePath: path.join(dir, 'none.json') });
    expect(toNativeSettings(g, silentLogger)).toEqual({
      cacheType: 'file',
      cacheDir: '/opt/overlaybd/registry_cache',
      cacheSizeBytes: 4 * 2 ** 30,
      refillSize: 262144,
      ioEngine: 'psync',
      tls: {},
      userAgent: g.userAgent,
      download: { enable: false, delayS: 300, delayExtraS: 30, maxMBps: 100, tryCnt: 5, blockSize: 262144 },
      prefetchConcurrency: 16,
      audit: { enable: true, path: '/var/log/overlaybd-audit.log' },
      readTimeoutMs: 30000,
      retries: 3,
    });
  });

  it('maps every choice', () => {
    const s = toNativeSettings(
      parseGlobalConfig({
        ioEngine: 1,
        cacheConfig: { cacheType: 'download', cacheDir: '/d', cacheSizeGB: 1, refillSize: 1 << 20 },
        credentialConfig: { mode: 'https', path: 'https://auth/x', timeout: 2, client_cert_path: '/c.pem', client_key_path: '', server_ca_path: '/ca.pem' },
        certConfig: { certFile: '/cert', keyFile: '/key', caFile: '/ca' },
        p2pConfig: { enable: true, address: 'http://p2p:1/acc' },
        userAgent: 'ua/1',
        download: { enable: true, delay: 1, delayExtra: 0, maxMBps: 7, tryCnt: 2, blockSize: 4096 },
        prefetchConfig: { concurrency: 4 },
        enableAudit: false,
        auditPath: '/audit',
      }),
      silentLogger,
    );
    expect(s).toEqual({
      cacheType: 'download',
      cacheDir: '/d',
      cacheSizeBytes: 2 ** 30,
      refillSize: 1 << 20,
      ioEngine: 'io_uring',
      credentialServer: { mode: 'https', path: 'https://auth/x', timeoutMs: 2000, clientCert: '/c.pem', serverCa: '/ca.pem' },
      tls: { caFile: '/ca', certFile: '/cert', keyFile: '/key' },
      p2pAddress: 'http://p2p:1/acc',
      userAgent: 'ua/1',
      download: { enable: true, delayS: 1, delayExtraS: 0, maxMBps: 7, tryCnt: 2, blockSize: 4096 },
      prefetchConcurrency: 4,
      audit: { enable: false, path: '/audit' },
      readTimeoutMs: 30000,
      retries: 3,
    });
    expect(toNativeSettings(parseGlobalConfig({ ioEngine: 2 }), silentLogger).ioEngine).toBe('io_uring');
    const uds = toNativeSettings(parseGlobalConfig({ credentialConfig: { mode: 'uds', path: '/run/auth.sock', client_cert_path: '/ignored' } }), silentLogger);
    expect(uds.credentialServer).toEqual({ mode: 'uds', path: '/run/auth.sock', timeoutMs: 1000 });
    expect(uds.credentialFile).toBeUndefined();
  });

  it('ocf falls back to the file cache with a warning', () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (e) => void warnings.push(e) };
    expect(toNativeSettings(parseGlobalConfig({ cacheConfig: { cacheType: 'ocf' } }), logger).cacheType).toBe('file');
    expect(warnings).toEqual(['service.cache.ocf_unsupported']);
  });
});

describe('mergeDownload', () => {
  const global = parseGlobalConfig({ download: { enable: true, delay: 10 } }).download;

  it('overrides field by field', () => {
    expect(mergeDownload(global, undefined)).toEqual(global);
    expect(mergeDownload(global, {})).toEqual(global);
    expect(mergeDownload(global, { enable: false, maxMBps: 5, other: 1 })).toEqual({ ...global, enable: false, maxMBps: 5 });
  });

  it('names download.<field>', () => {
    expect(() => mergeDownload(global, { blockSize: 100 }, 'img.json')).toThrow(/^img\.json: download\.blockSize: must be a positive multiple of 4096/);
    expect(() => mergeDownload(global, { delay: -1 })).toThrow(/download\.delay/);
    expect(() => mergeDownload(global, 'on')).toThrow(/download:/);
  });
});

describe('random JSON', () => {
  /** Values near the schema's shape: its own keys with random values, nested. */
  const keys = [
    'logConfig', 'logLevel', 'logPath', 'ioEngine', 'cacheConfig', 'cacheType', 'cacheDir', 'cacheSizeGB', 'refillSize',
    'credentialConfig', 'mode', 'path', 'timeout', 'download', 'enable', 'delay', 'blockSize', 'exporterConfig', 'port',
    'uriPrefix', 'updateInterval', 'enableThread', 'userAgent', 'p2pConfig', 'address', '__proto__', 'constructor', 'x',
  ];
  function object(r: Prng, depth: number): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (let i = r.int(6); i > 0; i--) o[r.pick(keys)] = value(r, depth + 1);
    return o;
  }
  function value(r: Prng, depth: number): unknown {
    switch (r.int(depth > 3 ? 6 : 8)) {
      case 0: return null;
      case 1: return r.chance(0.5);
      case 2: return r.pick([0, 1, 2, 3, -1, 4096, 262144, 65535, 65536, 2 ** 32, 1.5, 1e308, -0]);
      case 3: return r.int(2 ** 31) * (r.chance(0.5) ? 1 : 4096);
      case 4: return r.pick(['', 'file', 'ocf', 'download', 'http', 'uds', '/metrics', 'v1', 'x\u0000y']);
      case 5: return String(r.u32());
      case 6: return Array.from({ length: r.int(3) }, () => value(r, depth + 1));
      default: return object(r, depth);
    }
  }

  it('never fails with anything but CONFIG_INVALID', () => {
    const r = new Prng(Number(process.env.OBD_FUZZ_SEED ?? 8));
    let ok = 0;
    for (let i = 0; i < 5000; i++) {
      const v = r.chance(0.9) ? JSON.parse(JSON.stringify(object(r, 0))) : value(r, 0);
      try {
        const g = parseGlobalConfig(v);
        toNativeSettings(g, silentLogger);
        mergeDownload(g.download, (v as Record<string, unknown> | null)?.download);
        ok++;
      } catch (e) {
        if (!(e instanceof OverlaybdError) || e.code !== 'CONFIG_INVALID') throw new Error(`input ${JSON.stringify(v)} threw ${String(e)}`, { cause: e });
      }
    }
    expect(ok).toBeGreaterThan(25);
  });
});
