/**
 * The Prometheus exporter (§6.5) fed by a snapshot function over plain
 * counters: scraped with fetch, parsed, names, labels and values checked;
 * a taken port is a clear EBUSY naming it.
 */
import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OverlaybdError } from '../lib/errors.js';
import { startExporter, type Exporter, type IoStatsSnapshot } from '../lib/service/metrics.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses text format 0.0.4: `# HELP`/`# TYPE` lines and `name{l="v",...} value` samples. */
function parse(text: string): { samples: Sample[]; types: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types[t[1]!] = t[2]!;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): number {
  const s = samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (s.length !== 1) throw new Error(`${s.length} samples of ${name} ${JSON.stringify(labels)}`);
  return s[0]!.value;
}

const stats = (): IoStatsSnapshot => ({ pread: { count: 0, bytes: 0, maxLatencyUs: 0 }, download: { count: 0, bytes: 0, maxLatencyUs: 0 } });

let open: Exporter[] = [];
afterEach(async () => {
  await Promise.all(open.map((e) => e.close()));
  open = [];
});

async function waitFor(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('exporter', () => {
  it('serves upstream\'s metrics with rates over the update interval', async () => {
    const cur = stats();
    const calls: number[] = [];
    const snapshot = () => {
      calls.push(performance.now());
      const s = structuredClone(cur);
      // maxLatencyUs is per window: the service resets it on every snapshot.
      cur.pread.maxLatencyUs = 0;
      cur.download.maxLatencyUs = 0;
      return s;
    };
    // Counters before start are history: the first interval's rates count only what follows.
    cur.pread = { count: 5, bytes: 5 * 4096, maxLatencyUs: 9 };
    const ex = await startExporter({ port: 0, uriPrefix: '/metrics', updateIntervalUs: 1_000_000, host: '127.0.0.1', node: 'n1' }, snapshot);
    open.push(ex);
    expect(ex.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(calls).toHaveLength(1);

    let res = await fetch(ex.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    let { samples, types } = parse(await res.text());
    expect(types).toEqual({
      OverlayBD_Alive: 'gauge',
      OverlayBD_Read_Throughtput: 'gauge',
      OverlayBD_QPS: 'gauge',
      OverlayBD_MaxLatency: 'gauge',
      OverlayBD_Count: 'gauge',
    });
    expect(find(samples, 'OverlayBD_Alive', { node: 'n1' })).toBe(1);
    expect(find(samples, 'OverlayBD_Count', { node: 'n1', type: 'pread' })).toBe(5 * 4096);
    expect(find(samples, 'OverlayBD_QPS', { node: 'n1', type: 'pread', mode: '' })).toBe(0);

    cur.pread = { count: 105, bytes: 5 * 4096 + 100 * 4096, maxLatencyUs: 1234 };
    cur.download = { count: 3, bytes: 3 * 262144, maxLatencyUs: 50_000 };
    await waitFor(() => calls.length >= 2);
    const seconds = (calls[1]! - calls[0]!) / 1000;
    res = await fetch(ex.url);
    ({ samples } = parse(await res.text()));
    expect(samples).toHaveLength(1 + 4 * 2);
    for (const s of samples) {
      expect(Object.keys(s.labels).sort()).toEqual(
        s.name === 'OverlayBD_Alive' ? ['node'] : s.name === 'OverlayBD_Count' ? ['node', 'type'] : ['mode', 'node', 'type'],
      );
    }
    // The exporter times its own snapshots: within a millisecond of ours, a ratio within 0.1%.
    const close = (name: string, type: string, expected: number) =>
      expect(find(samples, name, { node: 'n1', type, mode: '' }) / expected).toBeCloseTo(1, 3);
    close('OverlayBD_Read_Throughtput', 'pread', (100 * 4096) / seconds);
    close('OverlayBD_QPS', 'pread', 100 / seconds);
    close('OverlayBD_Read_Throughtput', 'download', (3 * 262144) / seconds);
    close('OverlayBD_QPS', 'download', 3 / seconds);
    expect(find(samples, 'OverlayBD_MaxLatency', { type: 'pread' })).toBe(1234);
    expect(find(samples, 'OverlayBD_MaxLatency', { type: 'download' })).toBe(50_000);
    expect(find(samples, 'OverlayBD_Count', { type: 'pread' })).toBe(105 * 4096);
    expect(find(samples, 'OverlayBD_Count', { type: 'download' })).toBe(3 * 262144);

    // A quiet interval: rates and the max latency fall to zero, counts stay.
    await waitFor(() => calls.length >= 3);
    ({ samples } = parse(await (await fetch(ex.url)).text()));
    expect(find(samples, 'OverlayBD_QPS', { type: 'pread' })).toBe(0);
    expect(find(samples, 'OverlayBD_Read_Throughtput', { type: 'download' })).toBe(0);
    expect(find(samples, 'OverlayBD_MaxLatency', { type: 'download' })).toBe(0);
    expect(find(samples, 'OverlayBD_Count', { type: 'pread' })).toBe(105 * 4096);
  });

  it('serves only under uriPrefix, and the host name is the default node', async () => {
    const ex = await startExporter({ port: 0, uriPrefix: '/obd/metrics', updateIntervalUs: 60_000_000, host: '127.0.0.1' }, stats);
    open.push(ex);
    const base = new URL(ex.url);
    expect((await fetch(new URL('/metrics', base))).status).toBe(404);
    expect((await fetch(new URL('/obd/metricsx', base))).status).toBe(404);
    expect((await fetch(new URL('/obd/metrics/', base))).status).toBe(200);
    expect((await fetch(ex.url, { method: 'POST' })).status).toBe(405);
    const { samples } = parse(await (await fetch(ex.url)).text());
    const os = await import('node:os');
    expect(find(samples, 'OverlayBD_Alive', {})).toBe(1);
    expect(samples.find((s) => s.name === 'OverlayBD_Alive')!.labels.node).toBe(os.hostname());
  });

  it('a port in use is EBUSY naming the port', async () => {
    const taken = http.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const err = await startExporter({ port, uriPrefix: '/metrics', updateIntervalUs: 1_000_000, host: '127.0.0.1' }, stats).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OverlaybdError);
      expect(err).toMatchObject({ code: 'EBUSY', message: expect.stringContaining(`port ${port} is already in use`) });
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('close frees the port and stops taking snapshots', async () => {
    let calls = 0;
    const counted = () => (calls++, stats());
    const first = await startExporter({ port: 0, uriPrefix: '/metrics', updateIntervalUs: 10_000, host: '127.0.0.1' }, counted);
    const port = Number(new URL(first.url).port);
    await first.close();
    const after = calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(after);
    const again = await startExporter({ port, uriPrefix: '/metrics', updateIntervalUs: 1_000_000, host: '127.0.0.1' }, stats);
    open.push(again);
    expect((await fetch(again.url)).status).toBe(200);
  });

  it('rejects bad options', async () => {
    await expect(startExporter({ port: 70000, uriPrefix: '/m', updateIntervalUs: 1e6 }, stats)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('70000') });
    await expect(startExporter({ port: 0, uriPrefix: 'm', updateIntervalUs: 1e6 }, stats)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('uriPrefix') });
    await expect(startExporter({ port: 0, uriPrefix: '/m', updateIntervalUs: 0 }, stats)).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
