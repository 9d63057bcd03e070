/**
 * Where pino writes the server's log: lines collected in memory and written to a file
 * descriptor in batches, one synchronous write per `flushChars` characters, and at least every
 * `flushIntervalMs` so a quiet server's lines still show up promptly.
 *
 * Why not pino.destination (sonic-boom): its write() measures the UTF-8 length of the whole
 * pending buffer on every line (O(buffer) per line), about 2.4 µs per request-log line at an
 * 8 KiB buffer; reads by id lost about 15 % of their throughput to the log
 * (bench/read-layers.bench.ts). Here a line costs an array push, and the join, the UTF-8
 * encoding and the system call happen once per batch of about a hundred lines. Writes are
 * synchronous, as with pino's default destination, so there is never a write in flight whose
 * outcome is unknown: what write() accepted is either in the file or in `lines`.
 *
 * Like any buffered log, lines not yet written are lost if the process is killed with SIGKILL;
 * a normal exit writes them (flushSync from an 'exit' handler).
 */
import fs from 'node:fs';

export interface BufferedLogDestinationOptions {
  /** Write once this many characters wait (default 16 Ki). */
  flushChars?: number;
  /** …or once this much time has passed with lines waiting (default 200 ms). */
  flushIntervalMs?: number;
}

/** How long to wait before retrying a write to a full non-blocking pipe, and how often. */
const RETRY_WAIT_MS = 1;
const MAX_RETRIES = 1000;

export class BufferedLogDestination {
  private lines: string[] = [];
  private pendingChars = 0;
  private readonly flushChars: number;
  private readonly timer: NodeJS.Timeout;
  /** Bytes that could not be written (the log must never take the server down). */
  droppedBytes = 0;

  constructor(private readonly fd: number, options: BufferedLogDestinationOptions = {}) {
    this.flushChars = options.flushChars ?? 16_384;
    this.timer = setInterval(() => this.flushSync(), options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  /** pino's destination contract: one serialized line (with its newline) per call. */
  write(line: string): boolean {
    this.lines.push(line);
    this.pendingChars += line.length;
    if (this.pendingChars >= this.flushChars) this.flushSync();
    return true;
  }

  /** pino's logger.flush(). */
  flush(callback?: (error?: Error) => void): void {
    this.flushSync();
    callback?.();
  }

  /** Writes every waiting line now. */
  flushSync(): void {
    if (this.lines.length === 0) return;
    const bytes = Buffer.from(this.lines.join(''), 'utf8');
    this.lines = [];
    this.pendingChars = 0;
    let retries = 0;
    for (let offset = 0; offset < bytes.length;) {
      try {
        offset += fs.writeSync(this.fd, bytes, offset, bytes.length - offset);
      } catch (error) {
        // A non-blocking pipe whose reader is behind: wait for it a little, as pino's own
        // synchronous destination does, rather than drop lines at the first sign of pressure.
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN' && retries++ < MAX_RETRIES) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_WAIT_MS);
          continue;
        }
        this.droppedBytes += bytes.length - offset;
        return;
      }
    }
  }

  /** Writes what waits and stops the timer. */
  close(): void {
    clearInterval(this.timer);
    this.flushSync();
  }
}
