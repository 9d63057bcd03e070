/**
 * What a request log line may say about the URL (issue: de-identification, "No identifier
 * reaches a log line"). Pure: no Koa, no I/O.
 *
 * - route: the path by FHIR URL grammar (http.html), with every id and version segment
 *   masked: `/fhir/Patient/:id/_history/:vid`. Type segments are kept only when they are known
 *   resource types; `_history`, `_search`, `metadata` and known `$operations` are kept; anything
 *   else is client text and masked. It works for URLs that matched no route (404s) too.
 * - query: parameter names with every value masked (`name:exact=***`), except a few
 *   result-control parameters whose values name parameters or numbers, never data.
 */

/** Says whether a segment is a resource type this server knows (e.g. validator.isKnownResourceType). */
export type ResourceTypePredicate = (segment: string) => boolean;

/** Shown for a masked query value, or a query name that is not shaped like a parameter name. */
export const MASK = '***';

/** Result-control parameters (search.html#return) whose values cannot carry identifiers. */
const SAFE_VALUE_PARAMETERS = new Set([
  '_count', '_offset', '_sort', '_summary', '_total', '_elements', '_include', '_revinclude',
  '_format', '_pretty', '_snapshot', '_contained', '_containedType', '_type',
]);

/** Of those, the ones whose values are numbers (page sizes, offsets); a page token is digits and a hyphen. */
const NUMERIC_PARAMETERS = new Set(['_count', '_offset']);

/**
 * Operation names kept in a route: this server's own and the common ones of FHIR R4
 * (operationslist.html). An unknown `$name` is client text like any other segment.
 */
const KNOWN_OPERATIONS = new Set([
  '$validate', '$verify', '$ledger', '$ledger-consistency', '$deidentify', '$reidentify', '$everything', '$meta', '$meta-add', '$meta-delete',
  '$expand', '$lookup', '$validate-code', '$subsumes', '$translate', '$closure', '$export',
  '$process-message', '$document', '$match', '$graphql', '$convert', '$diff',
]);

const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_\-.:|]*$/;
const MAX_PARAMETER_NAME = 100;

/** A kept value of a safelisted parameter still has to look like one (names, commas, media types). */
const SAFE_VALUE = /^[A-Za-z0-9_\-.:,*+/]{0,200}$/;
const NUMBER_VALUE = /^\d{1,15}$/;

/** A query parameter name as client text: only a plausible parameter name is shown. */
export function isPlausibleParameterName(name: string): boolean {
  return name.length <= MAX_PARAMETER_NAME && PARAMETER_NAME.test(name);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

type Position = 'base' | 'type' | 'id' | 'history' | 'vid' | 'end';

/** One segment of a FHIR URL: how it is shown, and the position of the next one. */
function step(position: Position, segment: string, isType: (s: string) => boolean): [string, Position] {
  const isOperation = KNOWN_OPERATIONS.has(segment);
  switch (position) {
    case 'base': // [base]/metadata, /_history, /_search, /$op, /[type]
      if (segment === 'metadata' || segment === '_history' || segment === '_search' || isOperation) return [segment, 'end'];
      return [isType(segment) ? segment : ':type', 'type'];
    case 'type': // [type]/_history, /_search, /$op, /[id]
      if (segment === '_history' || segment === '_search' || isOperation) return [segment, 'end'];
      return [':id', 'id'];
    case 'id': // [id]/_history, /$op, /[compartment type]
      if (segment === '_history') return [segment, 'history'];
      if (isOperation) return [segment, 'end'];
      return [isType(segment) ? segment : ':type', 'end'];
    case 'history': // _history/[vid]
      return [':vid', 'vid'];
    case 'vid': // [vid]/$op
      return [isOperation ? segment : ':segment', 'end'];
    default:
      return [':segment', 'end'];
  }
}

/** The path as a route pattern: `/fhir/Patient/MRN1/_history/2` → `/fhir/Patient/:id/_history/:vid`. */
export function redactRoute(path: string, isResourceType: ResourceTypePredicate): string {
  // One pass over the segments, no intermediate arrays: this runs on every request, and the
  // log line is on the read path's budget (bench/read-layers.bench.ts).
  const isType = (s: string) => s.length > 0 && s.charCodeAt(0) >= 65 && s.charCodeAt(0) <= 90 && TYPE_NAME.test(s) && isResourceType(s);
  let out = '';
  let position: Position = 'base';
  let index = 0;
  let first = true;
  let outsideFhir = false;
  while (index <= path.length) {
    let slash = path.indexOf('/', index);
    if (slash === -1) slash = path.length;
    const raw = path.slice(index, slash);
    index = slash + 1;
    if (raw === '') continue;
    if (first) {
      first = false;
      if (raw !== 'fhir') outsideFhir = true;
      out += outsideFhir ? '/:segment' : '/fhir';
      continue;
    }
    if (outsideFhir) {
      out += '/:segment';
      continue;
    }
    const [shown, next] = step(position, raw.includes('%') ? decodeSegment(raw) : raw, isType);
    out += `/${shown}`;
    position = next;
  }
  return out === '' ? '/' : out;
}

const TYPE_NAME = /^[A-Z][A-Za-z]*$/;

/** Keeps `:`, `,`, `|` and `/` readable; everything else percent-encoded, so `&` and `=` stay unambiguous. */
function encodeForLog(text: string): string {
  return encodeURIComponent(text).replace(/%3A/gi, ':').replace(/%2C/gi, ',').replace(/%7C/gi, '|').replace(/%2F/gi, '/');
}

/** `name=Quxworthy&_count=10&identifier:of-type=a|b|c` → `name=***&_count=10&identifier:of-type=***`. */
export function redactQuery(querystring: string): string {
  if (querystring === '') return '';
  const parts: string[] = [];
  for (const [name, value] of new URLSearchParams(querystring)) {
    if (!isPlausibleParameterName(name)) {
      parts.push(`${MASK}=${MASK}`);
      continue;
    }
    const base = name.split(':')[0]!;
    const keep = SAFE_VALUE_PARAMETERS.has(base) && (NUMERIC_PARAMETERS.has(base) ? NUMBER_VALUE : SAFE_VALUE).test(value);
    parts.push(`${encodeForLog(name)}=${keep ? encodeForLog(value) : MASK}`);
  }
  return parts.join('&');
}

/** The URL of a request as a log line may carry it: `route`, and `query` when there is one. */
export function redactRequestUrl(path: string, querystring: string,
  isResourceType: ResourceTypePredicate): { route: string; query?: string } {
  const route = redactRoute(path, isResourceType);
  return querystring === '' ? { route } : { route, query: redactQuery(querystring) };
}
