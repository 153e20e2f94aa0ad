/**
 * Kubernetes resource quantities (`resource.Quantity`): "100m", "0.5", "64Mi", "1G", "1e3". The agent needs them to
 * turn a container's `resources` into Docker limits the way the kubelet's dockershim did.
 */
const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a quantity as a plain number (cores for CPU, bytes for memory). */
export function parseQuantity(quantity: string | number): number {
  if (typeof quantity === 'number') return quantity;
  const match = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(quantity.trim());
  const multiplier = match === null ? undefined : SUFFIXES[match[2] ?? ''];
  if (match === null || multiplier === undefined) throw new Error(`not a Kubernetes quantity: '${quantity}'`);
  return Number(match[1]) * multiplier;
}

/** CPU in millicores, rounded up as the kubelet does (`MilliValue`). */
export function milliCpu(quantity: string | number): number {
  return Math.ceil(parseQuantity(quantity) * 1000 - 1e-9);
}

/** Memory in bytes, rounded up (`Value`). */
export function bytes(quantity: string | number): number {
  return Math.ceil(parseQuantity(quantity) - 1e-9);
}
