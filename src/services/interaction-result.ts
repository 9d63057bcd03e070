/**
 * What running an interaction gives back, whatever adapter asked: the http layer renders it as
 * an HTTP response, the bundle service as a `Bundle.entry.response` (FHIR R4 http.html#transaction).
 */
import type { Resource } from '../fhir/resource.js';
import type { StoredVersion } from '../store/store.js';

export type InteractionResult =
  /** A version: read and vread, and the outcome of create, update and patch. */
  | {
    kind: 'version';
    status: 200 | 201;
    version: StoredVersion;
    /** Set for writes: `Prefer: return` applies, and this is the OperationOutcome's message. */
    written?: { message: string };
  }
  /** A delete (204), successful whether or not something was there (http.html#delete). */
  | { kind: 'deleted'; status: 204; version: StoredVersion | undefined }
  /** Any other resource: a searchset or history Bundle, the CapabilityStatement, an operation's answer. */
  | { kind: 'resource'; status: 200; resource: AnyResource | string };

/** Any FHIR resource object (typed ones such as OperationOutcome and Parameters included). */
export interface AnyResource { readonly resourceType: string }

export function resourceResult(resource: AnyResource | string): InteractionResult {
  return { kind: 'resource', status: 200, resource };
}

/** The result's resource as an object (a JSON text is parsed). */
export function resultResource(result: InteractionResult): Resource | undefined {
  if (result.kind === 'resource') return (typeof result.resource === 'string' ? JSON.parse(result.resource) : result.resource) as Resource;
  if (result.kind === 'version' && result.version.json !== null) return JSON.parse(result.version.json) as Resource;
  return undefined;
}
