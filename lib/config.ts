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
    upper: UpperSchema.optional(),
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

/** The local file of a lower, first existing wins (§5.1). */
async function resolveLowerFile(lower: z.infer<typeof LowerSchema>, index: number, source: string): Promise<string> {
  const candidates = [lower.file];
  if (lower.dir) {
    for (const n of ['overlaybd.commit', '.commit', 'overlaybd.sealed']) candidates.push(path.join(lower.dir, n));
  }
  for (const c of candidates) {
    if (!c) continue;
    try {
      await fs.access(c);
      return c;
    } catch {
      /* try the next */
    }
  }
  throw new OverlaybdError(
    'ENOENT',
    `${source}: lowers[${index}]: no local layer file (tried ${candidates.filter(Boolean).join(', ') || 'nothing: set file or dir'}); remote layers need the image service`,
  );
}

/** What the native stack opens: local files only. */
export interface ImageSpec {
  lowers: string[];
  upper?: { data: string; index?: string };
  ioEngine?: 'psync' | 'io_uring';
}

export async function loadImageConfig(file: string): Promise<{ config: ImageConfig; spec: ImageSpec }> {
  const config = parseWith(ImageConfigSchema, await readJsonFile(file), file);
  const base = path.dirname(path.resolve(file));
  const abs = (p: string) => path.resolve(base, p);
  const lowers: string[] = [];
  for (const [i, l] of config.lowers.entries()) {
    const withAbs = { ...l, file: l.file && abs(l.file), dir: l.dir && abs(l.dir) };
    lowers.push(await resolveLowerFile(withAbs, i, file));
  }
  const spec: ImageSpec = { lowers };
  if (config.upper) {
    spec.upper = { data: abs(config.upper.data), ...(config.upper.index ? { index: abs(config.upper.index) } : {}) };
  }
  return { config, spec };
}
