/**
 * The graph walk: resolve the source reference, convert a manifest, or an
 * index (recursively for nested ones) with every platform converted under
 * one bound on concurrent manifests; attestation manifests are dropped and
 * the index is rewritten keeping each entry's platform and annotations.
 * Only the top-level object is tagged; everything below is pushed by digest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';
import { MediaTypes, isIndexMediaType, isManifestMediaType, parseReference, sha256Digest, type Descriptor as RegistryDescriptor } from '../registry/index.js';
import { linkedAbort, type LinkedAbort } from './abort.js';
import { applyWithExt4, type ApplyFn } from './apply.js';
import { ANNOTATION_REFERENCE_TYPE, ARTIFACT_TYPE_NATIVE, ATTESTATION_MANIFEST, outputTypes } from './media.js';
import { concurrencyLimit, type ConvertDeps, type ConvertOptions } from './options.js';
import { convertManifest, type ManifestReport, type PipelineContext } from './pipeline.js';
import { silentProgress } from './progress.js';
import { IndexSchema, marshalIndex, parseDocument, type Descriptor } from './spec.js';

export interface ConvertResult {
  /** The pushed (or, with --no-upload, computed) top-level manifest or index. */
  output: RegistryDescriptor;
  reference: string;
  manifests: ManifestReport[];
  /** Attestation manifests left out of the rewritten index. */
  dropped: string[];
  wallMs: number;
}

