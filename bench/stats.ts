/** Percentiles and summaries of samples (nearest-rank, so p99 of 200 samples is the 198th). */

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  min: number;
}

/** A timed-out sample counts as Infinity: it can only make the percentiles worse. */
export function distribution(samples: readonly number[]): Distribution {
  return {
    count: samples.length,
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
    max: samples.length ? Math.max(...samples) : NaN,
    min: samples.length ? Math.min(...samples) : NaN,
  };
}

/** Observer output (ns, -1 = timed out) as µs. */
export function nsToUs(values: readonly number[]): number[] {
  return values.map((value) => (value < 0 ? Infinity : value / 1000));
}
