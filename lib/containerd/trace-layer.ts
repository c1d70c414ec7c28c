/**
 * The acceleration (trace) layer record-trace adds on top of an overlaybd
 * image (accelerated-container-image.md §3.2): an uncompressed tar holding
 * one regular file `trace` (mode 0444), its descriptor with upstream's
 * annotations, and the new config and manifest (3-space indented JSON as
 * upstream's Go code writes them).
 */
import { ANNOTATION_BLOB_DIGEST, ANNOTATION_BLOB_SIZE, ANNOTATION_VERSION, OVERLAYBD_VERSION } from '../convertor/media.js';
import { descriptorStruct, marshalConfig, type Descriptor, type ImageConfig, type Manifest } from '../convertor/spec.js';
import { goMarshalBytes, GoMap } from '../convertor/gojson.js';
import { MediaTypes, sha256Digest } from '../registry/index.js';
import { goIndent } from './obdconv-docs.js';
import { TAR_BLOCK, ustarHeader } from '../ustar.js';

export const ANNOTATION_ACCELERATION_LAYER = 'containerd.io/snapshot/overlaybd/acceleration-layer';
export const ANNOTATION_FS_TYPE = 'containerd.io/snapshot/overlaybd/blob-fs-type';
export const TRACE_FILE_IN_LAYER = 'trace';

/** The layer tar: `trace` holding `data`, then the two zero blocks that end an archive. */
export function traceLayerTar(data: Buffer, mtime = new Date()): Buffer {
  const pad = (TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK;
  const header = ustarHeader({ name: TRACE_FILE_IN_LAYER, size: data.length, mode: 0o444, typeflag: '0', mtime: Math.floor(mtime.getTime() / 1000) });
  return Buffer.concat([header, data, Buffer.alloc(pad + 2 * TAR_BLOCK)]);
}

/** The layer's descriptor: uncompressed OCI tar, version, blob digest and size, acceleration-layer=yes, fs type when known. */
export function traceLayerDescriptor(tar: Buffer, fsType: string | undefined): Descriptor {
  const digest = sha256Digest(tar);
  return {
    mediaType: MediaTypes.ociLayer,
    digest,
    size: tar.length,
    annotations: {
      [ANNOTATION_VERSION]: OVERLAYBD_VERSION,
      [ANNOTATION_BLOB_DIGEST]: digest,
      [ANNOTATION_BLOB_SIZE]: String(tar.length),
      [ANNOTATION_ACCELERATION_LAYER]: 'yes',
      ...(fsType ? { [ANNOTATION_FS_TYPE]: fsType } : {}),
    },
  };
}

/** The new config: an "Acceleration Layer" history entry first (as upstream), the layer's diffID appended, created now. */
export function tracedConfig(old: ImageConfig, layerDigest: string, now = new Date(), what = 'image config'): Buffer {
  const created = now.toISOString();
  const history = [{ created, created_by: 'Acceleration Layer' }, ...(old.history ?? [])];
  const diffIds = [...(old.rootfs.diff_ids ?? []), layerDigest];
  return goIndent(marshalConfig({ ...old, created, history }, diffIds, what));
}

/** The new manifest: the old one's layers plus the trace layer, its mediaType kept. */
export function tracedManifest(old: Manifest, oldMediaType: string, config: Descriptor, layer: Descriptor): Buffer {
  return goIndent(
    goMarshalBytes({
      schemaVersion: old.schemaVersion ?? 2,
      mediaType: oldMediaType,
      config: descriptorStruct(config),
      layers: [...(old.layers ?? []), layer].map(descriptorStruct),
      subject: old.subject ? descriptorStruct(old.subject) : undefined,
      annotations: old.annotations && Object.keys(old.annotations).length > 0 ? new GoMap(Object.entries(old.annotations)) : undefined,
    }),
  );
}
