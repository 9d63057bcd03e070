/**
 * Clients that each send one request, wait for its answer and send the next (a closed loop, as an
 * ETL job or an EHR interface does), bounded in count and in time. For large bodies sent back to
 * back, where autocannon's fixed request list does not fit.
 */

export interface ClosedLoopOptions {
  clients: number;
  /** No request starts after this many ms; in-flight ones are awaited. */
  durationMs: number;
  /** No more than this many requests in all. */
  maxRequests: number;
  /** A request not answered within this is aborted and counted as a timeout. */
  timeoutMs: number;
  /** Stops the loop early (no new request starts). */
  stop?: AbortSignal;
  /** Sends request number `index`; resolves to the HTTP status once the whole answer is read. */
  send(index: number, signal: AbortSignal): Promise<number>;
}

export interface Completion { startMs: number; endMs: number; status: number }

export interface ClosedLoopResult {
  completions: Completion[];
  timeouts: number;
  errors: number;
  elapsedMs: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const started = performance.now();
  const completions: Completion[] = [];
  let next = 0;
  let timeouts = 0;
  let errors = 0;
  const running = () => next < options.maxRequests && performance.now() - started < options.durationMs && !options.stop?.aborted;
  async function client(): Promise<void> {
    while (running()) {
      const index = next++;
      const startMs = performance.now();
      try {
        const status = await options.send(index, AbortSignal.timeout(options.timeoutMs));
        completions.push({ startMs, endMs: performance.now(), status });
      } catch (error) {
        if ((error as Error).name === 'TimeoutError') timeouts++;
        else errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: options.clients }, client));
  return { completions, timeouts, errors, elapsedMs: performance.now() - started };
}

/** The p-th percentile (0–100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** POSTs a JSON text to `url` and reads the whole answer; resolves to the status. */
export async function postJsonText(url: string, body: string, signal: AbortSignal): Promise<number> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body, signal });
  await response.arrayBuffer();
  return response.status;
}
