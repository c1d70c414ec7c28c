/** OCI and Docker media types the registry client knows about. */
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaTypes.ociManifest, MediaTypes.dockerManifest];
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaTypes.ociIndex, MediaTypes.dockerManifestList];

/** The Accept header for manifest requests: every manifest and index type, then a catch-all. */
export const MANIFEST_ACCEPT = [
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
  '*/*;q=0.1',
].join(', ');

export function isIndexMediaType(mt: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mt);
}

export function isManifestMediaType(mt: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mt);
}

/**
 * The media type of manifest bytes: the `Content-Type` the registry sent when
 * it is a known manifest type, else the document's own `mediaType` field, else
 * guessed from its shape (`manifests` -> OCI index, `layers`/`config` -> OCI manifest).
 */
export function detectManifestMediaType(contentType: string | undefined, body: Uint8Array): string {
  const ct = contentType?.split(';')[0]?.trim().toLowerCase();
  if (ct && (isIndexMediaType(ct) || isManifestMediaType(ct))) return ct;
  try {
    const doc = JSON.parse(Buffer.from(body).toString('utf8')) as Record<string, unknown>;
    if (typeof doc.mediaType === 'string' && doc.mediaType.length > 0) return doc.mediaType;
    if (Array.isArray(doc.manifests)) return MediaTypes.ociIndex;
    if (Array.isArray(doc.layers) || typeof doc.config === 'object') return MediaTypes.ociManifest;
  } catch {
    // not JSON: fall through
  }
  return ct ?? 'application/octet-stream';
}
