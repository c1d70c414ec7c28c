/** Summaries of repeated measurements, shared by the benches. */

export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error('median of no measurements');
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Figure by figure, the median of several measurements of the same thing. */
export function medians<T extends object>(samples: T[]): T {
  if (samples.length === 0) throw new Error('medians of no measurements');
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(samples[0]!)) {
    const xs = samples.map((s) => (s as Record<string, unknown>)[k]);
    out[k] = xs.every((x) => typeof x === 'number') ? median(xs as number[]) : xs[0];
  }
  return out as T;
}
