/**
 * Lazy image figures on the converted bookworm image (lz4 ZFile layer) in a
 * local docker-registry. Baselines measured in the same run:
 *  - bare ranged GETs of random 4 KiB ranges of the largest layer blob, with
 *    Node (our registry transport, one keep-alive connection) and with curl (one process,
 *    one reused connection): p50/p99 latency;
 *  - random 4 KiB reads of the same image from the downloaded layer files
 *    (openImage of a local config.v1.json): p50/p99 and reads/s;
 *  - full-blob download throughput with `curl -o` and with our registry client.
 * Ours, through the image service: cold remote reads, warm (cached) reads
 * after a restart, background download (against `skopeo copy` of the image
 * too), and the bytes and requests that reading bash and its libraries
 * fetches, without a trace and with a replayed one.
 * BENCH_LAZY_READS (default 1000) sets the number of random reads.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadImageConfig } from '../lib/config.js';
import { openImage } from '../lib/image.js';
import { ImageService } from '../lib/service/image-service.js';
import { inspectLayer } from '../lib/layer.js';
import { readBody, Transport } from '../lib/registry/transport.js';
import { Prng } from '../test/helpers/prng.js';
import { registryClient, remoteBookworm, writeGlobalConfig, type RemoteBookworm, type RemoteLayer } from '../test/helpers/remote-image.js';

const exec = promisify(execFile);
const PAGE = 4096;

export interface Latency {
  p50Us: number;
  p99Us: number;
  /** Reads per second, one at a time. */
  perSecond: number;
}

export interface LazyBenchContext {
  rb: RemoteBookworm;
  /** Scratch directory (removed at the end). */
  work: string;
  /** The largest layer and its blob URL. */
  blob: RemoteLayer;
  blobUrl: string;
  /** Random 4 KiB-aligned device offsets inside data the layers map (same for every device-read figure). */
  deviceOffsets: number[];
}

// ---- ours: the image service ---------------------------------------------

/** A global config in its own dir: a fresh cache unless `cacheDir` is shared. */
function globalConfig(ctx: LazyBenchContext, name: string, extra: Record<string, unknown> = {}, cacheDir?: string): string {
  const dir = path.join(ctx.work, name);
  return writeGlobalConfig(dir, { enableAudit: false, ...extra }, cacheDir).file;
}

/** Latency of every read, and of the reads that went to the registry (cache misses: a refill unit each). */
export interface RemoteLatency extends Latency {
  misses: number;
  missP50Us?: number;
  missP99Us?: number;
}

async function timedReads(ctx: LazyBenchContext, global: string, name: string, countMisses: boolean): Promise<RemoteLatency> {
  const svc = await ImageService.create({ global, dockerConfig: false });
  try {
    const img = await svc.openImage(ctx.rb.writeConfig(path.join(ctx.work, name)));
    try {
      const missUs: number[] = [];
      const fetches = () => (countMisses ? svc.stats().download.count : 0);
      const all = await timeEach(ctx.deviceOffsets, async (o) => {
        const before = fetches();
        const t = performance.now();
        const b = await img.read(o, PAGE);
        if (b.length !== PAGE) throw new Error(`short read at ${o}`);
        if (fetches() !== before) missUs.push((performance.now() - t) * 1000);
      });
      if (missUs.length === 0) return { ...all, misses: countMisses ? 0 : svc.stats().download.count };
      const m = latency(missUs, 1);
      return { ...all, misses: missUs.length, missP50Us: m.p50Us, missP99Us: m.p99Us };
    } finally {
      await img.close();
    }
  } finally {
    await svc.close();
  }
}

const coldCache = (ctx: LazyBenchContext) => path.join(ctx.work, 'cold', 'cache');

/** Random 4 KiB reads at ctx.deviceOffsets through the image service, empty cache. */
export async function oursColdRemote(ctx: LazyBenchContext): Promise<RemoteLatency> {
  return timedReads(ctx, globalConfig(ctx, 'cold'), 'cold-image', true);
}

/** The same reads again from a restarted service over the cache the cold run filled. */
export async function oursWarm(ctx: LazyBenchContext): Promise<RemoteLatency> {
  return timedReads(ctx, globalConfig(ctx, 'warm', {}, coldCache(ctx)), 'warm-image', false);
}

