/**
 * The lazy image service end to end: a bookworm image converted by our
 * convertor, pushed to a real docker-registry, opened remotely through the
 * cache. Checks the "done when": same device bytes as the local
 * layers, a few percent fetched for one file, a warm cache (also after a
 * restart) fetching nothing, trace record/replay, background download with a
 * reader looping, and the cache faults.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ImageService, openImage, type Image } from '../lib/index.js';
import { remoteBookworm, writeGlobalConfig, type RemoteBookworm, type TestGlobalConfig } from './helpers/remote-image.js';
import { runTool } from './helpers/cli.js';
import { startP2pProxy } from './helpers/p2p-proxy.js';
import { freePort } from './helpers/registry.js';
import { sparseDigest } from './helpers/sparse.js';
import { tempDir } from './helpers/vectors.js';

let remote: RemoteBookworm;
let tmp: { dir: string; cleanup: () => void };
let localDigest: string;

beforeAll(async () => {
  remote = await remoteBookworm();
  tmp = tempDir('obd-lazy-');
  const localCfg = path.join(tmp.dir, 'local.json');
  fs.writeFileSync(localCfg, JSON.stringify({ lowers: remote.localLayers.map((file) => ({ file })) }));
  localDigest = dumpDigest(localCfg, 'local');
}, 600_000);

afterAll(async () => {
  await remote?.close();
  tmp?.cleanup();
});

let n = 0;
/** A fresh global config (own cache dir, audit log) written to a file, as a user would. */
function globalConfig(extra: Record<string, unknown> = {}): TestGlobalConfig {
  return writeGlobalConfig(path.join(tmp.dir, `g${n++}`), extra);
}

function dumpDigest(config: string, name: string, global?: string): string {
  const out = path.join(tmp.dir, `${name}.img`);
  const fd = fs.openSync(out, 'w');
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'lib/cli/overlaybd.ts', 'dump', ...(global ? ['--global', global] : []), config], {
      stdio: ['ignore', fd, 'pipe'],
      timeout: 300_000,
    });
  } finally {
    fs.closeSync(fd);
  }
  const d = sparseDigest(out);
  fs.rmSync(out);
  return d;
}

const blobBytes = () => remote.lowers.reduce((a, l) => a + l.size, 0);

describe('remote bookworm', () => {
  it('overlaybd dump of the remote config equals the dump of the local layers', () => {
    const g = globalConfig();
    const cfg = remote.writeConfig(path.join(tmp.dir, 'dump'));
    expect(dumpDigest(cfg, 'remote', g.file)).toBe(localDigest);
  }, 600_000);

  it('reading /etc/debian_version fetches a few percent of the blobs; a warm cache fetches nothing, also after a restart', async () => {
    const g = globalConfig();
    const list = path.join(tmp.dir, 'cat-list');
    fs.writeFileSync(list, '/etc/debian_version\n');
    const cfg = remote.writeConfig(path.join(tmp.dir, 'cat'), { recordTracePath: list });
    const fetched: number[] = [];
    for (let run = 0; run < 3; run++) {
      // Each run is a new service: the second and third are restarts over the same cache dir.
      const svc = await ImageService.create({ global: g.file, dockerConfig: false });
      try {
        const img = await svc.openImage(cfg, { autoPrefetch: false });
        const st = await img.prefetch();
        expect(st.errors).toBe(0);
        expect(st.reads).toBeGreaterThan(0);
        await img.close();
        fetched.push(svc.stats().download.bytes);
      } finally {
        await svc.close();
      }
    }
    expect(fetched[0]).toBeGreaterThan(0);
    expect(fetched[0]! / blobBytes()).toBeLessThan(0.05);
    expect(fetched[1]).toBe(0);
    expect(fetched[2]).toBe(0);
    expect(fs.readFileSync(g.audit, 'utf8')).toMatch(/\|AUDIT\|download\|digest=sha256:/);
  }, 300_000);

  it('records a trace, and replaying it on a fresh cache makes the same reads cache hits', async () => {
    const trace = path.join(tmp.dir, 'trace');
    fs.writeFileSync(trace, '');
    const cfg = remote.writeConfig(path.join(tmp.dir, 'rec'), { recordTracePath: trace });
    const offsets = [0, 1 << 20, 7 << 20, 33 << 20, 100 << 20];
    const g1 = globalConfig();
    const want: Buffer[] = [];
    {
      const img = await openImage(cfg, { global: g1.file, dockerConfig: false });
      expect(fs.existsSync(`${trace}.lock`)).toBe(true);
      for (const off of offsets) want.push(await img.read(off, 65536));
      await img.finishRecording();
      await img.close();
    }
    expect(fs.existsSync(`${trace}.ok`)).toBe(true);
    expect(fs.statSync(trace).size).toBeGreaterThan(24);

    const g2 = globalConfig();
    const svc = await ImageService.create({ global: g2.file, dockerConfig: false });
    try {
      const img = await svc.openImage(cfg);
      const st = await img.prefetch();
      expect(st.reads).toBeGreaterThan(0);
      expect(st.errors).toBe(0);
      const before = svc.stats().download;
      for (const [i, off] of offsets.entries()) expect((await img.read(off, 65536)).equals(want[i]!)).toBe(true);
      expect(svc.stats().download.count).toBe(before.count);
      await img.close();
    } finally {
      await svc.close();
    }
  }, 300_000);

  it('downloads the layers in the background and switches to them while a reader loops', async () => {
    const g = globalConfig({ download: { enable: true, delay: 0, delayExtra: 0, maxMBps: 1000 } });
    const dir = path.join(tmp.dir, 'bg');
    const cfg = remote.writeConfig(dir);
    const local = await openImage({ lowers: remote.localLayers });
    const svc = await ImageService.create({ global: g.file, dockerConfig: false });
    const events: string[] = [];
    svc.on('event', (e) => {
      if (e.kind === 'download') events.push(e.state ?? '');
    });
    let img: Image | undefined;
    try {
      img = await svc.openImage(cfg);
      let stop = false;
      let reads = 0;
      const reader = (async () => {
        let x = 12345;
        while (!stop) {
          x = (x * 1103515245 + 12345) % 2 ** 31;
          const off = (x % 4096) * 65536;
          const [a, b] = await Promise.all([img!.read(off, 65536), local.read(off, 65536)]);
          expect(a.equals(b)).toBe(true);
          reads++;
        }
      })();
      expect(await img.waitDownloads(240_000)).toBe(true);
      stop = true;
      await reader;
      expect(reads).toBeGreaterThan(0);
      expect(img.downloadStates().every((s) => s === 'done')).toBe(true);
      for (const [i, l] of remote.lowers.entries()) {
        const f = path.join(dir, `lower${i}`, 'overlaybd.commit');
        expect(fs.statSync(f).size).toBe(l.size);
      }
      // Events cross from the download thread through a queue: they may land just after.
      await vi.waitFor(() => expect(events).toContain('done'), { timeout: 5000 });
    } finally {
      await img?.close();
      await local.close();
      await svc.close();
    }
  }, 300_000);
});

