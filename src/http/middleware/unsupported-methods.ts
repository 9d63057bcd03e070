/**
 * Methods outside FHIR's RESTful API (R4 http.html: GET, HEAD, POST, PUT, PATCH, DELETE) get 405
 * and an OperationOutcome on every URL, before any routing: `TRACE` would otherwise be a 501, and
 * `CONNECT` a dropped connection. OPTIONS is answered here with the methods (204 and Allow).
 * RFC 9110 section 15.5.6: a 405 carries Allow.
 */
import type { Context, Next } from 'koa';
import { FhirError } from '../../fhir/fhir-error.js';

export const FHIR_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

const supported = new Set(FHIR_METHODS);

export function unsupportedMethods(ctx: Context, next: Next): Promise<void> {
  if (ctx.method === 'OPTIONS') {
    ctx.set('Allow', FHIR_METHODS.join(', '));
    ctx.status = 204;
    return Promise.resolve();
  }
  if (!supported.has(ctx.method)) {
    throw new FhirError(405, {
      severity: 'error', code: 'not-supported', diagnostics: 'Method not allowed: this FHIR server answers GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS',
    }, { Allow: FHIR_METHODS.join(', ') });
  }
  return next();
}
