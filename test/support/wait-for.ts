/**
 * Waiting for a condition instead of sleeping "long enough": a fixed sleep is too short on a
 * loaded CI machine and wasted time on a fast one. The bound only turns a condition that never
 * comes into a clear failure; it is generous because reaching it is a failure, never a timing.
 */
export interface WaitForOptions {
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
  /** Time between checks (default 20 ms). */
  intervalMs?: number;
  /** What is awaited, for the failure message; a function is called at the failure (e.g. to show a status). */
  what?: string | (() => string | Promise<string>);
}

/** Resolves with the condition's first truthy value; rejects when the bound is reached. */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitForOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 20_000, intervalMs = 20, what = 'the condition' } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      const description = typeof what === 'function' ? await what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
