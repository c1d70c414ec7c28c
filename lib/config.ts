/**
 * config.v1.json: the per-device image config upstream's overlaybd-tcmu and
 * the snapshotter exchange (docs/format.md §5.1). Parsed with zod; every
 * error names the offending field. Paths resolve relative to the file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { OverlaybdError, type ErrorCode } from './errors.js';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>');

export const LowerSchema = z
  .object({
    file: z.string().min(1).optional(),
    dir: z.string().min(1).optional(),
    digest: digest.optional(),
    size: z.number().int().nonnegative().optional(),
    targetFile: z.string().optional(),
    targetDigest: digest.optional(),
    gzipIndex: z.string().optional(),
  })
  .loose();

export const UpperSchema = z
  .object({
    index: z.string().optional(),
    data: z.string().min(1),
    target: z.string().optional(),
    gzipIndex: z.string().optional(),
  })
  .loose();

export const ImageConfigSchema = z
  .object({
    repoBlobUrl: z.string().optional(),
    lowers: z.array(LowerSchema).max(255).default([]),
    // Upstream's snapshotter writes `"upper": {}` for a read-only image: no upper.
    upper: z.preprocess((v) => (v !== null && typeof v === 'object' && Object.keys(v).length === 0 ? undefined : v), UpperSchema.optional()),
    resultFile: z.string().optional(),
    accelerationLayer: z.boolean().optional(),
    recordTracePath: z.string().optional(),
    download: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

export type ImageConfig = z.infer<typeof ImageConfigSchema>;

/** Formats zod issues as "lowers[2].file: expected string". */
export function describeIssues(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const p = i.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
      return `${p.replace(/^\./, '') || '(root)'}: ${i.message}`;
    })
    .join('; ');
}

/** Validates `value` against `schema`, throwing `code` (CONFIG_INVALID) naming the source and field. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, source: string, code: ErrorCode = 'CONFIG_INVALID'): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    // A check may carry its own code (filePath: EINVAL), whatever the source.
    const custom = r.error.issues.find((i) => i.code === 'custom' && i.params?.code);
    const own = custom?.code === 'custom' ? (custom.params?.code as ErrorCode) : undefined;
    throw new OverlaybdError(own ?? code, `${source}: ${describeIssues(r.error)}`);
  }
  return r.data;
}

/** Checks a function argument: a caller's mistake is EINVAL naming the argument. */
export function argument<T extends z.ZodType>(schema: T, value: unknown, name: string): z.infer<T> {
  return parseWith(schema, value, name, 'EINVAL');
}

/** A byte offset or length JavaScript numbers hold exactly. */
export const u64 = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** A non-empty file path; a NUL byte (which C would cut the path at) is EINVAL. */
export const filePath = z
  .string()
  .min(1, 'must be a non-empty path')
  .refine((s) => !s.includes('\0'), { message: 'must not contain a NUL byte', params: { code: 'EINVAL' } });

export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OverlaybdError(err.code === 'ENOENT' ? 'ENOENT' : 'EIO', `cannot read ${file}: ${err.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** The local file of a lower, first existing wins (§5.1); undefined when none exists. */
async function findLowerFile(lower: z.infer<typeof LowerSchema>): Promise<{ file?: string; tried: string[] }> {
  const candidates = [lower.file];
  if (lower.dir) {
    for (const n of ['overlaybd.commit', '.commit', 'overlaybd.sealed']) candidates.push(path.join(lower.dir, n));
  }
  const tried = candidates.filter((c): c is string => !!c);
  for (const c of tried) {
    try {
      await fs.access(c);
      return { file: c, tried };
    } catch {
      /* try the next */
    }
  }
  return { tried };
}

/** What the native stack opens: local files only. */
export interface ImageSpec {
  lowers: string[];
  upper?: { data: string; index?: string };
  ioEngine?: 'psync' | 'io_uring';
}

/** Where a lower's bytes come from: a local file, or a registry blob read on demand. */
export type LowerSource =
  | { file: string }
  | { url: string; digest: string; size?: number; dir?: string };

/** A config.v1.json with its paths made absolute and each lower resolved (§5.1). */
export interface ResolvedImageConfig {
  config: ImageConfig;
  lowers: LowerSource[];
  upper?: { data: string; index?: string };
  /** Absolute form of a path in the config (relative to the config file). */
  abs(p: string): string;
}

/**
 * Reads a config.v1.json and resolves each lower: its local file (first
 * existing of file, dir/overlaybd.commit, dir/.commit, dir/overlaybd.sealed),
 * else the remote blob repoBlobUrl/digest. A lower with neither is ENOENT.
 */
export async function resolveImageConfig(file: string): Promise<ResolvedImageConfig> {
  const config = parseWith(ImageConfigSchema, await readJsonFile(file), file);
  const base = path.dirname(path.resolve(file));
  const abs = (p: string) => path.resolve(base, p);
  const lowers: LowerSource[] = [];
  // An acceleration layer (the last lower) holds a trace, not layer data: it is off the stack (format §5.1).
  const stack = config.accelerationLayer ? config.lowers.slice(0, -1) : config.lowers;
  for (const [i, l] of stack.entries()) {
    const dir = l.dir && abs(l.dir);
    const found = await findLowerFile({ ...l, file: l.file && abs(l.file), dir });
    if (found.file) {
      lowers.push({ file: found.file });
    } else if (config.repoBlobUrl && l.digest) {
      const url = `${config.repoBlobUrl.replace(/\/+$/, '')}/${l.digest}`;
      lowers.push({ url, digest: l.digest, ...(l.size !== undefined ? { size: l.size } : {}), ...(dir ? { dir } : {}) });
    } else {
      const what = found.tried.length ? `no local layer file (tried ${found.tried.join(', ')})` : 'no file or dir';
      const remote = config.repoBlobUrl ? 'and no digest to fetch' : 'and no repoBlobUrl to fetch it from';
      throw new OverlaybdError('ENOENT', `${file}: lowers[${i}]: ${what}, ${remote}`);
    }
  }
  const upper = config.upper
    ? { data: abs(config.upper.data), ...(config.upper.index ? { index: abs(config.upper.index) } : {}) }
    : undefined;
  return { config, lowers, ...(upper ? { upper } : {}), abs };
}

/** The spec the native stack opens without the image service, when every lower of `r` is a local file. */
export function localSpec(r: ResolvedImageConfig): ImageSpec | undefined {
  const lowers: string[] = [];
  for (const l of r.lowers) {
    if (!('file' in l)) return undefined;
    lowers.push(l.file);
  }
  return { lowers, ...(r.upper ? { upper: r.upper } : {}) };
}

/** A config whose lowers are all local files, as the native stack opens it without the image service. */
export async function loadImageConfig(file: string): Promise<{ config: ImageConfig; spec: ImageSpec }> {
  const r = await resolveImageConfig(file);
  const spec = localSpec(r);
  if (!spec) {
    const i = r.lowers.findIndex((l) => !('file' in l));
    throw new OverlaybdError('ENOENT', `${file}: lowers[${i}]: no local layer file; remote layers need the image service (openImageConfig)`);
  }
  return { config: r.config, spec };
}
