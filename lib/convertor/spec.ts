/**
 * Image-spec documents as upstream's convertor re-serialises them: source
 * JSON is read into the shape of the Go image-spec v1.1 structs (unknown
 * keys such as Docker's container_config are dropped) and written back
 * with Go's field order and omitempty rules, so the bytes and digests match
 * what a Go program would push.
 */
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { GoMap, goMarshalBytes } from './gojson.js';

const str = z.string();
const strList = z.array(z.string()).nullish();
const strMap = z.record(z.string(), z.string()).nullish();
const setMap = z.record(z.string(), z.object({}).passthrough().nullable()).nullish();
const int = z.number().int();

export const PlatformSchema = z
  .object({
    architecture: str.optional(),
    os: str.optional(),
    'os.version': str.optional(),
    'os.features': strList,
    variant: str.optional(),
  })
  .passthrough();
export type Platform = z.infer<typeof PlatformSchema>;

export const DescriptorSchema = z
  .object({
    mediaType: str.optional(),
    digest: str,
    size: int.nonnegative(),
    urls: strList,
    annotations: strMap,
    data: str.nullish(),
    platform: PlatformSchema.nullish(),
    artifactType: str.optional(),
  })
  .passthrough();
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ManifestSchema = z
  .object({
    schemaVersion: int,
    mediaType: str.optional(),
    artifactType: str.optional(),
    config: DescriptorSchema,
    layers: z.array(DescriptorSchema).nullable(),
    subject: DescriptorSchema.nullish(),
    annotations: strMap,
  })
  .passthrough();
export type Manifest = z.infer<typeof ManifestSchema>;

export const IndexSchema = z
  .object({
    schemaVersion: int,
    mediaType: str.optional(),
    artifactType: str.optional(),
    manifests: z.array(DescriptorSchema).nullable(),
    subject: DescriptorSchema.nullish(),
    annotations: strMap,
  })
  .passthrough();
export type Index = z.infer<typeof IndexSchema>;

const HistorySchema = z
  .object({
    created: str.nullish(),
    created_by: str.optional(),
    author: str.optional(),
    comment: str.optional(),
    empty_layer: z.boolean().optional(),
  })
  .passthrough();

export const ImageConfigSchema = z
  .object({
    created: str.nullish(),
    author: str.optional(),
    architecture: str.optional(),
    os: str.optional(),
    'os.version': str.optional(),
    'os.features': strList,
    variant: str.optional(),
    config: z
      .object({
        User: str.optional(),
        ExposedPorts: setMap,
        Env: strList,
        Entrypoint: strList,
        Cmd: strList,
        Volumes: setMap,
        WorkingDir: str.optional(),
        Labels: strMap,
        StopSignal: str.optional(),
        ArgsEscaped: z.boolean().optional(),
      })
      .passthrough()
      .nullish(),
    rootfs: z.object({ type: str.optional(), diff_ids: z.array(str).nullable().optional() }).passthrough(),
    history: z.array(HistorySchema).nullish(),
  })
  .passthrough();
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

/** Parses JSON bytes against a schema; errors say which document and field. */
export function parseDocument<S extends z.ZodType>(schema: S, bytes: Uint8Array, what: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new OverlaybdError('CONVERT_FAILED', `${what}: not JSON: ${(e as Error).message}`);
  }
  return parseWith(schema, raw, what, 'CONVERT_FAILED');
}

// ---- Go value helpers: omitempty means "leave out empty strings, false, empty lists and maps".

const s = (v: string | null | undefined) => (v ? v : undefined);
const list = (v: readonly string[] | null | undefined) => (v && v.length > 0 ? [...v] : undefined);
const map = (v: Record<string, string> | null | undefined) => (v && Object.keys(v).length > 0 ? new GoMap(Object.entries(v)) : undefined);
const set = (v: Record<string, unknown> | null | undefined) =>
  v && Object.keys(v).length > 0 ? new GoMap(Object.keys(v).map((k) => [k, {}])) : undefined;

/**
 * A time.Time round trip: RFC 3339 in, RFC 3339 with nanoseconds out
 * (fraction without trailing zeros, `Z` for a zero offset).
 */
export function goTime(v: string, what: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(v);
  if (!m) throw new OverlaybdError('CONVERT_FAILED', `${what}: "${v}" is not an RFC 3339 time`);
  const frac = (m[3] ?? '').slice(0, 9).replace(/0+$/, '');
  const off = m[4] === '+00:00' || m[4] === '-00:00' ? 'Z' : m[4]!;
  return `${m[1]}T${m[2]}${frac ? '.' + frac : ''}${off}`;
}

const time = (v: string | null | undefined, what: string) => (v === null || v === undefined ? undefined : goTime(v, what));

export function platformStruct(p: Platform): Record<string, unknown> {
  return {
    architecture: p.architecture ?? '',
    os: p.os ?? '',
    'os.version': s(p['os.version']),
    'os.features': list(p['os.features']),
    variant: s(p.variant),
  };
}

export function descriptorStruct(d: Descriptor): Record<string, unknown> {
  return {
    mediaType: d.mediaType ?? '',
    digest: d.digest,
    size: d.size,
    urls: list(d.urls),
    annotations: map(d.annotations),
    data: s(d.data),
    platform: d.platform ? platformStruct(d.platform) : undefined,
    artifactType: s(d.artifactType),
  };
}

/** The config as Go's `ocispec.Image` marshals it, with `diff_ids` replaced. */
export function marshalConfig(c: ImageConfig, diffIds: string[], what = 'image config'): Buffer {
  const cfg = c.config ?? {};
  return goMarshalBytes({
    created: time(c.created, `${what}: created`),
    author: s(c.author),
    architecture: c.architecture ?? '',
    os: c.os ?? '',
    'os.version': s(c['os.version']),
    'os.features': list(c['os.features']),
    variant: s(c.variant),
    config: {
      User: s(cfg.User),
      ExposedPorts: set(cfg.ExposedPorts),
      Env: list(cfg.Env),
      Entrypoint: list(cfg.Entrypoint),
      Cmd: list(cfg.Cmd),
      Volumes: set(cfg.Volumes),
      WorkingDir: s(cfg.WorkingDir),
      Labels: map(cfg.Labels),
      StopSignal: s(cfg.StopSignal),
      ArgsEscaped: cfg.ArgsEscaped ? true : undefined,
    },
    rootfs: { type: c.rootfs.type ?? '', diff_ids: diffIds },
    history:
      c.history && c.history.length > 0
        ? c.history.map((h, i) => ({
            created: time(h.created, `${what}: history[${i}].created`),
            created_by: s(h.created_by),
            author: s(h.author),
            comment: s(h.comment),
            empty_layer: h.empty_layer ? true : undefined,
          }))
        : undefined,
  });
}

export interface ManifestOut {
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string> | null;
}

export function marshalManifest(m: ManifestOut): Buffer {
  return goMarshalBytes({
    schemaVersion: 2,
    mediaType: s(m.mediaType),
    artifactType: s(m.artifactType),
    config: descriptorStruct(m.config),
    layers: m.layers.map(descriptorStruct),
    subject: m.subject ? descriptorStruct(m.subject) : undefined,
    annotations: map(m.annotations),
  });
}

export interface IndexOut {
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string> | null;
}

export function marshalIndex(ix: IndexOut): Buffer {
  return goMarshalBytes({
    schemaVersion: 2,
    mediaType: s(ix.mediaType),
    artifactType: s(ix.artifactType),
    manifests: ix.manifests.map(descriptorStruct),
    subject: ix.subject ? descriptorStruct(ix.subject) : undefined,
    annotations: map(ix.annotations),
  });
}
