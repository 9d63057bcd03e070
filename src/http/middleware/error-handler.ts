/**
 * Renders every error as a FHIR OperationOutcome (DESIGN.md rule 2: one error type, one
 * renderer). A FhirError keeps its status and issues; anything else is a 500 whose details go
 * to the log, never to the client.
 */
import type { Context, Next } from 'koa';
import { FhirError, operationOutcome } from '../../fhir/fhir-error.js';
import { FHIR_JSON } from './content-negotiation.js';

export async function errorHandler(ctx: Context, next: Next): Promise<void> {
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) {
      // The path is not echoed: its segments may be ids.
      throw FhirError.notFound(`No FHIR interaction for ${ctx.method} on this URL`);
    }
  } catch (error) {
    let fhirError: FhirError;
    if (error instanceof FhirError) {
      fhirError = error;
    } else {
      ctx.state.error = error;
      fhirError = new FhirError(500, { severity: 'fatal', code: 'exception', diagnostics: 'Internal server error' });
    }
    ctx.status = fhirError.status;
    for (const [name, value] of Object.entries(fhirError.headers)) ctx.set(name, value);
    ctx.type = FHIR_JSON;
    ctx.body = JSON.stringify(operationOutcome(fhirError.issues));
  }
}
