/** Linked cancellation: our own abort joined with the caller's signal. */

export interface LinkedAbort {
  /** Aborts when the caller's signal does or when `abort` is called; its reason is the first one. */
  readonly signal: AbortSignal;
  /** Aborts `signal` (and the work under it) unless it already is; the caller's signal is not touched. */
  abort(reason: unknown): void;
}

export function linkedAbort(outer?: AbortSignal): LinkedAbort {
  const own = new AbortController();
  const signal = outer ? AbortSignal.any([outer, own.signal]) : own.signal;
  return {
    signal,
    abort(reason) {
      if (!signal.aborted) own.abort(reason);
    },
  };
}
