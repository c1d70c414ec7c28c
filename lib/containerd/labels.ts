/**
 * The labels containerd's pull handlers and unpacker set, and the keys
 * overlaybd's snapshotter reads (accelerated-container-image.md §1.3).
 */
import { createHash } from 'node:crypto';
import { hostName } from '../registry/reference.js';

export const Labels = {
  snapshotRef: 'containerd.io/snapshot.ref',
  imageRef: 'containerd.io/snapshot/image-ref',
  downloadRemoteBlob: 'containerd.io/snapshot/overlaybd/download-remote-blob',
  uncompressed: 'containerd.io/uncompressed',
  gcExpire: 'containerd.io/gc.expire',
  gcRefSnapshot: 'containerd.io/gc.ref.snapshot.',
  distributionSource: 'containerd.io/distribution.source.',
} as const;

const INHERITED_PREFIX = 'containerd.io/snapshot/';

/** containerd's snapshots.FilterInheritedLabels: the layer annotations a snapshot inherits. */
export function inheritedLabels(annotations: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations ?? {})) {
    if (k === Labels.snapshotRef || k.startsWith(INHERITED_PREFIX)) out[k] = v;
  }
  return out;
}

const CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);

function isLayerType(mt: string): boolean {
  return mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.');
}

/** images.ChildGCLabels: the GC reference key prefix of a child (a trailing dot takes an index). */
function childGcKey(mediaType: string): string {
  if (CONFIG_TYPES.has(mediaType)) return 'containerd.io/gc.ref.content.config';
  if (MANIFEST_TYPES.has(mediaType)) return 'containerd.io/gc.ref.content.m.';
  if (isLayerType(mediaType)) return 'containerd.io/gc.ref.content.l.';
  return 'containerd.io/gc.ref.content.';
}

/**
 * images.SetChildrenMappedLabels: the labels of a manifest or index that keep
 * its children from containerd's GC (`...config`, `...l.0`, `...m.1`).
 */
export function childGcLabels(children: readonly { mediaType: string; digest: string }[]): Record<string, string> {
  const seen = new Map<string, number>();
  const out: Record<string, string> = {};
  for (const ch of children) {
    let key = childGcKey(ch.mediaType);
    const idx = seen.get(key) ?? 0;
    seen.set(key, idx + 1);
    if (idx > 0 || key.endsWith('.')) key = `${key}${idx}`;
    out[key] = ch.digest;
  }
  return out;
}

/**
 * docker.AppendDistributionSourceLabel: `containerd.io/distribution.source.<host>`
 * (host without port, as containerd's url.Hostname() gives) = the repos,
 * sorted, without duplicates, comma-separated.
 */
export function distributionSourceLabel(registry: string, repository: string, labels: Record<string, string> = {}): [string, string] {
  const key = `${Labels.distributionSource}${hostName(registry)}`;
  const repos = new Set((labels[key] ?? '').split(',').filter(Boolean));
  repos.add(repository);
  return [key, [...repos].sort().join(',')];
}

/** identity.ChainID for every prefix of `diffIds`: chain[i] = sha256(chain[i-1] + " " + diffIds[i]). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : 'sha256:' + createHash('sha256').update(`${prev} ${d}`).digest('hex'));
  }
  return out;
}

/** RFC 3339 in UTC without fractions, as Go's time.RFC3339 writes it. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}
