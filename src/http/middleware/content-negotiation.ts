/**
 * FHIR R4 http.html#mime-type: application/fhir+json, application/json and `_format=json` all
 * mean JSON. XML is not supported (the CapabilityStatement says so): asking only for it → 406.
 */
import type { Context, Next } from 'koa';
import { FhirError } from '../../fhir/fhir-error.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir', 'text/json']);

/** True when a media range (without parameters) accepts a JSON FHIR response. */
function acceptsJson(range: string): boolean {
  return ['*/*', 'application/*', 'application/json', 'application/fhir+json', 'application/json+fhir', 'text/json']
    .includes(range);
}

export async function contentNegotiation(ctx: Context, next: Next): Promise<void> {
  // Parsing the query string is skipped on the hot path when `_format` cannot be in it.
  const format = ctx.querystring.includes('_format') ? ctx.query._format : undefined;
  if (format !== undefined) {
    const value = (Array.isArray(format) ? format[0]! : format).split(';')[0]!.trim().toLowerCase();
    if (!JSON_FORMATS.has(value)) {
      throw new FhirError(406, { severity: 'error', code: 'not-supported', diagnostics: 'Only JSON is supported (_format=json)' });
    }
  } else {
    const accept = ctx.get('Accept');
    if (accept !== '' && accept !== '*/*' && accept !== 'application/fhir+json' && accept !== 'application/json') {
      const ranges = accept.split(',').map((r) => {
        const [type, ...params] = r.split(';');
        const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
        return { type: type!.trim().toLowerCase(), q: q ? Number(q.slice(2)) : 1 };
      });
      if (!ranges.some((r) => r.q > 0 && acceptsJson(r.type))) {
        throw new FhirError(406, {
          severity: 'error', code: 'not-supported', diagnostics: 'Only application/fhir+json and application/json are supported',
        });
      }
    }
  }
  await next();
}
