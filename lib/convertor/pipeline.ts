/**
 * Converts one platform manifest. Manifest-level dedup first (a re-tag);
 * else per layer: dedup lookup, download, conversion strictly in layer
 * order, uploads overlapping later conversions; then the config (diff_ids
 * = overlaybd blob digests) and the manifest, pushed only once every blob
 * it names is in the repository with the right size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError, isOverlaybdError } from '../errors.js';
import type { Logger } from '../log.js';
import { sha256Digest, sha256File, type Descriptor as RegistryDescriptor, type RegistryClient } from '../registry/index.js';
import type { ApplyFn } from './apply.js';
import { chainIds, uuidFromChainId } from './chain.js';
import type { DedupStore } from './db/index.js';
import { findConvertedLayer, findConvertedManifest, manifestBlobsPresent, type DedupContext, type ReusedLayer, type Target } from './dedup.js';
import { buildLayer, downloadConvertedLayer, downloadSourceLayer } from './layer-engine.js';
import { ARTIFACT_TYPE_NATIVE, layerAnnotations, outputTypes } from './media.js';
import { concurrencyLimit, type ConvertOptions } from './options.js';
import type { ProgressSink, Stage } from './progress.js';
import { ImageConfigSchema, ManifestSchema, marshalConfig, marshalManifest, parseDocument, type Descriptor } from './spec.js';

export interface PipelineContext {
  opts: ConvertOptions;
  client: RegistryClient;
  store: DedupStore;
  target: Target;
  logger: Logger;
  progress: ProgressSink;
  apply: ApplyFn;
  signal?: AbortSignal;
}

export interface LayerReport {
  source: string;
  /** Chain ID of the source stack (not computed for a re-tag). */
  chainId?: string;
  digest: string;
  size: number;
  /** converted here, found in the repository, or mounted from another one. */
  how: 'converted' | 'exists' | 'mounted';
}

export interface ManifestReport {
  source: RegistryDescriptor;
  output: RegistryDescriptor;
  /** `converted`, or `retagged` when a previous conversion was reused whole. */
  how: 'converted' | 'retagged';
  layers: LayerReport[];
  /** Milliseconds spent in each stage, summed over layers. */
  timings: Record<Stage, number>;
}

export interface ManifestJob {
  source: RegistryDescriptor;
  bytes: Buffer;
  /** Push under this tag (a top-level manifest), else by digest only. */
  tag?: string;
  workDir: string;
  /** Names the platform in logs and progress, e.g. `linux/amd64`. */
  label: string;
}

/** A promise that never rejects unhandled; awaiting `p` still sees the error. */
function settled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

