/**
 * Checkpoints the SQLite write-ahead log from a worker thread, off the event loop.
 *
 * Why: with the default automatic checkpoint, every 1,000th page written makes one COMMIT copy
 * the log into the database file and fsync it, on the thread that serves HTTP; during bundle
 * loads that was the largest single cost after the inserts themselves (bench/rest-core.bench.ts).
 * Here a second connection in a worker copies the log every `intervalMs` (PASSIVE: it never
 * blocks the writer or readers, https://www.sqlite.org/wal.html#ckpt), and the writer keeps a
 * larger automatic checkpoint only as a bound on the log should the worker fall behind.
 * Durability is unchanged: a COMMIT is durable once in the log, whoever checkpoints it later.
 */
import { Worker } from 'node:worker_threads';

export interface WalCheckpointerOptions {
  file: string;
  synchronous: 'NORMAL' | 'FULL';
  /** How often the worker checkpoints (default 100 ms). */
  intervalMs?: number;
}

/** The writer's own automatic checkpoint while the worker runs, in pages: the log's bound. */
export const WRITER_AUTOCHECKPOINT_PAGES = 10_000;

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(options: WalCheckpointerOptions) {
    this.worker = new Worker(new URL('./wal-checkpoint-worker.js', import.meta.url), {
      workerData: { file: options.file, synchronous: options.synchronous, intervalMs: options.intervalMs ?? 100 },
    });
    // A failed worker only means the writer's automatic checkpoint does the work again.
    this.worker.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.unref();
  }

  /** Stops the worker after its current checkpoint and closes its connection. */
  async stop(): Promise<void> {
    // Referenced again while stopping: a process waiting only for this must not exit before it.
    this.worker.ref();
    this.worker.postMessage('stop');
    await this.exited;
  }
}
