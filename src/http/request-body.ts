/**
 * Reads and parses request bodies: size limit (413), media type (415), JSON syntax (400),
 * nesting depth (400), repetitions per element (413) and numbers out of range (422) are all
 * checked before anything reaches the service layer, so no body costs validation,
 * de-identification or a vault write before it is known to be within the limits.
 */
import type { Context } from 'koa';
import { FhirError } from '../fhir/fhir-error.js';
import { checkJsonValueLimits } from '../fhir/json-value-limits.js';
import { isResourceObject, type Resource } from '../fhir/resource.js';

export interface BodyLimits {
  /** JSON bodies (resources, bundles, patches): larger → 413, refused while streaming. */
  maxBodyBytes: number;
  maxJsonDepth: number;
  /** `POST _search` form bodies: larger → 413 (a search needs a few hundred bytes, not megabytes). */
  maxFormBodyBytes: number;
  /** Items of any one JSON array (an element's repetitions), except a root Bundle's `entry`: more → 413. */
  maxElementRepetitions: number;
}

const JSON_MEDIA_TYPES = new Set(['application/fhir+json', 'application/json', 'application/json+fhir']);

function mediaType(ctx: Context): string {
  return ctx.get('Content-Type').split(';')[0]!.trim().toLowerCase();
}

/**
 * Reads the raw body, refusing more than `maxBytes` (413) without buffering the excess: a
 * declared Content-Length over the limit is refused before reading, a chunked body as soon as it
 * passes the limit. The rest of the body is then read and dropped, not the connection reset, so
 * that the client, still sending, receives the 413 (a reset can discard it in flight).
 */
export function readRawBody(ctx: Context, maxBytes: number): Promise<string> {
  const tooLarge = () => new FhirError(413, { severity: 'error', code: 'too-long', diagnostics: `Request body exceeds ${maxBytes} bytes` });
  if (Number(ctx.get('Content-Length') || 0) > maxBytes) {
    ctx.req.resume();
    return Promise.reject(tooLarge());
  }
  const request = ctx.req;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stopReading = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        stopReading();
        request.resume(); // flowing with no listener: the rest is dropped as it arrives
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stopReading();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (error: Error) => {
      stopReading();
      reject(error);
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
  });
}

/**
 * Nesting depth of a JSON text, scanned before parsing: a deeply nested document must be
 * refused before anything recursive walks it.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > maxDepth) return true;
    } else if (c === 125 || c === 93) {
      depth--;
    }
  }
  return false;
}

export function parseJsonText(text: string, limits: BodyLimits): unknown {
  if (text.trim() === '') throw FhirError.badRequest('The request body is empty', 'structure');
  if (jsonDepthExceeds(text, limits.maxJsonDepth)) {
    throw FhirError.badRequest(`JSON nesting deeper than ${limits.maxJsonDepth} levels`, 'structure');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw FhirError.badRequest(malformedJsonMessage(text, (error as Error).message), 'structure');
  }
  checkJsonValueLimits(value, limits);
  return value;
}


/**
 * Says where a JSON text is malformed without quoting it: V8's SyntaxError messages may carry an
 * excerpt of the text (`Unexpected token 'Z', "{"name": Zeb…" is not valid JSON`), which can be
 * an identifier, so only the position is taken from them.
 */
export function malformedJsonMessage(text: string, parserMessage: string): string {
  const position = /\bat position (\d+)\b/.exec(parserMessage);
  if (position) {
    const offset = Math.min(Number(position[1]), text.length);
    const before = text.slice(0, offset);
    const line = before.split('\n').length;
    const column = offset - before.lastIndexOf('\n');
    return `Malformed JSON at line ${line}, column ${column} (position ${offset})`;
  }
  if (/^Unexpected end of JSON input/.test(parserMessage)) return 'Malformed JSON: the text ends before the JSON value is complete';
  return 'Malformed JSON: the body is not a valid JSON text';
}

/** A FHIR JSON resource body (POST/PUT). */
export async function readResourceBody(ctx: Context, limits: BodyLimits): Promise<Resource> {
  const type = mediaType(ctx);
  if (!JSON_MEDIA_TYPES.has(type)) {
    throw new FhirError(415, { severity: 'error', code: 'not-supported', diagnostics: 'Send application/fhir+json or application/json' });
  }
  const value = parseJsonText(await readRawBody(ctx, limits.maxBodyBytes), limits);
  if (!isResourceObject(value)) {
    throw FhirError.badRequest('The body must be a JSON object with a resourceType', 'structure');
  }
  return value;
}

/** An operation's body (R4 operations.html): a resource or Parameters when one is sent, else none. */
export async function readOptionalResourceBody(ctx: Context, limits: BodyLimits): Promise<Resource | undefined> {
  const hasBody = (ctx.request.length ?? 0) > 0 || ctx.get('Transfer-Encoding') !== '';
  return hasBody ? readResourceBody(ctx, limits) : undefined;
}

/** A JSON Patch body (RFC 6902, application/json-patch+json). */
export async function readJsonPatchBody(ctx: Context, limits: BodyLimits): Promise<unknown> {
  const type = mediaType(ctx);
  if (type !== 'application/json-patch+json') {
    throw new FhirError(415, {
      severity: 'error', code: 'not-supported', diagnostics: 'PATCH accepts application/json-patch+json (JSON Patch) only',
    });
  }
  return parseJsonText(await readRawBody(ctx, limits.maxBodyBytes), limits);
}

/** `POST Type/_search` bodies: application/x-www-form-urlencoded (FHIR R4 http.html#search). */
export async function readFormBody(ctx: Context, limits: BodyLimits): Promise<[string, string][]> {
  const type = mediaType(ctx);
  const text = await readRawBody(ctx, limits.maxFormBodyBytes);
  if (text === '') return [];
  if (type !== 'application/x-www-form-urlencoded') {
    throw new FhirError(415, { severity: 'error', code: 'not-supported', diagnostics: 'POST _search takes application/x-www-form-urlencoded' });
  }
  return [...new URLSearchParams(text)];
}
