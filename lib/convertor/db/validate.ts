import type { z } from 'zod';
import { OverlaybdError } from '../../errors.js';

/** Parses with a schema; a failure is CONFIG_INVALID naming the field. */
export function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new OverlaybdError(
    'CONFIG_INVALID',
    `invalid ${what}: field ${issue?.path.join('.') || '(value)'}: ${issue?.message ?? 'invalid'}`,
  );
}
