/**
 * The per-layer work of one manifest: dedup lookups for every layer up
 * front, then for each layer a download (bounded), a conversion strictly in
 * layer order (each on top of the ones below) and an upload overlapping
 * later conversions. The first failure aborts the others.
 *
 * A streamed source layer (the default) is handed to its conversion as soon
 * as its response starts; the download counts until its last byte arrives,
 * so a layer's download overlaps the apply of the layers below it (into a
 * bounded buffer) and its own apply.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError, isOverlaybdError } from '../errors.js';
import type { Logger } from '../log.js';
import { sha256File } from '../registry/index.js';
import type { LinkedAbort } from './abort.js';
import { uuidFromChainId } from './chain.js';
import { findConvertedLayer, type DedupContext, type ReusedLayer } from './dedup.js';
import type { LayerStream } from '../archive.js';
import { buildLayer, downloadConvertedLayer, downloadSourceLayer, fetchSourceStream } from './layer-engine.js';
import { concurrencyLimit } from './options.js';
import type { PipelineContext } from './pipeline.js';
import type { Stage } from './progress.js';
import type { Descriptor } from './spec.js';

export interface LayerRun {
  ctx: PipelineContext;
  dedup: DedupContext;
  log: Logger;
  /** Source layers, bottom first, with their diff_ids and chain IDs. */
  layers: Descriptor[];
  diffIds: string[];
  chains: string[];
  /** One work directory per layer. */
  dirs: string[];
  /** `linux/amd64 #3` and `layer 3 (sha256:...) of manifest sha256:...`. */
  name(i: number): string;
  what(i: number): string;
  /** Aborted by the first failure (its reason is that failure) or by the caller. */
  abort: LinkedAbort;
  /** Blobs this run saw committed in the target: the manifest check need not HEAD them. */
  confirmed: Set<string>;
  /** Milliseconds per stage, summed over layers. */
  timings: Record<Stage, number>;
}

export interface ConvertedLayer {
  /** The overlaybd blob on disk (absent for a reused layer nothing above needed). */
  file?: string;
  digest: string;
  size: number;
}

export interface LayersResult {
  layers: ConvertedLayer[];
  /** The previous conversion reused for each layer, if any. */
  reused: (ReusedLayer | undefined)[];
}

/** What a conversion reads: a staged file, a source stream, or nothing (reused, not needed). */
type Source = string | LayerStream | undefined;

/** A promise that never rejects unhandled; awaiting `p` still sees the error. */
function settled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

class LayerTasks {
  private readonly signal: AbortSignal;
  private lastConverted = -1;

  constructor(
    private readonly run: LayerRun,
    private readonly reused: (ReusedLayer | undefined)[],
  ) {
    this.signal = run.abort.signal;
    reused.forEach((r, i) => {
      if (r === undefined) this.lastConverted = i;
    });
  }