function platformLabel(d: Descriptor | undefined): string {
  const p = d?.platform;
  if (!p) return 'default';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export async function runConversion(opts: ConvertOptions, deps: ConvertDeps & { apply?: ApplyFn }): Promise<ConvertResult> {
  const t0 = performance.now();
  const repo = parseReference(opts.repository, null);
  if (repo.tag !== undefined || repo.digest !== undefined) {
    throw new OverlaybdError('CONFIG_INVALID', `-r ${opts.repository}: give a repository without tag or digest (use -i/-g and --overlaybd)`);
  }
  // One controller per conversion, linked to the caller's signal: the first
  // failed platform aborts every other one, so nothing is pushed after the
  // error has been reported.
  return convertGraph(opts, deps, repo, linkedAbort(deps.signal), t0);
}

/** Wait for every task; on the first failure abort the others, then rethrow that failure. */
async function settleAll<T>(tasks: Promise<T>[], abort: LinkedAbort): Promise<T[]> {
  let first: { err: unknown } | undefined;
  const settled = await Promise.allSettled(
    tasks.map((t) =>
      t.catch((err: unknown) => {
        if (!first) {
          first = { err };
          abort.abort(err);
        }
        throw err;
      }),
    ),
  );
  if (first) throw first.err;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

async function convertGraph(
  opts: ConvertOptions,
  deps: ConvertDeps & { apply?: ApplyFn },
  repo: { registry: string; repository: string },
  abort: LinkedAbort,
  t0: number,
): Promise<ConvertResult> {
  const signal = abort.signal;
  const target = { registry: repo.registry, repository: repo.repository };
  const source = { ...target, ...(opts.inputDigest ? { digest: opts.inputDigest } : { tag: opts.inputTag! }) };
  const ctx: PipelineContext = {
    opts,
    client: deps.client,
    store: deps.store,
    target,
    logger: deps.logger,
    progress: deps.progress ?? silentProgress,
    apply: deps.apply ?? applyWithExt4,
    signal,
  };
  const types = outputTypes(opts.oci);
  const limit = concurrencyLimit(opts.concurrency);
  const reports: ManifestReport[] = [];
  const dropped: string[] = [];
  // Manifests and indexes this run pushed to the target (the registry
  // answered the PUT): the check before an index push skips them.
  const pushed = new Set<string>();
  let counter = 0;

  const top = await deps.client.getManifest(source, { signal });
  deps.logger.info('convert.start', {
    source: `${repo.registry}/${repo.repository}${opts.inputDigest ? '@' + opts.inputDigest : ':' + opts.inputTag}`,
    digest: top.descriptor.digest,
    mediaType: top.descriptor.mediaType,
    tag: opts.overlaybdTag,
    store: deps.store.location,
  });

  const processManifest = (desc: RegistryDescriptor, bytes: Buffer, tag: string | undefined, entry?: Descriptor) =>
    limit(async () => {
      signal.throwIfAborted();
      const n = counter++;
      const label = platformLabel(entry);
      const report = await convertManifest(ctx, {
        source: desc,
        bytes,
        ...(tag ? { tag } : {}),
        workDir: path.join(opts.workDir, `${n}-${label.replace(/\//g, '_')}-${desc.digest.replace(/^sha256:/, '')}`),
        label,
      });
      reports.push(report);
      if (!opts.noUpload && report.how === 'converted') pushed.add(report.output.digest);
      return report.output;
    });

  const processIndex = async (desc: RegistryDescriptor, bytes: Buffer, tag: string | undefined): Promise<RegistryDescriptor> => {
    const index = parseDocument(IndexSchema, bytes, `index ${desc.digest}`);
    const children = (index.manifests ?? []).filter((c) => {
      if (c.annotations?.[ANNOTATION_REFERENCE_TYPE] === ATTESTATION_MANIFEST) {
        dropped.push(c.digest);
        deps.logger.info('index.attestation.dropped', { digest: c.digest });
        return false;
      }
      return true;
    });
    // Children run concurrently; the manifest limit bounds the real work.
    const outputs = await settleAll(
      children.map(async (c) => {
        const child = await deps.client.getManifest({ ...target, digest: c.digest }, { signal });
        const mt = c.mediaType && (isIndexMediaType(c.mediaType) || isManifestMediaType(c.mediaType)) ? c.mediaType : child.descriptor.mediaType;
        const d = { ...child.descriptor, mediaType: mt };
        return isIndexMediaType(mt) ? processIndex(d, child.bytes, undefined) : processNode(d, child.bytes, undefined, c);
      }),
      abort,
    );
    const manifests: Descriptor[] = children.map((c, i) => ({ ...c, mediaType: outputs[i]!.mediaType, digest: outputs[i]!.digest, size: outputs[i]!.size }));
    const mediaType = opts.oci ? MediaTypes.ociIndex : (index.mediaType ?? desc.mediaType);
    const out = marshalIndex({
      mediaType,
      ...(opts.referrer ? { artifactType: ARTIFACT_TYPE_NATIVE, subject: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size } } : {}),
      ...(!opts.referrer && index.artifactType ? { artifactType: index.artifactType } : {}),
      ...(!opts.referrer && index.subject ? { subject: index.subject } : {}),
      manifests,
      annotations: index.annotations ?? null,
    });
    const outDesc: RegistryDescriptor = { mediaType, digest: sha256Digest(out), size: out.length };
    if (opts.dumpManifest) {
      await fs.promises.mkdir(opts.workDir, { recursive: true });
      await fs.promises.writeFile(path.join(opts.workDir, 'index.json'), out);
    }
    if (!opts.noUpload) {
      // Every child was pushed by its own pipeline or found by dedup; check
      // those not pushed in this run, as for a manifest's blobs.
      for (const m of manifests) {
        if (pushed.has(m.digest)) continue;
        const have = await deps.client.headManifest({ ...target, digest: m.digest });
        signal.throwIfAborted();
        if (!have || (have.size >= 0 && have.size !== m.size)) {
          throw new OverlaybdError('CONVERT_FAILED', `refusing to push index for ${desc.digest}: manifest ${m.digest} is not in ${target.repository}`);
        }
      }
      await deps.client.pushManifest(target, out, mediaType, tag ?? outDesc.digest, { signal });
      pushed.add(outDesc.digest);
      deps.logger.info('index.pushed', { digest: outDesc.digest, manifests: manifests.length, tag });
    }
    return outDesc;
  };

  const processNode = (desc: RegistryDescriptor, bytes: Buffer, tag: string | undefined, entry?: Descriptor): Promise<RegistryDescriptor> => {
    if (isIndexMediaType(desc.mediaType)) return processIndex(desc, bytes, tag);
    if (isManifestMediaType(desc.mediaType)) return processManifest(desc, bytes, tag, entry);
    throw new OverlaybdError('CONVERT_FAILED', `${desc.digest}: cannot convert media type ${desc.mediaType} (want an image manifest or index)`);
  };

  const output = await processNode(top.descriptor, top.bytes, opts.overlaybdTag);
  const result: ConvertResult = {
    output: isManifestMediaType(output.mediaType) ? { ...output, mediaType: types.manifest } : output,
    reference: `${target.registry}/${target.repository}:${opts.overlaybdTag}`,
    manifests: reports,
    dropped,
    wallMs: performance.now() - t0,
  };
  deps.logger.info('convert.done', { reference: result.reference, digest: output.digest, ms: Math.round(result.wallMs) });
  return result;
}
