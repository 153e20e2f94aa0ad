/** The longest delay a Node timer keeps; a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A delay a timer can keep: at least `minMs`, at most about 24.8 days. A TTL of Vault's default maximum (768 h) times a
 * refresh fraction passes that limit, and the timer would fire at once, over and over; capped, it fires early once and
 * its handler plans again.
 */
export function timerDelay(ms: number, minMs: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(minMs, ms));
}
