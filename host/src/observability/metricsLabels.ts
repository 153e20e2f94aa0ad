/** Label value used once a label has seen its quota of distinct values. */
export const OVERFLOW_LABEL = 'other';
/** Label value used when the source did not say (a record without a secret name or trigger). */
export const MISSING_LABEL = 'unknown';

/**
 * Caps the distinct values of each label. Most label values come from a closed set (instances in the config, contract
 * methods, error codes, subjects), but some are chosen by plugins or operators (an error code a vendor plugin makes
 * up, a secret name, a failure reason): one misbehaving source must not be able to grow the registry without end, so
 * past `maxValues` distinct values a label reports `other`.
 */
export class LabelBudget {
  readonly #maxValues: number;
  readonly #seen = new Map<string, Set<string>>();

  constructor(maxValues = 100) {
    this.#maxValues = maxValues;
  }

  /** The value to use for `label`: `value` itself while the label is under its quota (or already knows it). */
  value(label: string, value: string | undefined): string {
    if (value === undefined || value.length === 0) return MISSING_LABEL;
    let seen = this.#seen.get(label);
    if (seen === undefined) {
      seen = new Set();
      this.#seen.set(label, seen);
    }
    if (seen.has(value)) return value;
    if (seen.size >= this.#maxValues) return OVERFLOW_LABEL;
    seen.add(value);
    return value;
  }
}

/**
 * Failure reasons without their variable part: `ExitCode137` and `SignalSIGKILL` name the exit status, which is
 * useful in a log line and useless as a label (one series per status); the family is what a dashboard groups by.
 */
export function reasonFamily(reason: string): string {
  const match = /^(ExitCode|Signal)/.exec(reason);
  return match?.[1] ?? reason;
}
