/**
 * Converts one platform manifest: a re-tag when it was converted before
 * (retag.ts); else the config, the per-layer tasks (layer-task.ts) and the
 * new config and manifest (manifest-assembler.ts). Work directories are
 * removed at the end unless --reserve.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Descriptor as RegistryDescriptor, RegistryClient } from '../registry/index.js';
import { linkedAbort } from './abort.js';
import type { ApplyFn } from './apply.js';
import { chainIds } from './chain.js';
import type { DedupStore } from './db/index.js';
import type { DedupContext, Target } from './dedup.js';
import { convertLayers } from './layer-task.js';
import { assembleManifest } from './manifest-assembler.js';
import { outputTypes } from './media.js';
import type { ConvertOptions } from './options.js';
import type { ProgressSink, Stage } from './progress.js';
import { retagConverted } from './retag.js';
import { ImageConfigSchema, ManifestSchema, parseDocument } from './spec.js';

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

export async function convertManifest(ctx: PipelineContext, job: ManifestJob): Promise<ManifestReport> {
  const { opts, client, target, logger } = ctx;
  const log = logger.child({ manifest: job.source.digest, platform: job.label });
  const types = outputTypes(opts.oci);
  const manifest = parseDocument(ManifestSchema, job.bytes, `manifest ${job.source.digest}`);
  const layers = manifest.layers ?? [];
  if (layers.length === 0) throw new OverlaybdError('CONVERT_FAILED', `manifest ${job.source.digest} has no layers`);
  const dedup: DedupContext = { client, store: ctx.store, target, logger: log, readOnly: opts.noUpload };
  const timings: Record<Stage, number> = { download: 0, convert: 0, upload: 0 };

  // The whole manifest converted before: re-tag it. (Not with --referrer, whose output differs.)
  if (!opts.noUpload && !opts.referrer) {
    const report = await retagConverted(ctx, job, dedup, { layers, types, log, timings });
    if (report) return report;
  }

  // The config only now: a re-tag needs nothing but the manifest digest.
  const configBytes = await client.fetchBlobBytes(target, manifest.config, ctx.signal ? { signal: ctx.signal } : {});
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
  const abort = linkedAbort(ctx.signal);
  const dirs = layers.map((l, i) => path.join(job.workDir, `${String(i).padStart(4, '0')}_${l.digest.replace(/^sha256:/, '')}`));
  try {
    const confirmed = new Set<string>();
    const converted = await convertLayers({
      ctx,
      dedup,
      log,
      layers,
      diffIds,
      chains,
      dirs,
      name: (i) => `${job.label} #${i}`,
      what: (i) => `layer ${i} (${layers[i]!.digest}) of manifest ${job.source.digest}`,
      abort,
      confirmed,
      timings,
    });
    const output = await assembleManifest(ctx, job, { manifest, config, layers: converted.layers, types, confirmed, signal: abort.signal, log });
    return {
      source: job.source,
      output,
      how: 'converted',
      layers: converted.layers.map((l, i) => ({
        source: layers[i]!.digest,
        chainId: chains[i]!,
        digest: l.digest,
        size: l.size,
        how: converted.reused[i]?.how ?? 'converted',
      })),
      timings,
    };
  } finally {
    if (!opts.reserve) {
      await Promise.all(dirs.map((d) => fs.promises.rm(d, { recursive: true, force: true })));
      if (!opts.dumpManifest) await fs.promises.rm(job.workDir, { recursive: true, force: true });
    }
  }
}
