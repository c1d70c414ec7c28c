/**
 * The end of a manifest's conversion: the new config (diff_ids = overlaybd
 * blob digests) and manifest, written for --dump-manifest, then pushed:
 * the config blob, a check that every blob the manifest names is in the
 * repository with the right size, the manifest, and its dedup row.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError, isOverlaybdError } from '../errors.js';
import type { Logger } from '../log.js';
import { sha256Digest, type Descriptor as RegistryDescriptor } from '../registry/index.js';
import { manifestBlobsPresent } from './dedup.js';
import type { ConvertedLayer } from './layer-task.js';
import { ARTIFACT_TYPE_NATIVE, layerAnnotations, type OutputTypes } from './media.js';
import type { ManifestJob, PipelineContext } from './pipeline.js';
import { marshalConfig, marshalManifest, type Descriptor, type ImageConfig, type Manifest } from './spec.js';

export interface Assembly {
  /** The source manifest and its config. */
  manifest: Manifest;
  config: ImageConfig;
  layers: ConvertedLayer[];
  types: OutputTypes;
  /** Blobs known to be committed in the target (no HEAD needed). */
  confirmed: Set<string>;
  signal: AbortSignal;
  log: Logger;
}

/** Builds, writes and pushes the converted config and manifest; returns the manifest's descriptor. */
export async function assembleManifest(ctx: PipelineContext, job: ManifestJob, a: Assembly): Promise<RegistryDescriptor> {
  const { opts, client, target } = ctx;
  const { manifest, types, signal } = a;
  const newConfig = marshalConfig(a.config, a.layers.map((l) => l.digest), `config ${manifest.config.digest}`);
  const configDesc: Descriptor = { mediaType: types.config, digest: sha256Digest(newConfig), size: newConfig.length };
  const layerDescs: Descriptor[] = a.layers.map((l) => ({
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
  if (opts.noUpload) return output;
  try {
    const res = await client.pushBlob(target, { digest: configDesc.digest, size: configDesc.size }, newConfig, { signal });
    if (res.status === 'uploaded' || res.status === 'mounted') a.confirmed.add(configDesc.digest);
  } catch (e) {
    throw new OverlaybdError(isOverlaybdError(e) ? e.code : 'CONVERT_FAILED', `upload config of manifest ${job.source.digest}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  // Never push a manifest naming a blob the repository lacks.
  const problem = await manifestBlobsPresent(client, target, newManifest, `manifest ${output.digest}`, a.confirmed);
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
      .catch((e: unknown) => a.log.warn('dedup.record.failed', { manifest: job.source.digest, error: (e as Error).message }));
  }
  a.log.info('manifest.pushed', { digest: output.digest, size: output.size, tag: job.tag });
  return output;
}
