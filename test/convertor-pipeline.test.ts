/**
 * Scheduling of the convertor pipeline, with the apply step replaced by a
 * recording fake: layers convert strictly in order, uploads overlap later
 * conversions, --concurrency-limit bounds platforms converted at once; and
 * the progress renderers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convert, logProgress, ttyProgress, type ApplyFn, type ProgressEvent } from '../lib/convertor/index.js';
import { openDedupStore } from '../lib/convertor/db/index.js';
import { createLogger, silentLogger } from '../lib/log.js';
import { RegistryClient } from '../lib/registry/index.js';
import { buildImage, buildIndex, writeOciLayout, type TarEntry } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

let work: string;
let reg: TestRegistry;

const layer = (n: number): TarEntry[] => [{ path: `f${n}`, content: `layer ${n}\n` }];
const images = ['amd64', 'arm64', 'riscv64'].map((a) => buildImage({ architecture: a, layers: [layer(0), layer(1), layer(2), layer(3)] }));

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-convertor-pipeline-'));
  const layout = path.join(work, 'layout');
  writeOciLayout(layout, { multi: { index: buildIndex(images), images }, v1: images[0]! });
  reg = await startRegistry({ mode: 'plain' });
  await skopeoCopy(layout, 'multi', `${reg.host}/p/multi:multi`);
  await skopeoCopy(layout, 'v1', `${reg.host}/p/one:v1`);
});

afterAll(async () => {
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** An apply that records what it was asked and sleeps, without touching the filesystem. */
function fakeApply(delayFor: (layerCount: number) => number) {
  const calls: { lowers: number; at: number; end?: number; key: string }[] = [];
  let active = 0;
  let peak = 0;
  const fn: ApplyFn = async (req) => {
    const key = path.basename(path.dirname(path.dirname(req.upper.data)));
    const call: { lowers: number; at: number; end?: number; key: string } = { lowers: req.lowers.length, at: performance.now(), key };
    calls.push(call);
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, delayFor(req.lowers.length)));
    active--;
    call.end = performance.now();
  };
  return { fn, calls, peak: () => peak };
}

describe('pipeline scheduling', () => {
  it('converts layers strictly in order and uploads earlier layers while later ones convert', async () => {
    const fake = fakeApply((below) => (below === 3 ? 400 : 20));
    const events: (ProgressEvent & { t: number })[] = [];
    const c = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
    await convert(
      { repository: `${reg.host}/p/one`, inputTag: 'v1', overlaybdTag: 'obd', vsizeGB: 1, workDir: path.join(work, 'w1') },
      {
        client: c,
        store: await openDedupStore({ dbType: 'none' }),
        logger: silentLogger,
        apply: fake.fn,
        progress: { update: (e) => events.push({ ...e, t: performance.now() }), close() {} },
      },
    );
    c.close();
    expect(fake.calls.map((x) => x.lowers)).toEqual([0, 1, 2, 3]);
    for (let i = 1; i < fake.calls.length; i++) expect(fake.calls[i]!.at).toBeGreaterThanOrEqual(fake.calls[i - 1]!.end!);
    const uploaded0 = events.find((e) => e.layer === 'default #0' && e.stage === 'upload' && e.state === 'done')!;
    expect(uploaded0).toBeDefined();
    // Layer 0 is in the registry before the last layer's (slow) apply ends.
    expect(uploaded0.t).toBeLessThan(fake.calls[3]!.end!);
  });

  it('bounds the platforms converted at once by --concurrency-limit', async () => {
    for (const [limit, want] of [
      [1, 1],
      [2, 2],
      [0, 3],
    ] as const) {
      const fake = fakeApply(() => 60);
      const c = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
      const r = await convert(
        {
          repository: `${reg.host}/p/multi`,
          inputTag: 'multi',
          overlaybdTag: `obd${limit}`,
          vsizeGB: 1,
          concurrency: limit,
          noUpload: true,
          workDir: path.join(work, `w-${limit}`),
        },
        { client: c, store: await openDedupStore({ dbType: 'none' }), logger: silentLogger, apply: fake.fn },
      );
      c.close();
      expect(r.manifests).toHaveLength(3);
      expect(fake.calls).toHaveLength(12);
      expect(fake.peak()).toBe(want);
    }
  });
});