describe('cache faults', () => {
  /** Opens the config through a new service on `g`, reads [off, off+len), and reports what the registry served. */
  async function readThrough(g: { file: string }, cfg: string, off: number, len: number): Promise<{ bytes: Buffer; fetches: number }> {
    const svc = await ImageService.create({ global: g.file, dockerConfig: false });
    try {
      const img = await svc.openImage(cfg);
      const bytes = await img.read(off, len);
      await img.close();
      return { bytes, fetches: svc.stats().download.count };
    } finally {
      await svc.close();
    }
  }

  const cacheFiles = (dir: string) => fs.readdirSync(dir).filter((f) => /^sha256:[0-9a-f]{64}$/.test(f)).map((f) => path.join(dir, f));

  it('flipped bytes in cached blocks are caught by the ZFile CRC, dropped and fetched again', async () => {
    const g = globalConfig();
    const cfg = remote.writeConfig(path.join(tmp.dir, 'flip'));
    const local = await openImage({ lowers: remote.localLayers });
    const want = await local.read(0, 1 << 20);
    await local.close();
    expect((await readThrough(g, cfg, 0, 1 << 20)).bytes.equals(want)).toBe(true);
    // Another process damages the cache: a byte in every KiB, sparing the tar
    // header, ZFile header and trailer (not CRC-protected: damage there fails the open).
    for (const f of cacheFiles(g.cacheDir)) {
      const b = fs.readFileSync(f);
      for (let off = 4096; off < b.length - 8192; off += 1024) b[off] = b[off]! ^ 0xff;
      fs.writeFileSync(f, b);
    }
    const again = await readThrough(g, cfg, 0, 1 << 20);
    expect(again.bytes.equals(want)).toBe(true);
    expect(again.fetches).toBeGreaterThan(0);
    expect(fs.readFileSync(g.audit, 'utf8')).toMatch(/\|AUDIT\|invalidate\|digest=sha256:/);
  }, 120_000);

  it('a cache file truncated by another process is refilled', async () => {
    const g = globalConfig();
    const cfg = remote.writeConfig(path.join(tmp.dir, 'trunc'));
    const local = await openImage({ lowers: remote.localLayers });
    const want = await local.read(5 << 20, 1 << 20);
    await local.close();
    expect((await readThrough(g, cfg, 5 << 20, 1 << 20)).bytes.equals(want)).toBe(true);
    expect((await readThrough(g, cfg, 5 << 20, 1 << 20)).fetches).toBe(0);
    for (const f of cacheFiles(g.cacheDir)) fs.truncateSync(f, 4096);
    const again = await readThrough(g, cfg, 5 << 20, 1 << 20);
    expect(again.bytes.equals(want)).toBe(true);
    expect(again.fetches).toBeGreaterThan(0);
  }, 120_000);

  it('a cache dir that cannot be written still serves correct bytes from the registry', async () => {
    const g = globalConfig();
    fs.mkdirSync(path.dirname(g.cacheDir), { recursive: true });
    fs.writeFileSync(g.cacheDir, 'not a directory');
    const cfg = remote.writeConfig(path.join(tmp.dir, 'ro'));
    const local = await openImage({ lowers: remote.localLayers });
    const want = await local.read(0, 1 << 20);
    await local.close();
    const got = await readThrough(g, cfg, 0, 1 << 20);
    expect(got.bytes.equals(want)).toBe(true);
    expect(got.fetches).toBeGreaterThan(0);
    expect(fs.readFileSync(g.cacheDir, 'utf8')).toBe('not a directory');
  }, 120_000);

  it('a config whose size does not match the blob fails naming both', async () => {
    const g = globalConfig();
    const cfg = remote.writeConfig(path.join(tmp.dir, 'size'));
    const json = JSON.parse(fs.readFileSync(cfg, 'utf8'));
    json.lowers[0].size += 1;
    const result = path.join(tmp.dir, 'size-result');
    json.resultFile = result;
    fs.writeFileSync(cfg, JSON.stringify(json));
    const e = await openImage(cfg, { global: g.file, dockerConfig: false }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'EINVAL' });
    expect((e as Error).message).toContain(json.lowers[0].digest);
    expect(fs.readFileSync(result, 'utf8')).toMatch(/^failed:/);
  }, 60_000);
});

