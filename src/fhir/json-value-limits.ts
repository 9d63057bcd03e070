/**
 * Checks on a parsed JSON body that JSON.parse cannot make: how many repetitions an element has,
 * and whether every number survived parsing. Pure (no I/O), so the http body reader runs it on
 * what clients send and the write path may run it on what a patch produces.
 */
import { FhirError } from './fhir-error.js';
import { isResourceObject } from './resource.js';

export interface JsonValueLimits {
  /** Items of any one array, except a root Bundle's `entry`. */
  maxElementRepetitions: number;
}

/** A name that may be quoted back in a location: an element name's shape, never arbitrary text. */
function locationSegment(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(key) ? key : '(not an element name)';
}

/** `Patient.identifier[3].value` from the walk's path segments (FHIRPath, R4 fhirpath.html#index). */
function fhirPath(segments: readonly (string | number)[]): string {
  let path = '';
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`;
    else path += path === '' ? locationSegment(segment) : `.${locationSegment(segment)}`;
  }
  return path;
}

/**
 * The one walk over a parsed body; the caller bounds its depth first (http/request-body.ts
 * scans the text), so the recursion is shallow:
 * - an array longer than `maxElementRepetitions` → 413: each repetition costs validation, index
 *   rows and, for identifiers, a vault write, and 20,000 identifiers stalled the server for 15 s.
 *   A root Bundle's `entry` is not an element's repetitions but the batch itself, bounded by the
 *   bundle's own limit.
 * - a number JSON.parse turned into ±Infinity (`1e400`) → 422: FHIR R4 datatypes.html#decimal
 *   values must be representable, and JSON.stringify would store and serve it as `null`.
 * Locations are FHIRPath from the resource type (`Observation.valueQuantity.value`).
 */
export function checkJsonValueLimits(root: unknown, limits: JsonValueLimits): void {
  const segments: (string | number)[] = [];
  const rootType = isResourceObject(root) ? root.resourceType : undefined;
  if (rootType !== undefined) segments.push(rootType);
  const walk = (node: unknown, exempt: boolean): void => {
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) {
        throw FhirError.unprocessable([{
          severity: 'error', code: 'value', expression: [fhirPath(segments)],
          diagnostics: `${fhirPath(segments) || 'A number'} is outside the range of a 64-bit floating point number (about ±1.8e308)`,
        }]);
      }
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    if (Array.isArray(node)) {
      if (!exempt && node.length > limits.maxElementRepetitions) {
        throw new FhirError(413, {
          severity: 'error', code: 'too-long', expression: [fhirPath(segments)],
          diagnostics: `${fhirPath(segments) || 'An array'} has ${node.length} repetitions; this server accepts at most ${limits.maxElementRepetitions} per element`,
        });
      }
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i];
        if (typeof child !== 'object' && typeof child !== 'number') continue;
        segments.push(i);
        walk(child, false);
        segments.pop();
      }
      return;
    }
    // Keys go into the path as they are; only a location that is reported is made safe to quote.
    const exemptEntry = node === root && rootType === 'Bundle';
    for (const key in node) {
      const child = (node as Record<string, unknown>)[key];
      if (typeof child !== 'object' && typeof child !== 'number') continue;
      segments.push(key);
      walk(child, exemptEntry && key === 'entry');
      segments.pop();
    }
  };
  walk(root, false);
}