/** Background download of every layer (download.enable, no delay, a rate limit far above the link): MB/s of layer bytes. */
export async function oursDownload(ctx: LazyBenchContext): Promise<{ MBps: number; seconds: number }> {
  const global = globalConfig(ctx, 'download', { download: { enable: true, delay: 0, delayExtra: 0, maxMBps: 100000 } });
  const svc = await ImageService.create({ global, dockerConfig: false });
  try {
    const t = performance.now();
    const img = await svc.openImage(ctx.rb.writeConfig(path.join(ctx.work, 'download-image')));
    try {
      if (!(await img.waitDownloads(600_000))) throw new Error('download did not finish in 10 minutes');
      const states = img.downloadStates();
      if (!states.every((s) => s === 'done')) throw new Error(`download states: ${states.join(', ')}`);
      const seconds = (performance.now() - t) / 1000;
      const MB = ctx.rb.lowers.reduce((a, l) => a + l.size, 0) / 2 ** 20;
      return { MBps: Number((MB / seconds).toFixed(1)), seconds: Number(seconds.toFixed(2)) };
    } finally {
      await img.close();
    }
  } finally {
    await svc.close();
  }
}

/** What starting /bin/bash reads: the binary, the loader and the libraries it links. */
export const BASH_FILES = [
  '/usr/bin/bash',
  '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  '/usr/lib/x86_64-linux-gnu/libc.so.6',
  '/usr/lib/x86_64-linux-gnu/libtinfo.so.6',
  '/etc/ld.so.cache',
];

export interface BashFetch {
  seconds: number;
  fetchedMB: number;
  requests: number;
  /** Registry requests while bash's files were read (after any replay). */
  requestsDuringStart: number;
}

async function bashRun(ctx: LazyBenchContext, name: string, extra: Record<string, unknown>, record?: string): Promise<BashFetch> {
  const svc = await ImageService.create({ global: globalConfig(ctx, name), dockerConfig: false });
  try {
    const t = performance.now();
    const img = await svc.openImage(ctx.rb.writeConfig(path.join(ctx.work, `${name}-image`), extra), { autoPrefetch: true });
    try {
      if (!record) await img.prefetch();
      const before = svc.stats().download.count;
      const st = await img.prefetchFiles(BASH_FILES, 1);
      if (st.errors) throw new Error(`reading bash's files: ${st.errors} errors`);
      if (record) await img.finishRecording();
      const seconds = (performance.now() - t) / 1000;
      const d = svc.stats().download;
      return { seconds: Number(seconds.toFixed(3)), fetchedMB: Number((d.bytes / 2 ** 20).toFixed(2)), requests: d.count, requestsDuringStart: d.count - before };
    } finally {
      await img.close();
    }
  } finally {
    await svc.close();
  }
}

/** Reading bash's files on a cold cache: without a trace, then recording one, then replaying it on a fresh cache. */
export async function oursBashFetch(ctx: LazyBenchContext): Promise<{ plain: BashFetch; replayed: BashFetch }> {
  const plain = await bashRun(ctx, 'bash-plain', {});
  const trace = path.join(ctx.work, 'bash.trace');
  fs.writeFileSync(trace, '');
  await bashRun(ctx, 'bash-record', { recordTracePath: trace }, trace);
  const replayed = await bashRun(ctx, 'bash-replay', { recordTracePath: trace });
  return { plain, replayed };
}

