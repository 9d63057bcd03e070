/**
 * One pino line per request: method, route (ids masked), query (values masked), status and
 * duration; see ../log-redaction.ts. Bodies and headers are never logged. An error's class,
 * message and stack are logged for a 5xx only: a 4xx is the client's mistake, and its message
 * may echo the client's input.
 */
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { redactQuery, redactRoute, type ResourceTypePredicate } from '../log-redaction.js';

export function requestLogger(logger: Logger, isResourceType: ResourceTypePredicate) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const start = performance.now();
    let escaped: unknown;
    try {
      await next();
    } catch (error) {
      escaped = error;
      throw error;
    } finally {
      const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
      // An error that got past the error handler becomes Koa's own 500 (or the error's status).
      const thrownStatus = (escaped as { status?: unknown } | undefined)?.status;
      const status = escaped === undefined ? ctx.status : typeof thrownStatus === 'number' ? thrownStatus : 500;
      // A literal object of fixed shape: pino serializes it on its fast path (a spread here made
      // the logger cost twice as much per request, bench/read-layers.bench.ts).
      const route = redactRoute(ctx.path, isResourceType);
      const querystring = ctx.querystring;
      const line = querystring === ''
        ? { method: ctx.method, route, status, durationMs }
        : { method: ctx.method, route, query: redactQuery(querystring), status, durationMs };
      const error = escaped ?? ctx.state.error;
      if (error !== undefined && status >= 500) {
        logger.error({ ...line, error: errorSummary(error) }, 'request failed');
      } else {
        logger.info(line, 'request');
      }
    }
  };
}

/**
 * Class name, message and stack, nothing else: not pino's err serializer, which adds every
 * enumerable property and the causes' messages.
 */
function errorSummary(error: unknown): { type: string; message?: string; stack?: string } {
  if (!(error instanceof Error)) return { type: typeof error };
  return { type: error.constructor.name, message: error.message, ...(error.stack !== undefined ? { stack: error.stack } : {}) };
}