describe('failure of one platform', () => {
  it('stops the other platforms and pushes nothing after the error', async () => {
    const calls: { key: string; at: number }[] = [];
    const apply: ApplyFn = async (req) => {
      const key = path.basename(path.dirname(path.dirname(req.upper.data)));
      calls.push({ key, at: performance.now() });
      if (key.includes('amd64')) {
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('injected apply failure');
      }
      await new Promise((r) => setTimeout(r, 100));
    };
    const c = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
    const pushed: { ref: string; at: number }[] = [];
    const realPush = c.pushManifest.bind(c);
    c.pushManifest = (async (...args: Parameters<typeof c.pushManifest>) => {
      pushed.push({ ref: String(args[3]), at: performance.now() });
      return realPush(...args);
    }) as typeof c.pushManifest;
    try {
      await expect(
        convert(
          { repository: `${reg.host}/p/multi`, inputTag: 'multi', overlaybdTag: 'failing', vsizeGB: 1, concurrency: 0, workDir: path.join(work, 'w-fail') },
          { client: c, store: await openDedupStore({ dbType: 'none' }), logger: silentLogger, apply },
        ),
      ).rejects.toThrow(/injected apply failure/);
      const failedAt = performance.now();
      const seen = calls.length;
      // Without the shared abort the other platforms would go on converting
      // and push their manifests well within this window.
      await new Promise((r) => setTimeout(r, 800));
      expect(calls.length).toBe(seen);
      expect(calls.filter((x) => x.at > failedAt)).toEqual([]);
      // Each surviving platform stopped after the layer it was converting.
      for (const arch of ['arm64', 'riscv64']) expect(calls.filter((x) => x.key.includes(arch)).length).toBeLessThan(4);
      expect(pushed).toEqual([]);
      expect(await c.headManifest(`${reg.host}/p/multi:failing`)).toBeUndefined();
    } finally {
      c.close();
    }
  });
});

describe('progress', () => {
  function sink(isTTY: boolean) {
    let text = '';
    const stream = new Writable({
      write(c: Buffer, _e, cb) {
        text += c.toString();
        cb();
      },
    }) as unknown as NodeJS.WriteStream;
    Object.assign(stream, { isTTY, columns: 100 });
    return { stream, text: () => text };
  }

  it('draws one row per layer with three stages on a terminal', () => {
    const s = sink(true);
    const p = ttyProgress(s.stream);
    p.update({ layer: 'linux/amd64 #0', stage: 'download', state: 'running', done: 512, total: 1024 });
    p.update({ layer: 'linux/amd64 #1', stage: 'download', state: 'done', done: 2048, total: 2048 });
    p.update({ layer: 'linux/amd64 #1', stage: 'upload', state: 'failed', note: 'REGISTRY_ERROR' });
    p.close();
    const lines = s.text().split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('linux/amd64 #0  [######------] 512');
    expect(lines[1]).toMatch(/linux\/amd64 #1 {2}done 2K .*FAILED REGISTRY_ERROR/);
  });

  it('logs stage start and end as JSON lines elsewhere', () => {
    const s = sink(false);
    const p = logProgress(createLogger({ stream: s.stream, json: true }));
    p.update({ layer: 'x #0', stage: 'convert', state: 'running', done: 0 });
    p.update({ layer: 'x #0', stage: 'convert', state: 'running', done: 10 });
    p.update({ layer: 'x #0', stage: 'convert', state: 'done', done: 99 });
    const recs = s
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => r.event)).toEqual(['layer.convert.start', 'layer.convert.done']);
    expect(recs[1]).toMatchObject({ layer: 'x #0', bytes: 99, level: 'info' });
    expect(typeof recs[1]!.ms).toBe('number');
  });
});
