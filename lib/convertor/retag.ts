/**
 * Manifest-level dedup: a manifest converted before (found in the store and
 * still in the target, or mounted from another repository) is re-tagged
 * instead of converted again.
 */
import type { Logger } from '../log.js';
import { findConvertedManifest, type DedupContext } from './dedup.js';
import type { OutputTypes } from './media.js';
import type { ManifestJob, ManifestReport, PipelineContext } from './pipeline.js';
import type { Stage } from './progress.js';
import { ManifestSchema, parseDocument, type Descriptor } from './spec.js';

/** The report of a re-tag, or undefined when the manifest must be converted. */
export async function retagConverted(
  ctx: PipelineContext,
  job: ManifestJob,
  dedup: DedupContext,
  a: { layers: Descriptor[]; types: OutputTypes; log: Logger; timings: Record<Stage, number> },
): Promise<ManifestReport | undefined> {
  const { client, target } = ctx;
  const prev = await findConvertedManifest(dedup, job.source.digest, a.types.manifest, job.tag);
  if (!prev) return undefined;
  const output = job.tag && !prev.tagged ? await client.pushManifest(target, prev.bytes, a.types.manifest, job.tag) : prev.descriptor;
  a.log.info('manifest.retagged', { digest: output.digest, how: prev.how, ...(prev.from ? { from: prev.from } : {}), tag: job.tag });
  const reused = parseDocument(ManifestSchema, prev.bytes, `manifest ${prev.descriptor.digest}`).layers ?? [];
  return {
    source: job.source,
    output: { mediaType: a.types.manifest, digest: output.digest, size: output.size },
    how: 'retagged',
    layers: a.layers.map((l, i) => ({
      source: l.digest,
      digest: reused[i]?.digest ?? '',
      size: reused[i]?.size ?? 0,
      how: prev.how,
    })),
    timings: a.timings,
  };
}
