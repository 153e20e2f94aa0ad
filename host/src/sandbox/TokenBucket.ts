/**
 * A token bucket: `rate` tokens per second, at most `burst` held. `take(n)` spends n tokens when there are that many
 * and says whether it could; a request larger than the bucket can never be granted and spends nothing.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.#rate = rate;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  take(n: number): boolean {
    const now = this.#now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#rate) / 1_000);
      this.#at = now;
    }
    if (n > this.#tokens) return false;
    this.#tokens -= n;
    return true;
  }
}