export async function convertManifest(ctx: PipelineContext, job: ManifestJob): Promise<ManifestReport> {
  const { opts, client, target, logger } = ctx;
  const log = logger.child({ manifest: job.source.digest, platform: job.label });
  const types = outputTypes(opts.oci);
  const manifest = parseDocument(ManifestSchema, job.bytes, `manifest ${job.source.digest}`);
  const srcRepo = target;
  const layers = manifest.layers ?? [];
  if (layers.length === 0) throw new OverlaybdError('CONVERT_FAILED', `manifest ${job.source.digest} has no layers`);
  const dedup: DedupContext = { client, store: ctx.store, target, logger: log, readOnly: opts.noUpload };
  const timings: Record<Stage, number> = { download: 0, convert: 0, upload: 0 };

  // 1. The whole manifest converted before: re-tag it. (Not with --referrer, whose output differs.)
  if (!opts.noUpload && !opts.referrer) {
    const prev = await findConvertedManifest(dedup, job.source.digest, types.manifest, job.tag);
    if (prev) {
      const output = job.tag && !prev.tagged ? await client.pushManifest(target, prev.bytes, types.manifest, job.tag) : prev.descriptor;
      log.info('manifest.retagged', { digest: output.digest, how: prev.how, ...(prev.from ? { from: prev.from } : {}), tag: job.tag });
      const reused = parseDocument(ManifestSchema, prev.bytes, `manifest ${prev.descriptor.digest}`).layers ?? [];
      return {
        source: job.source,
        output: { mediaType: types.manifest, digest: output.digest, size: output.size },
        how: 'retagged',
        layers: layers.map((l, i) => ({
          source: l.digest,
          digest: reused[i]?.digest ?? '',
          size: reused[i]?.size ?? 0,
          how: prev.how,
        })),
        timings,
      };
    }
  }

  // The config only now: a re-tag needs nothing but the manifest digest.
  const configBytes = await client.fetchBlobBytes(srcRepo, manifest.config, ctx.signal ? { signal: ctx.signal } : {});
  const config = parseDocument(ImageConfigSchema, configBytes, `config ${manifest.config.digest} of manifest ${job.source.digest}`);
  const diffIds = config.rootfs.diff_ids ?? [];
  if (diffIds.length !== layers.length) {
    throw new OverlaybdError(
      'CONVERT_FAILED',
      `manifest ${job.source.digest} has ${layers.length} layers but its config ${manifest.config.digest} lists ${diffIds.length} diff_ids`,
    );
  }
  const chains = chainIds(diffIds);

  await fs.promises.mkdir(job.workDir, { recursive: true });
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const signal = abort.signal;
  const n = layers.length;
  const layerName = (i: number) => `${job.label} #${i}`;
  const what = (i: number) => `layer ${i} (${layers[i]!.digest}) of manifest ${job.source.digest}`;
  const dirs = layers.map((l, i) => path.join(job.workDir, `${String(i).padStart(4, '0')}_${l.digest.replace(/^sha256:/, '')}`));
  const fail = (i: number, stage: Stage, e: unknown): never => {
    ctx.progress.update({ layer: layerName(i), stage, state: 'failed', note: isOverlaybdError(e) ? e.code : 'error' });
    const err = isOverlaybdError(e)
      ? new OverlaybdError(e.code, `${stage} ${what(i)}: ${e.message}`, { cause: e })
      : new OverlaybdError('CONVERT_FAILED', `${stage} ${what(i)}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    if (!signal.aborted) abort.abort(err);
    throw err;
  };
  const timed = async <T>(stage: Stage, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      timings[stage] += performance.now() - t0;
    }
  };

  try {
    // 2. Dedup lookups for every layer up front: which need converting, and
    //    which reused ones must still be fetched as lowers for a later layer.
    const lookups = concurrencyLimit(opts.downloadConcurrency);
    const reused: (ReusedLayer | undefined)[] = await Promise.all(
      chains.map((c) => lookups(() => findConvertedLayer(dedup, c))),
    );
    let lastConverted = -1;
    reused.forEach((r, i) => {
      if (r === undefined) lastConverted = i;
    });
    for (const [i, r] of reused.entries()) {
      if (r) log.info('layer.reused', { layer: i, chainId: chains[i], digest: r.digest, how: r.how, ...(r.from ? { from: r.from } : {}) });
    }

    // Blobs this run saw committed in the target (a 201 to an upload or a
    // mount): the check before the manifest push need not HEAD them again.
    const confirmed = new Set<string>();
    for (const r of reused) if (r?.how === 'mounted') confirmed.add(r.digest);

    const downloads = concurrencyLimit(opts.downloadConcurrency);
    const downloaded: Promise<string | undefined>[] = [];
    const converted: Promise<{ file?: string; digest: string; size: number }>[] = [];
    const uploaded: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const src = layers[i]!;
      const r = reused[i];
      const name = layerName(i);
      downloaded[i] = settled(
        downloads(async () => {
          if (r && i >= lastConverted) {
            ctx.progress.update({ layer: name, stage: 'download', state: 'skipped', note: r.how });
            return undefined;
          }
          signal.throwIfAborted();
          await fs.promises.mkdir(dirs[i]!, { recursive: true });
          const total = r ? r.size : src.size;
          ctx.progress.update({ layer: name, stage: 'download', state: 'running', done: 0, total });
          const onBytes = (b: number) => ctx.progress.update({ layer: name, stage: 'download', state: 'running', done: b, total });
          try {
            const file = await timed('download', () =>
              r
                ? downloadConvertedLayer(client, target, r, dirs[i]!, { onBytes, signal })
                : downloadSourceLayer(client, srcRepo, src, diffIds[i]!, dirs[i]!, { onBytes, signal, what: what(i) }).then((x) => x.file),
            );
            ctx.progress.update({ layer: name, stage: 'download', state: 'done', done: total, total, ...(r ? { note: 'reused' } : {}) });
            return file;
          } catch (e) {
            return fail(i, 'download', e);
          }
        }),
      );
      const below = i > 0 ? converted[i - 1]! : Promise.resolve(undefined);
      converted[i] = settled(
        (async () => {
          const file = await downloaded[i]!;
          await below;
          signal.throwIfAborted();
          if (r) {
            ctx.progress.update({ layer: name, stage: 'convert', state: 'skipped', note: r.how });
            return { ...(file ? { file } : {}), digest: r.digest, size: r.size };
          }
          const lowers: string[] = [];
          for (let j = 0; j < i; j++) lowers.push(path.join(dirs[j]!, 'overlaybd.commit'));
          ctx.progress.update({ layer: name, stage: 'convert', state: 'running', done: 0 });
          try {
            const out = await timed('convert', () =>
              buildLayer({
                dir: dirs[i]!,
                lowers,
                input: file!,
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
            log.info('layer.converted', { layer: i, chainId: chains[i], digest: d.digest, size: d.size });
            return { file: out, ...d };
          } catch (e) {
            return fail(i, 'convert', e);
          }
        })(),
      );
      uploaded[i] = settled(
        (async () => {
          const c = await converted[i]!;
          if (r || opts.noUpload) {
            ctx.progress.update({ layer: name, stage: 'upload', state: 'skipped', note: r ? r.how : 'no-upload' });
            return;
          }
          signal.throwIfAborted();
          ctx.progress.update({ layer: name, stage: 'upload', state: 'running', done: 0, total: c.size });
          try {
            const res = await timed('upload', () => client.pushBlob(target, { digest: c.digest, size: c.size }, { file: c.file! }, { signal }));
            if (res.status === 'uploaded' || res.status === 'mounted') confirmed.add(c.digest);
            ctx.progress.update({ layer: name, stage: 'upload', state: 'done', done: c.size, total: c.size, note: res.status });
          } catch (e) {
            return fail(i, 'upload', e);
          }
          await ctx.store
            .createLayerEntry({ host: target.registry, repo: target.repository, chainId: chains[i]!, dataDigest: c.digest, dataSize: c.size })
            .catch((e: unknown) => log.warn('dedup.record.failed', { layer: i, error: (e as Error).message }));
        })(),
      );
    }
    const results = await Promise.allSettled([...downloaded, ...converted, ...uploaded]);
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new OverlaybdError('CONVERT_FAILED', String(signal.reason));
    const bad = results.find((x) => x.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    const outLayers = await Promise.all(converted);

    // 3. Config and manifest.
    const newConfig = marshalConfig(config, outLayers.map((l) => l.digest), `config ${manifest.config.digest}`);
    const configDesc: Descriptor = { mediaType: types.config, digest: sha256Digest(newConfig), size: newConfig.length };
    const layerDescs: Descriptor[] = outLayers.map((l) => ({
      mediaType: types.layer,
      digest: l.digest,
      size: l.size,
      annotations: layerAnnotations(l.digest, l.size),
    }));
    const newManifest = marshalManifest({
      mediaType: types.manifest,
      ...(opts.referrer ? { artifactType: ARTIFACT_TYPE_NATIVE } : {}),
      config: configDesc,
      layers: layerDescs,
      ...(opts.referrer
        ? { subject: { mediaType: job.source.mediaType, digest: job.source.digest, size: job.source.size } }
        : manifest.subject
          ? { subject: manifest.subject }
          : {}),
      annotations: manifest.annotations ?? null,
    });
    const output: RegistryDescriptor = { mediaType: types.manifest, digest: sha256Digest(newManifest), size: newManifest.length };
    if (opts.dumpManifest) {
      await fs.promises.writeFile(path.join(job.workDir, 'config.json'), newConfig);
      await fs.promises.writeFile(path.join(job.workDir, 'manifest.json'), newManifest);
    }
    if (!opts.noUpload) {
      try {
        const res = await client.pushBlob(target, { digest: configDesc.digest, size: configDesc.size }, newConfig, { signal });
        if (res.status === 'uploaded' || res.status === 'mounted') confirmed.add(configDesc.digest);
      } catch (e) {
        throw new OverlaybdError(isOverlaybdError(e) ? e.code : 'CONVERT_FAILED', `upload config of manifest ${job.source.digest}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      // Never push a manifest naming a blob the repository lacks.
      const problem = await manifestBlobsPresent(client, target, newManifest, `manifest ${output.digest}`, confirmed);
      if (problem) {
        throw new OverlaybdError('CONVERT_FAILED', `refusing to push manifest ${output.digest} for ${job.source.digest}: ${problem}`);
      }
      await client.pushManifest(target, newManifest, types.manifest, job.tag ?? output.digest, { signal });
      if (!opts.referrer) {
        await ctx.store
          .createManifestEntry({
            host: target.registry,
            repo: target.repository,
            srcDigest: job.source.digest,
            outDigest: output.digest,
            dataSize: output.size,
            mediaType: types.manifest,
          })
          .catch((e: unknown) => log.warn('dedup.record.failed', { manifest: job.source.digest, error: (e as Error).message }));
      }
      log.info('manifest.pushed', { digest: output.digest, size: output.size, tag: job.tag });
    }
    return {
      source: job.source,
      output,
      how: 'converted',
      layers: outLayers.map((l, i) => ({
        source: layers[i]!.digest,
        chainId: chains[i]!,
        digest: l.digest,
        size: l.size,
        how: reused[i]?.how ?? 'converted',
      })),
      timings,
    };
  } finally {
    ctx.signal?.removeEventListener('abort', onOuterAbort);
    if (!opts.reserve) {
      await Promise.all(dirs.map((d) => fs.promises.rm(d, { recursive: true, force: true })));
      if (!opts.dumpManifest) await fs.promises.rm(job.workDir, { recursive: true, force: true });
    }
  }
}