/** `skopeo copy` of the whole image (every layer blob) from the registry into a dir: MB/s of layer bytes. */
async function skopeoCopyMBps(ctx: LazyBenchContext): Promise<number> {
  const dest = path.join(ctx.work, 'skopeo');
  const t = performance.now();
  await exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${ctx.rb.registry.host}/${ctx.rb.repo}:${ctx.rb.tag}`, `dir:${dest}`], { maxBuffer: 16 << 20 });
  const seconds = (performance.now() - t) / 1000;
  return ctx.rb.lowers.reduce((a, l) => a + l.size, 0) / 2 ** 20 / seconds;
}

// ---- baselines ------------------------------------------------------------

function latency(samplesUs: number[], totalMs: number): Latency {
  const s = [...samplesUs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50Us: Math.round(at(0.5)), p99Us: Math.round(at(0.99)), perSecond: Math.round(s.length / (totalMs / 1000)) };
}

/** Times each call, one after another. */
async function timeEach(offsets: number[], read: (offset: number) => Promise<void>): Promise<Latency> {
  const us: number[] = [];
  const t0 = performance.now();
  for (const o of offsets) {
    const t = performance.now();
    await read(o);
    us.push((performance.now() - t) * 1000);
  }
  return latency(us, performance.now() - t0);
}

async function nodeRanges(url: string, offsets: number[]): Promise<Latency> {
  const transport = new Transport({ plainHttp: true, maxSockets: 1 });
  try {
    const get = async (o: number) => {
      const res = await transport.request({ method: 'GET', url: new URL(url), headers: { range: `bytes=${o}-${o + PAGE - 1}` } });
      const body = await readBody(res);
      if (res.status !== 206 || body.length !== PAGE) throw new Error(`GET ${url} range at ${o}: ${res.status}, ${body.length} bytes`);
    };
    for (const o of offsets.slice(0, 50)) await get(o);
    return await timeEach(offsets, get);
  } finally {
    await transport.close();
  }
}

/** One curl process, one transfer per range (`next`), so the connection is reused; times from curl's own clock. */
/** `connections`: new connections during the measured reads (0: all reused the warm-up one). */
async function curlRanges(url: string, offsets: number[], work: string): Promise<Latency & { connections: number }> {
  const entry = (o: number) => `url = "${url}"\nrange = "${o}-${o + PAGE - 1}"\noutput = "/dev/null"\nwrite-out = "%{http_code} %{size_download} %{time_total} %{num_connects}\\n"\n`;
  const cfg = path.join(work, 'curl.cfg');
  fs.writeFileSync(cfg, [...offsets.slice(0, 50), ...offsets].map(entry).join('next\n'));
  const t0 = performance.now();
  const { stdout } = await exec('curl', ['-s', '-K', cfg], { maxBuffer: 64 << 20 });
  const totalMs = performance.now() - t0;
  const lines = stdout.trim().split('\n').slice(50);
  let connections = 0;
  const us = lines.map((l) => {
    const [code, size, seconds, connects] = l.split(' ');
    if (code !== '206' || Number(size) !== PAGE) throw new Error(`curl range of ${url}: ${l}`);
    connections += Number(connects);
    return Number(seconds) * 1e6;
  });
  // curl's own per-transfer times; the rate includes starting the process.
  return { ...latency(us, totalMs), connections };
}

async function localReads(ctx: LazyBenchContext): Promise<Latency> {
  const cfg = path.join(ctx.work, 'local', 'config.v1.json');
  fs.mkdirSync(path.dirname(cfg), { recursive: true });
  fs.writeFileSync(cfg, JSON.stringify({ lowers: ctx.rb.localLayers.map((file) => ({ file })) }));
  const { spec } = await loadImageConfig(cfg);
  const img = await openImage(spec);
  try {
    for (const o of ctx.deviceOffsets.slice(0, 50)) await img.read(o, PAGE);
    return await timeEach(ctx.deviceOffsets, async (o) => {
      const b = await img.read(o, PAGE);
      if (b.length !== PAGE) throw new Error(`short read at ${o}`);
    });
  } finally {
    await img.close();
  }
}

async function curlDownload(url: string, file: string): Promise<number> {
  const t = performance.now();
  await exec('curl', ['-s', '-f', '-o', file, url]);
  return performance.now() - t;
}

/** Device offsets spread over the data every layer maps (index entries are in 512-byte sectors). */
async function mappedOffsets(layers: string[], n: number, r: Prng): Promise<number[]> {
  const extents: { start: number; sectors: number }[] = [];
  for (const f of layers) {
    for (const e of (await inspectLayer(f)).entries) if (!e.zeroed) extents.push({ start: e.offset, sectors: e.length });
  }
  const total = extents.reduce((a, e) => a + e.sectors, 0);
  return Array.from({ length: n }, () => {
    let s = r.int(total);
    const e = extents.find((x) => (s < x.sectors ? true : ((s -= x.sectors), false)))!;
    return Math.floor(((e.start + s) * 512) / PAGE) * PAGE;
  });
}

const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? Number((a / b).toFixed(2)) : undefined);

export async function run(): Promise<Record<string, number | string>> {
  const n = Number(process.env.BENCH_LAZY_READS ?? 1000);
  const rb = await remoteBookworm({ compression: 'lz4' });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-lazy-'));
  try {
    const big = rb.lowers.reduce((a, l) => (l.size > a.size ? l : a));
    const blobUrl = `${rb.repoBlobUrl}/${big.digest}`;
    const r = new Prng(42);
    const blobOffsets = Array.from({ length: n }, () => r.int(Math.floor(big.size / PAGE)) * PAGE);
    const ctx: LazyBenchContext = { rb, work, blob: big, blobUrl, deviceOffsets: await mappedOffsets(rb.localLayers, n, r) };

    const node = await nodeRanges(blobUrl, blobOffsets);
    const curl = await curlRanges(blobUrl, blobOffsets, work);
    const local = await localReads(ctx);
    const curlMs = await curlDownload(blobUrl, path.join(work, 'curl.blob'));
    const client = registryClient(rb.registry);
    let t = performance.now();
    await client.fetchBlobToFile({ registry: rb.registry.host, repository: rb.repo }, big, path.join(work, 'client.blob'));
    const clientMs = performance.now() - t;
    await client.close();
    const MB = big.size / 2 ** 20;
    const curlMBps = MB / (curlMs / 1000);
    const skopeoMBps = await skopeoCopyMBps(ctx);

    const cold = await oursColdRemote(ctx);
    const warm = await oursWarm(ctx);
    const download = await oursDownload(ctx);
    const bash = await oursBashFetch(ctx);

    const out: Record<string, number | string | undefined> = {
      'layer blob MB': Number(MB.toFixed(1)),
      'random reads': n,
      'GET 4K node p50 us': node.p50Us,
      'GET 4K node p99 us': node.p99Us,
      'GET 4K node reads/s': node.perSecond,
      'GET 4K curl p50 us': curl.p50Us,
      'GET 4K curl p99 us': curl.p99Us,
      'GET 4K curl new connections (measured)': curl.connections,
      'local 4K read p50 us': local.p50Us,
      'local 4K read p99 us': local.p99Us,
      'local 4K reads/s': local.perSecond,
      'curl -o blob MB/s': Number(curlMBps.toFixed(1)),
      'registry client blob MB/s': Number((MB / (clientMs / 1000)).toFixed(1)),
      'ours cold 4K p50 us': cold?.p50Us,
      'ours cold 4K p99 us': cold?.p99Us,
      'ours cold reads that fetched (misses)': cold?.misses,
      'ours cold miss p50 us': cold?.missP50Us,
      'ours cold miss p99 us': cold?.missP99Us,
      'ours cold miss p50 / node GET p50': ratio(cold?.missP50Us, node.p50Us),
      'ours cold miss p99 / node GET p99': ratio(cold?.missP99Us, node.p99Us),
      'ours cold p50 / node GET p50 (all reads)': ratio(cold?.p50Us, node.p50Us),
      'ours warm reads that fetched': warm?.misses,
      'ours warm 4K p50 us': warm?.p50Us,
      'ours warm 4K p99 us': warm?.p99Us,
      'ours warm 4K reads/s': warm?.perSecond,
      'ours warm p50 / local p50': ratio(warm?.p50Us, local.p50Us),
      'ours warm reads/s / local reads/s': ratio(warm?.perSecond, local.perSecond),
      'skopeo copy MB/s': Number(skopeoMBps.toFixed(1)),
      'ours download MB/s': download?.MBps,
      'ours download / skopeo copy': ratio(download?.MBps, skopeoMBps),
      'ours download / curl -o': ratio(download?.MBps, curlMBps),
      'bash start, no trace: s': bash?.plain.seconds,
      'bash start, no trace: fetched MB': bash?.plain.fetchedMB,
      'bash start, no trace: requests': bash?.plain.requests,
      'bash start, replayed trace: s': bash?.replayed.seconds,
      'bash start, replayed trace: fetched MB': bash?.replayed.fetchedMB,
      'bash start, replayed trace: requests': bash?.replayed.requests,
      'bash start, replayed trace: requests while reading bash': bash?.replayed.requestsDuringStart,
      'image blobs MB': Number((rb.lowers.reduce((a, l) => a + l.size, 0) / 2 ** 20).toFixed(1)),
    };
    return Object.fromEntries(Object.entries(out).filter((e): e is [string, number | string] => e[1] !== undefined));
  } finally {
    await rb.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
