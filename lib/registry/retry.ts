/**
 * Retry policy: exponential backoff with jitter (p-retry), bounded by a
 * count and a total time, honouring a server's Retry-After.
 */
import pRetry from 'p-retry';
import { z } from 'zod';
import { parseWith } from '../config.js';

export const RetryPolicySchema = z.object({
  /** Attempts in all, the first included. */
  maxAttempts: z.number().int().min(1).max(100).default(5),
  baseDelayMs: z.number().int().min(0).default(200),
  maxDelayMs: z.number().int().min(0).default(10_000),
  /** No new attempt starts once this much time has passed since the first. */
  maxTotalMs: z.number().int().min(0).default(120_000),
});

export type RetryPolicyInput = z.input<typeof RetryPolicySchema>;
export type RetryPolicy = z.output<typeof RetryPolicySchema>;

export function resolveRetryPolicy(p: RetryPolicyInput | undefined): RetryPolicy {
  return parseWith(RetryPolicySchema, p ?? {}, 'retry options');
}

/** Parses Retry-After (delta seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Thrown by an attempt that may be tried again; `withRetry` rethrows `error` when no attempt is left. */
export class RetryableError extends Error {
  constructor(
    readonly error: unknown,
    /** The server's Retry-After: the next attempt waits at least this long. */
    readonly retryAfterMs?: number,
  ) {
    super((error as Error)?.message ?? String(error));
  }
}

export interface RetryHooks {
  signal?: AbortSignal;
  /** Called as attempt `attempt` starts again after a failure (attempt counts from 2). */
  onRetry?: (info: { attempt: number; reason: string }) => void;
}

/**
 * Runs `attempt(n)` (n from 1) with p-retry: exponential backoff with
 * jitter between `baseDelayMs` and `maxDelayMs`, at most `maxAttempts`
 * attempts and no new one after `maxTotalMs`. Only a RetryableError is
 * retried; anything else, or the last failure (unwrapped), is thrown. An
 * aborted signal rejects at once with its reason, also during a wait.
 */
export async function withRetry<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>, hooks: RetryHooks = {}): Promise<T> {
  let failed: RetryableError | undefined;
  let failedAt = 0;
  const started = Date.now();
  try {
    return await pRetry(
      async (n) => {
        if (failed) {
          hooks.onRetry?.({ attempt: n, reason: failed.message });
          // p-retry waited its backoff; a longer Retry-After waits the rest,
          // unless that would pass the policy's overall time limit.
          const rest = (failed.retryAfterMs ?? 0) - (Date.now() - failedAt);
          if (Date.now() - started + rest > policy.maxTotalMs) throw failed.error;
          if (rest > 0) await sleep(rest, hooks.signal);
          failed = undefined;
        }
        return attempt(n);
      },
      {
        retries: policy.maxAttempts - 1,
        factor: 2,
        minTimeout: policy.baseDelayMs,
        maxTimeout: policy.maxDelayMs,
        randomize: true,
        maxRetryTime: policy.maxTotalMs,
        ...(hooks.signal ? { signal: hooks.signal } : {}),
        shouldRetry: ({ error }) => error instanceof RetryableError,
        onFailedAttempt: ({ error }) => {
          failed = error instanceof RetryableError ? error : undefined;
          failedAt = Date.now();
        },
      },
    );
  } catch (e) {
    throw e instanceof RetryableError ? e.error : e;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
