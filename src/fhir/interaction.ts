/**
 * The interaction model (DESIGN.md "The spine"): every request, whether it arrives over HTTP or
 * as an entry of a batch or transaction Bundle, is parsed once into an `Interaction` by
 * `parseInteraction`, and run by one executor (services/interaction-executor.ts). The URL
 * grammar is FHIR R4 http.html's, relative to the base:
 *
 *   ''                         GET search-system        POST batch/transaction
 *   metadata                   GET capabilities
 *   _history                   GET history-system
 *   _search                    POST search-system (form body)
 *   $op                        operation (system level)
 *   Type                       GET search-type          POST create     PUT|PATCH|DELETE ?criteria: conditional
 *   Type/_history              GET history-type
 *   Type/_search               POST search-type (form body)
 *   Type/$op                   operation (type level)
 *   Type/id                    GET read   PUT update   PATCH patch   DELETE delete
 *   Type/id/_history           GET history-instance
 *   Type/id/$op                operation (instance level)
 *   Type/id/Type2              GET search-compartment
 *   Type/id/_history/vid       GET vread
 *   Type/id/_history/vid/$op   operation (version level)
 *
 * HEAD is GET without a body (http.html#read). Pure: no I/O; whether a type is one this
 * server knows is the executor's question.
 */
import { FhirError } from './fhir-error.js';

export type InteractionKind =
  | 'read' | 'vread' | 'update' | 'patch' | 'delete'
  | 'history-instance' | 'history-type' | 'history-system'
  | 'create' | 'search-type' | 'search-system' | 'search-compartment'
  | 'conditional-update' | 'conditional-patch' | 'conditional-delete'
  | 'capabilities' | 'bundle' | 'operation';

export type InteractionMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type OperationLevel = 'system' | 'type' | 'instance' | 'version';

/** The conditional headers of http.html (If-Match, If-None-Exist), from HTTP or `Bundle.entry.request`. */
export interface InteractionConditions {
  ifMatch?: string;
  ifNoneExist?: string;
}

export interface Interaction {
  kind: InteractionKind;
  method: InteractionMethod;
  resourceType?: string;
  id?: string;
  versionId?: string;
  /** search-compartment: the type searched inside `resourceType/id`'s compartment. */
  compartmentType?: string;
  /** operation: its name without `$`, and the level it was invoked at. */
  operation?: { name: string; level: OperationLevel };
  /** URL query parameters (minus `_format` and `_pretty`), in order; for POST `_search`, the form body's follow. */
  query: [string, string][];
  /** The query string as sent (conditional operations match on it). */
  rawQuery: string;
  /** The body: a resource, a JSON Patch document or form parameters, as read by the adapter. */
  body?: unknown;
  conditions: InteractionConditions;
}

/** The body an interaction takes, so that an adapter knows how to read it (http/request-body.ts). */
export type BodyKind = 'none' | 'resource' | 'json-patch' | 'form' | 'optional-resource';

export function bodyKindOf(interaction: Pick<Interaction, 'kind' | 'method'>): BodyKind {
  switch (interaction.kind) {
    case 'create': case 'update': case 'conditional-update': case 'bundle':
      return 'resource';
    case 'patch': case 'conditional-patch':
      return 'json-patch';
    case 'search-type': case 'search-system':
      return interaction.method === 'POST' ? 'form' : 'none';
    case 'operation':
      return interaction.method === 'POST' ? 'optional-resource' : 'none';
    default:
      return 'none';
  }
}

/** Query parameters that shape the response format, not the interaction (http.html#parameters). */
const FORMAT_PARAMETERS = new Set(['_format', '_pretty']);

const TYPE_NAME = /^[A-Z][A-Za-z]{0,63}$/;

/** The methods each URL shape takes, for the Allow header of a 405 (RFC 9110 section 15.5.6). */
const ALLOW = {
  any: 'GET, HEAD, POST, PUT, PATCH, DELETE',
  base: 'GET, HEAD, POST',
  read: 'GET, HEAD',
  post: 'POST',
  type: 'GET, HEAD, POST, PUT, PATCH, DELETE',
  instance: 'GET, HEAD, PUT, PATCH, DELETE',
  operation: 'GET, HEAD, POST',
} as const;

function methodNotAllowed(method: string, what: string, allow: string): FhirError {
  return new FhirError(405, { severity: 'error', code: 'not-supported', diagnostics: `${method} is not allowed on ${what}` }, { Allow: allow });
}

function noInteraction(method: string): FhirError {
  // The path is not echoed: its segments may be ids.
  return FhirError.notFound(`No FHIR interaction for ${method} on this URL (FHIR R4 http.html)`);
}

/**
 * Parses `method` and a URL relative to the FHIR base (`Patient/1/_history/2?x=y`, with or
 * without a leading `/`) into an interaction without body. Throws 404 for a URL outside the
 * grammar and 405 for a method the URL does not take.
 */
