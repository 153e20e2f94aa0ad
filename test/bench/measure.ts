/** Shared measurement for the benchmarks: each compares a subject with its baseline in the same run. */

/** One operation under measurement. */
export type Call = () => Promise<unknown>;

/** The value at quantile `p` of sorted samples. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/**
 * Sequential latency in microseconds, after `warmup` calls each. Subjects are measured in alternating rounds so that
 * machine noise hits every subject alike; with `rotate`, each round also starts with the next subject, so that none
 * is always the one measured right after another's work (a write-back, a journal commit) lands.
 */
export async function latencies(subjects: readonly Call[], options: { warmup: number; perRound: number; rounds: number; rotate?: boolean }): Promise<Array<{ p50: number; p95: number }>> {
  const { warmup, perRound, rounds } = options;
  const samples = subjects.map(() => new Float64Array(perRound * rounds));
  for (const subject of subjects) for (let i = 0; i < warmup; i++) await subject();
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const s = options.rotate === true ? (k + round) % subjects.length : k;
      const subject = subjects[s] as Call;
      const out = samples[s] as Float64Array;
      for (let i = 0; i < perRound; i++) {
        const start = performance.now();
        await subject();
        out[round * perRound + i] = (performance.now() - start) * 1_000;
      }
    }
  }
  return samples.map((s) => {
    s.sort();
    return { p50: percentile(s, 0.5), p95: percentile(s, 0.95) };
  });
}

/** Operations per second for `total` calls with `inFlight` outstanding at any time. */
export async function throughput(subject: Call, options: { total: number; inFlight: number }): Promise<number> {
  let issued = 0;
  const start = performance.now();
  const lane = async (): Promise<void> => {
    while (issued < options.total) {
      issued++;
      await subject();
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, lane));
  return options.total / ((performance.now() - start) / 1_000);
}
