/**
 * What the convertor writes: media types (Docker schema2 by default, OCI
 * with --oci) and the layer annotations upstream's snapshotter reads.
 */
import { MediaTypes } from '../registry/index.js';

export const ANNOTATION_BLOB_DIGEST = 'containerd.io/snapshot/overlaybd/blob-digest';
export const ANNOTATION_BLOB_SIZE = 'containerd.io/snapshot/overlaybd/blob-size';
export const ANNOTATION_VERSION = 'containerd.io/snapshot/overlaybd/version';
/** The version string of a native overlaybd layer. */
export const OVERLAYBD_VERSION = '0.1.0';
/** BuildKit marks attestation manifests in an index with this annotation; they are dropped. */
export const ANNOTATION_REFERENCE_TYPE = 'vnd.docker.reference.type';
export const ATTESTATION_MANIFEST = 'attestation-manifest';
/** `--referrer`: the artifactType of a native overlaybd manifest (and index). */
export const ARTIFACT_TYPE_NATIVE = 'application/vnd.containerd.overlaybd.native.v1+json';

export interface OutputTypes {
  manifest: string;
  config: string;
  layer: string;
}

export function outputTypes(oci: boolean): OutputTypes {
  return oci
    ? { manifest: MediaTypes.ociManifest, config: MediaTypes.ociConfig, layer: MediaTypes.ociLayer }
    : { manifest: MediaTypes.dockerManifest, config: MediaTypes.dockerConfig, layer: MediaTypes.dockerLayer };
}

/** The annotations of a converted layer (Go writes map keys sorted; spec.ts takes care of that). */
export function layerAnnotations(digest: string, size: number): Record<string, string> {
  return {
    [ANNOTATION_BLOB_DIGEST]: digest,
    [ANNOTATION_BLOB_SIZE]: String(size),
    [ANNOTATION_VERSION]: OVERLAYBD_VERSION,
  };
}