export function parseInteraction(method: string, relativeUrl: string, conditions: InteractionConditions = {}): Interaction {
  const question = relativeUrl.indexOf('?');
  const path = question === -1 ? relativeUrl : relativeUrl.slice(0, question);
  const rawQuery = question === -1 ? '' : relativeUrl.slice(question + 1);
  const query = rawQuery === '' ? [] : [...new URLSearchParams(rawQuery)].filter(([name]) => !FORMAT_PARAMETERS.has(name));
  const segments = path.split('/').filter((segment) => segment !== '');
  const upper = method.toUpperCase();
  if (!isInteractionMethod(upper)) throw methodNotAllowed(method, 'a FHIR endpoint', ALLOW.any);
  // One object of one shape, filled in below: object spreads here cost 3.5 µs a request.
  const interaction: Interaction = {
    kind: 'search-system', method: upper, resourceType: undefined, id: undefined, versionId: undefined,
    compartmentType: undefined, operation: undefined, query, rawQuery, body: undefined, conditions,
  };
  const as = (kind: InteractionKind, resourceType?: string, id?: string): Interaction => {
    interaction.kind = kind;
    interaction.resourceType = resourceType;
    interaction.id = id;
    return interaction;
  };
  const get = upper === 'GET' || upper === 'HEAD';
  const [first, second, third, fourth, fifth] = segments.map(decodeSegment);

  const operation = (segment: string | undefined, level: OperationLevel) => (segment !== undefined && segment.startsWith('$') && segment.length > 1
    ? { name: segment.slice(1), level } : undefined);

  switch (segments.length) {
    case 0:
      if (get) return as('search-system');
      if (upper === 'POST') return as('bundle');
      throw methodNotAllowed(upper, 'the base URL', ALLOW.base);
    case 1: {
      if (first === 'metadata') {
        if (get) return as('capabilities');
        throw methodNotAllowed(upper, 'metadata', ALLOW.read);
      }
      if (first === '_history') {
        if (get) return as('history-system');
        throw methodNotAllowed(upper, '_history', ALLOW.read);
      }
      if (first === '_search') {
        if (upper === 'POST') return as('search-system');
        throw methodNotAllowed(upper, '_search', ALLOW.post);
      }
      const op = operation(first, 'system');
      if (op) return operationInteraction(as('operation'), op);
      const resourceType = typeName(first!, upper);
      if (get) return as('search-type', resourceType);
      if (upper === 'POST') return as('create', resourceType);
      // http.html#cond-update, #cdelete, #patch: on a type, only with search criteria.
      if (rawQuery === '') {
        throw new FhirError(405, {
          severity: 'error', code: 'not-supported', diagnostics: `${upper} on a type needs search criteria (conditional ${upper.toLowerCase()})`,
        }, { Allow: ALLOW.type });
      }
      if (upper === 'PUT') return as('conditional-update', resourceType);
      if (upper === 'PATCH') return as('conditional-patch', resourceType);
      return as('conditional-delete', resourceType);
    }
    case 2: {
      const resourceType = typeName(first!, upper);
      if (second === '_history') {
        if (get) return as('history-type', resourceType);
        throw methodNotAllowed(upper, '_history', ALLOW.read);
      }
      if (second === '_search') {
        if (upper === 'POST') return as('search-type', resourceType);
        throw methodNotAllowed(upper, '_search', ALLOW.post);
      }
      const op = operation(second, 'type');
      if (op) return operationInteraction(as('operation', resourceType), op);
      const id = second!;
      if (get) return as('read', resourceType, id);
      if (upper === 'PUT') return as('update', resourceType, id);
      if (upper === 'PATCH') return as('patch', resourceType, id);
      if (upper === 'DELETE') return as('delete', resourceType, id);
      throw methodNotAllowed(upper, 'a resource instance (POST creates on the type URL)', ALLOW.instance);
    }
    case 3: {
      const resourceType = typeName(first!, upper);
      const id = second!;
      if (third === '_history') {
        if (get) return as('history-instance', resourceType, id);
        throw methodNotAllowed(upper, '_history', ALLOW.read);
      }
      const op = operation(third, 'instance');
      if (op) return operationInteraction(as('operation', resourceType, id), op);
      if (!TYPE_NAME.test(third!)) throw noInteraction(upper);
      if (!get) throw methodNotAllowed(upper, 'a compartment', ALLOW.read);
      interaction.compartmentType = third!;
      return as('search-compartment', resourceType, id);
    }
    case 4:
    case 5: {
      const resourceType = typeName(first!, upper);
      if (third !== '_history') throw noInteraction(upper);
      const id = second!;
      const versionId = fourth!;
      if (segments.length === 5) {
        const op = operation(fifth, 'version');
        if (!op) throw noInteraction(upper);
        interaction.versionId = versionId;
        return operationInteraction(as('operation', resourceType, id), op);
      }
      if (!get) throw methodNotAllowed(upper, 'a version (versions are read-only)', ALLOW.read);
      interaction.versionId = versionId;
      return as('vread', resourceType, id);
    }
    default:
      throw noInteraction(upper);
  }
}

function isInteractionMethod(method: string): method is InteractionMethod {
  return method === 'GET' || method === 'HEAD' || method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';
}

function operationInteraction(interaction: Interaction, operation: { name: string; level: OperationLevel }): Interaction {
  // R4 operations.html: operations are invoked by POST, and by GET when they change nothing.
  const { method } = interaction;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') throw methodNotAllowed(method, `$${operation.name}`, ALLOW.operation);
  interaction.operation = operation;
  return interaction;
}

function typeName(segment: string, method: string): string {
  if (!TYPE_NAME.test(segment)) throw noInteraction(method);
  return segment;
}

function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw FhirError.badRequest('The URL has a malformed percent-encoding', 'invalid');
  }
}

/** The URL of an interaction relative to the base, for links and logs (ids as given). */
export function interactionPath(interaction: Interaction): string {
  const parts: (string | undefined)[] = [interaction.resourceType, interaction.id];
  if (interaction.kind === 'vread' || interaction.operation?.level === 'version') parts.push('_history', interaction.versionId);
  if (interaction.kind === 'history-instance' || interaction.kind === 'history-type' || interaction.kind === 'history-system') parts.push('_history');
  if (interaction.kind === 'search-compartment') parts.push(interaction.compartmentType);
  if (interaction.kind === 'capabilities') parts.push('metadata');
  if (interaction.operation) parts.push(`$${interaction.operation.name}`);
  return parts.filter((p) => p !== undefined).join('/');
}
