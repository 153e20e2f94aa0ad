const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes resource quantity ("500m", "4Gi", "1.5", "2e3") as a plain number; undefined when unreadable. */
export function parseQuantity(q: string | undefined): number | undefined {
  if (q === undefined) return undefined;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?\d+)?)([KMGTPE]i|[numkMGTPE])?$/.exec(q.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  if (!Number.isFinite(n)) return undefined;
  const suffix = m[2] ?? '';
  return n * (BINARY[suffix] ?? DECIMAL[suffix] ?? 1);
}

export const toMillicores = (q: string | undefined): number => Math.round((parseQuantity(q) ?? 0) * 1_000);
export const toMiB = (q: string | undefined): number => Math.floor((parseQuantity(q) ?? 0) / 2 ** 20);
export const toCount = (q: string | undefined): number => Math.floor(parseQuantity(q) ?? 0);
