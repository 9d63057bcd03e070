/**
 * Methods outside FHIR's RESTful API (R4 http.html: GET, HEAD, POST, PUT, PATCH, DELETE; OPTIONS
 * answered by the router with Allow) get 405 and an OperationOutcome on every URL, before any
 * routing: `TRACE` would otherwise be a 501 from the router, and `CONNECT` a dropped connection.
 * RFC 9110 section 15.5.6: a 405 carries Allow.
 */
import type { Context, Next } from 'koa';
import { FhirError } from '../../fhir/fhir-error.js';

export const FHIR_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

const supported = new Set(FHIR_METHODS);

export function unsupportedMethods(ctx: Context, next: Next): Promise<void> {
  if (!supported.has(ctx.method)) {
    throw new FhirError(405, {
      severity: 'error', code: 'not-supported', diagnostics: 'Method not allowed: this FHIR server answers GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS',
    }, { Allow: FHIR_METHODS.join(', ') });
  }
  return next();
}