describe('overlaybd prefetch', () => {
  it('warms the cache from a file list and reports what it read', () => {
    const g = globalConfig();
    const list = path.join(tmp.dir, 'bash-list');
    fs.writeFileSync(list, '/usr/bin/bash\n/etc/\n');
    const cfg = remote.writeConfig(path.join(tmp.dir, 'pf'), { recordTracePath: list });
    const r = runTool('overlaybd', ['prefetch', '--global', g.file, cfg]);
    expect(r.stderr).toBe(r.code === 0 ? r.stderr : '');
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(st.reads).toBeGreaterThan(0);
    expect(st.errors).toBe(0);
  }, 120_000);
});

describe('the service around the reads', () => {
  it('reads through the P2P proxy (nginx) with p2pConfig, bypassing the cache, and writes resultFile', async () => {
    const p2p = await startP2pProxy();
    try {
      const g = globalConfig({ p2pConfig: { enable: true, address: p2p.address } });
      const cfg = remote.writeConfig(path.join(tmp.dir, 'p2p'), { resultFile: 'result' });
      const local = await openImage({ lowers: remote.localLayers });
      const svc = await ImageService.create({ global: g.file, dockerConfig: false });
      try {
        expect(svc.p2pActive).toBe(true);
        const img = await svc.openImage(cfg);
        for (const off of [0, 3 << 20, 64 << 20]) expect((await img.read(off, 65536)).equals(await local.read(off, 65536))).toBe(true);
        await img.close();
      } finally {
        await svc.close();
        await local.close();
      }
      expect(fs.readFileSync(path.join(tmp.dir, 'p2p', 'result'), 'utf8')).toBe('success');
      const proxied = p2p.requests().filter((l) => l.includes(`${remote.repoBlobUrl}/sha256:`));
      expect(proxied.length).toBeGreaterThan(0);
      // Nothing was written to the cache: P2P reads bypass it (§6.1).
      const cached = fs.existsSync(g.cacheDir) ? fs.readdirSync(g.cacheDir).filter((f) => /^sha256:[0-9a-f]{64}$/.test(f)) : [];
      expect(cached).toEqual([]);
    } finally {
      await p2p.stop();
    }
  }, 120_000);

  it('exports upstream metric names with the fetch counts when exporterConfig is enabled', async () => {
    const port = await freePort();
    const g = globalConfig({ exporterConfig: { enable: true, port, uriPrefix: '/metrics', updateInterval: 100_000 } });
    const svc = await ImageService.create({ global: g.file, dockerConfig: false });
    try {
      const img = await svc.openImage(remote.writeConfig(path.join(tmp.dir, 'metrics')));
      await img.read(0, 1 << 20);
      await img.close();
      // The exporter refreshes its gauges every updateInterval (0.1 s here), as upstream.
      await vi.waitFor(
        async () => {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          expect(text).toMatch(/^OverlayBD_Alive\{/m);
          const count = /^OverlayBD_Count\{[^}]*type="download"[^}]*\} (\d+)/m.exec(text);
          expect(Number(count?.[1])).toBeGreaterThan(0);
        },
        { timeout: 5000, interval: 100 },
      );
    } finally {
      await svc.close();
    }
  }, 60_000);

  it('takes the acceleration layer off the stack and replays its trace', async () => {
    // A recorded trace of a few reads, then a config whose last lower is an acceleration layer holding it.
    const trace = path.join(tmp.dir, 'acc-trace');
    fs.writeFileSync(trace, '');
    const rec = remote.writeConfig(path.join(tmp.dir, 'acc-rec'), { recordTracePath: trace });
    {
      const img = await openImage(rec, { global: globalConfig().file, dockerConfig: false });
      await img.read(16 << 20, 1 << 20);
      await img.close();
    }
    const dir = path.join(tmp.dir, 'acc');
    const cfg = remote.writeConfig(dir);
    const json = JSON.parse(fs.readFileSync(cfg, 'utf8'));
    const accDir = path.join(dir, 'acceleration');
    fs.mkdirSync(accDir);
    fs.copyFileSync(trace, path.join(accDir, 'trace'));
    json.lowers.push({ ...json.lowers[json.lowers.length - 1], dir: accDir });
    json.accelerationLayer = true;
    fs.writeFileSync(cfg, JSON.stringify(json));
    const svc = await ImageService.create({ global: globalConfig().file, dockerConfig: false });
    try {
      const img = await svc.openImage(cfg);
      const st = await img.prefetch();
      expect(st.reads).toBeGreaterThan(0);
      expect(st.errors).toBe(0);
      const fetched = svc.stats().download.count;
      await img.read(16 << 20, 1 << 20);
      expect(svc.stats().download.count).toBe(fetched);
      await img.close();
    } finally {
      await svc.close();
    }
  }, 120_000);
});