  /** Reports a stage's failure, aborts the other tasks and throws the error naming the layer. */
  private fail(i: number, stage: Stage, e: unknown): never {
    this.run.ctx.progress.update({ layer: this.run.name(i), stage, state: 'failed', note: isOverlaybdError(e) ? e.code : 'error' });
    const what = this.run.what(i);
    const err = isOverlaybdError(e)
      ? new OverlaybdError(e.code, `${stage} ${what}: ${e.message}`, { cause: e })
      : new OverlaybdError('CONVERT_FAILED', `${stage} ${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    this.run.abort.abort(err);
    throw err;
  }

  private async timed<T>(stage: Stage, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.run.timings[stage] += performance.now() - t0;
    }
  }

  /**
   * Hands `ready` the source tar, its stream, or the converted blob of a
   * reused layer a later conversion builds on (undefined when not needed);
   * settles once the last byte is received.
   */
  async download(i: number, ready: (s: Source) => void): Promise<void> {
    const { ctx, layers, diffIds, dirs } = this.run;
    const r = this.reused[i];
    const src = layers[i]!;
    const name = this.run.name(i);
    if (r && i >= this.lastConverted) {
      ctx.progress.update({ layer: name, stage: 'download', state: 'skipped', note: r.how });
      ready(undefined);
      return;
    }
    this.signal.throwIfAborted();
    await fs.promises.mkdir(dirs[i]!, { recursive: true });
    const total = r ? r.size : src.size;
    ctx.progress.update({ layer: name, stage: 'download', state: 'running', done: 0, total });
    const onBytes = (b: number) => ctx.progress.update({ layer: name, stage: 'download', state: 'running', done: b, total });
    const signal = this.signal;
    const what = this.run.what(i);
    try {
      await this.timed('download', async () => {
        if (r) ready(await downloadConvertedLayer(ctx.client, ctx.target, r, dirs[i]!, { onBytes, signal }));
        else if (ctx.opts.stageLayers) ready((await downloadSourceLayer(ctx.client, ctx.target, src, diffIds[i]!, dirs[i]!, { onBytes, signal, what })).file);
        else {
          const s = await fetchSourceStream(ctx.client, ctx.target, src, diffIds[i]!, { onBytes, signal, what });
          ready(s);
          await s.received;
        }
      });
      ctx.progress.update({ layer: name, stage: 'download', state: 'done', done: total, total, ...(r ? { note: 'reused' } : {}) });
    } catch (e) {
      return this.fail(i, 'download', e);
    }
  }

  /** Builds layer `i` on the layers below (`below` settles once they are built). */
  async convert(i: number, source: Promise<Source>, below: Promise<unknown>): Promise<ConvertedLayer> {
    const { ctx, chains, dirs } = this.run;
    const opts = ctx.opts;
    const r = this.reused[i];
    const name = this.run.name(i);
    const input = await source;
    await below;
    this.signal.throwIfAborted();
    if (r) {
      const file = typeof input === 'string' ? input : undefined;
      ctx.progress.update({ layer: name, stage: 'convert', state: 'skipped', note: r.how });
      return { ...(file ? { file } : {}), digest: r.digest, size: r.size };
    }
    const lowers: string[] = [];
    for (let j = 0; j < i; j++) lowers.push(path.join(dirs[j]!, 'overlaybd.commit'));
    ctx.progress.update({ layer: name, stage: 'convert', state: 'running', done: 0 });
    try {
      const out = await this.timed('convert', () =>
        buildLayer({
          dir: dirs[i]!,
          lowers,
          input: input!,
          bottom: i === 0,
          vsizeGB: opts.vsizeGB,
          sparse: !opts.disableSparse,
          uuid: uuidFromChainId(chains[i]!),
          ...(i > 0 ? { parentUuid: uuidFromChainId(chains[i - 1]!) } : {}),
          zfile: opts.zfile,
          apply: ctx.apply,
          onProgress: (b) => ctx.progress.update({ layer: name, stage: 'convert', state: 'running', done: b }),
          keep: opts.reserve,
        }),
      );
      const d = await sha256File(out);
      ctx.progress.update({ layer: name, stage: 'convert', state: 'done', done: d.size });
      this.run.log.info('layer.converted', { layer: i, chainId: chains[i], digest: d.digest, size: d.size });
      return { file: out, ...d };
    } catch (e) {
      return this.fail(i, 'convert', e);
    }
  }

  /** Pushes a converted layer and records it for dedup. */
  async upload(i: number, converted: Promise<ConvertedLayer>): Promise<void> {
    const { ctx, chains } = this.run;
    const target = ctx.target;
    const r = this.reused[i];
    const name = this.run.name(i);
    const c = await converted;
    if (r || ctx.opts.noUpload) {
      ctx.progress.update({ layer: name, stage: 'upload', state: 'skipped', note: r ? r.how : 'no-upload' });
      return;
    }
    this.signal.throwIfAborted();
    ctx.progress.update({ layer: name, stage: 'upload', state: 'running', done: 0, total: c.size });
    try {
      const signal = this.signal;
      const res = await this.timed('upload', () => ctx.client.pushBlob(target, { digest: c.digest, size: c.size }, { file: c.file! }, { signal }));
      if (res.status === 'uploaded' || res.status === 'mounted') this.run.confirmed.add(c.digest);
      ctx.progress.update({ layer: name, stage: 'upload', state: 'done', done: c.size, total: c.size, note: res.status });
    } catch (e) {
      return this.fail(i, 'upload', e);
    }
    await ctx.store
      .createLayerEntry({ host: target.registry, repo: target.repository, chainId: chains[i]!, dataDigest: c.digest, dataSize: c.size })
      .catch((e: unknown) => this.run.log.warn('dedup.record.failed', { layer: i, error: (e as Error).message }));
  }
}

/**
 * Converts (or reuses) every layer of a manifest and uploads the new ones.
 * Resolves once every task has settled; rejects with the first failure.
 */
export async function convertLayers(run: LayerRun): Promise<LayersResult> {
  const { ctx, chains, log } = run;
  const lookups = concurrencyLimit(ctx.opts.downloadConcurrency);
  const reused = await Promise.all(chains.map((c) => lookups(() => findConvertedLayer(run.dedup, c))));
  for (const [i, r] of reused.entries()) {
    if (r) log.info('layer.reused', { layer: i, chainId: chains[i], digest: r.digest, how: r.how, ...(r.from ? { from: r.from } : {}) });
    if (r?.how === 'mounted') run.confirmed.add(r.digest);
  }

  const tasks = new LayerTasks(run, reused);
  const downloads = concurrencyLimit(ctx.opts.downloadConcurrency);
  const sources: Promise<Source>[] = [];
  const downloaded: Promise<void>[] = [];
  const converted: Promise<ConvertedLayer>[] = [];
  const uploaded: Promise<void>[] = [];
  for (let i = 0; i < run.layers.length; i++) {
    // The source is ready before the download settles (a stream); a download failing first rejects it.
    let ready!: (s: Source) => void;
    let lost!: (e: unknown) => void;
    sources[i] = settled(new Promise<Source>((res, rej) => ((ready = res), (lost = rej))));
    downloaded[i] = settled(downloads(() => tasks.download(i, ready)).catch((e: unknown) => {
      lost(e);
      throw e;
    }));
    converted[i] = settled(tasks.convert(i, sources[i]!, i > 0 ? converted[i - 1]! : Promise.resolve()));
    uploaded[i] = settled(tasks.upload(i, converted[i]!));
  }
  const results = await Promise.allSettled([...downloaded, ...converted, ...uploaded]);
  const signal = run.abort.signal;
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new OverlaybdError('CONVERT_FAILED', String(signal.reason));
  const bad = results.find((x) => x.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
  return { layers: await Promise.all(converted), reused };
}
