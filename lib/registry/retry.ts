/**
 * Retry policy: exponential backoff with full jitter, bounded by a count and
 * a total time, honouring a server's Retry-After.
 */
import { z } from 'zod';
import { parseWith } from '../config.js';
import { OverlaybdError } from '../errors.js';

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

/** The delay before attempt `attempt + 1` (attempt counts from 1). */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number, random = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  // Full jitter in [exp/2, exp): spreads retries of many clients without going to zero.
  const jittered = exp / 2 + random() * (exp / 2);
  if (retryAfterMs !== undefined) return Math.max(retryAfterMs, jittered);
  return Math.round(jittered);
}

/** Tracks one operation's attempts against a policy. */
export class RetryBudget {
  readonly policy: RetryPolicy;
  private readonly started = Date.now();
  attempt = 0;

  constructor(policy: RetryPolicy) {
    this.policy = policy;
  }

  /** Starts an attempt; false when the count is used up. */
  next(): boolean {
    if (this.attempt >= this.policy.maxAttempts) return false;
    this.attempt++;
    return true;
  }

  /**
   * The wait before another attempt, or undefined when none may be made (count
   * used up, or the wait would pass the total time bound).
   */
  delay(retryAfterMs?: number): number | undefined {
    if (this.attempt >= this.policy.maxAttempts) return undefined;
    const d = backoffDelay(this.policy, this.attempt, retryAfterMs);
    if (Date.now() - this.started + d > this.policy.maxTotalMs) return undefined;
    return d;
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
