import assert from 'node:assert/strict';

/**
 * The one way tests wait. A budget here guards against a failure (a hang, a lost event, a process that never
 * exits), so it is sized for that failure and never for the expected time: a loaded machine must only make a
 * test slower, never red. Every budget is multiplied by `WM_TEST_TIME_FACTOR` (default 1), which a slow or busy
 * machine (or CI's load leg) raises without touching a test.
 */
export const TIME_FACTOR = readTimeFactor(process.env['WM_TEST_TIME_FACTOR']);

/** Default budget of a wait, in ms before scaling: long enough for a cold plugin thread on a loaded 2-core machine. */
export const DEFAULT_WAIT_MS = 20_000;

function readTimeFactor(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const factor = Number(raw);
  if (!Number.isFinite(factor) || factor < 1) throw new Error(`WM_TEST_TIME_FACTOR must be a number >= 1, got '${raw}'`);
  return factor;
}

/** A test budget in ms, scaled by `WM_TEST_TIME_FACTOR`. Use it for node:test `timeout`s and subprocess deadlines. */
export function budget(ms: number): number {
  return Math.round(ms * TIME_FACTOR);
}

/**
 * Polls `probe` until it yields something other than `undefined` or `false`, and returns that. Fails the test after
 * `timeoutMs` (scaled by `WM_TEST_TIME_FACTOR`), naming what it waited for (`what` may be a function, to describe the
 * state at the time of failure).
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string | (() => string),
  timeoutMs = DEFAULT_WAIT_MS,
  everyMs = 20,
): Promise<T> {
  const limit = budget(timeoutMs);
  const deadline = Date.now() + limit;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${limit} ms waiting for ${describe(what)}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * Waits for `promise` (a reply, a subprocess exit, an event) and returns its value; fails the test after `timeoutMs`
 * (scaled), naming what it waited for. The promise is not cancelled: pass an AbortSignal to the work if it must stop.
 */
export async function within<T>(promise: Promise<T>, what: string | (() => string), timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
  const limit = budget(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `timed out after ${limit} ms waiting for ${describe(what)}` })), limit);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(what: string | (() => string)): string {
  return typeof what === 'string' ? what : what();
}
