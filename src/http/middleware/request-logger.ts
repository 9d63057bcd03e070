/**
 * One pino line per request: method, path (no query string: search values can carry
 * identifiers), status and duration. Bodies are never logged.
 */
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

export function requestLogger(logger: Logger) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const start = performance.now();
    try {
      await next();
    } finally {
      const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
      const line = { method: ctx.method, path: ctx.path, status: ctx.status, durationMs };
      if (ctx.state.error) logger.error({ ...line, err: ctx.state.error }, 'request failed');
      else logger.info(line, 'request');
    }
  };
}