/** CRC-32C (Castagnoli) as the spec's U(c, bytes): the raw register, no final xor. */
function crc32cUpdate(crc: number, bytes: Uint8Array): number {
  let c = crc >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return c >>> 0;
}

/** A binary trace built from the spec's byte layout (§6.4), independent of our encoder. */
function handMadeTrace(records: { layer: number; offset: number; count: number }[]): Buffer {
  const body = Buffer.alloc(24 * records.length);
  records.forEach((r, i) => {
    const at = i * 24;
    body.writeUInt8('R'.charCodeAt(0), at); // op, then 3 pad bytes
    body.writeUInt32LE(r.layer, at + 4);
    body.writeBigUInt64LE(BigInt(r.count), at + 8);
    body.writeBigInt64LE(BigInt(r.offset), at + 16);
  });
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xc2ef1820, 0);
  head.writeBigUInt64LE(BigInt(body.length), 8);
  head.writeUInt32LE(crc32cUpdate(0, body), 16);
  return Buffer.concat([head, body]);
}

describe('a trace made by hand from the spec', () => {
  it('is replayed record by record, and our recorder writes the same layout', async () => {
    // The largest layer's LSMT file: its header, and a stretch of data far from what opening it fetched.
    const layer = remote.lowers.reduce((best, l, i) => (l.size > remote.lowers[best]!.size ? i : best), 0);
    const trace = path.join(tmp.dir, 'hand-trace');
    fs.writeFileSync(trace, handMadeTrace([{ layer, offset: 0, count: 8192 }, { layer, offset: 64 << 20, count: 1 << 20 }]));
    const cfg = remote.writeConfig(path.join(tmp.dir, 'hand'), { recordTracePath: trace });
    const svc = await ImageService.create({ global: globalConfig().file, dockerConfig: false });
    try {
      const img = await svc.openImage(cfg, { autoPrefetch: false });
      const opened = svc.stats().download.count;
      const st = await img.prefetch();
      expect(st).toMatchObject({ reads: 2, errors: 0, bytes: 8192 + (1 << 20) });
      expect(svc.stats().download.count).toBeGreaterThan(opened);
      await img.close();
    } finally {
      await svc.close();
    }
    // Our own recorder writes the same layout: a recorded trace decodes with the same header rules.
    const rec = path.join(tmp.dir, 'hand-rec');
    fs.writeFileSync(rec, '');
    const img = await openImage(remote.writeConfig(path.join(tmp.dir, 'hand-rec-img'), { recordTracePath: rec }), {
      global: globalConfig().file,
      dockerConfig: false,
    });
    await img.read(0, 4096);
    await img.close();
    const bytes = fs.readFileSync(rec);
    expect(bytes.readUInt32LE(0)).toBe(0xc2ef1820);
    const size = Number(bytes.readBigUInt64LE(8));
    expect(bytes.length).toBe(24 + size);
    expect(bytes.readUInt32LE(16)).toBe(crc32cUpdate(0, bytes.subarray(24)));
  }, 120_000);
});
