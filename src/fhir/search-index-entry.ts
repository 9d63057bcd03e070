/**
 * Values extracted from a resource for its search parameters at write time
 * (FHIR R4 search.html). The store persists them in the same transaction as the version and
 * matches queries against them; it never evaluates FHIRPath itself.
 *
 * Ranges are half-open [low, high): a date of `1990` indexes as the whole year, a decimal
 * `0.8` as [0.75, 0.85) (search.html#number: implicit precision).
 */
export type SearchParamType =
  | 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special';

interface EntryBase {
  /** The search parameter code, e.g. `birthdate`. */
  param: string;
}

/** string: `value` folded for matching (lower case, accents removed); `raw` as written. */
export interface StringIndexEntry extends EntryBase { kind: 'string'; value: string; raw: string }

/** token: system and code; `text` carries display / CodeableConcept.text for `:text`. */
export interface TokenIndexEntry extends EntryBase {
  kind: 'token';
  system: string | null;
  code: string | null;
  text: string | null;
  /** Identifier.type as `system|code`, for `:of-type` (search.html#token). */
  ofType?: string | null;
}

/** date: epoch milliseconds, [low, high). */
export interface DateIndexEntry extends EntryBase { kind: 'date'; low: number; high: number }

/** number: the value and its implicit-precision range [low, high). */
export interface NumberIndexEntry extends EntryBase { kind: 'number'; value: number; low: number; high: number }

/** quantity: value with range, system and code (UCUM), and the human unit. */
export interface QuantityIndexEntry extends EntryBase {
  kind: 'quantity';
  value: number;
  low: number;
  high: number;
  system: string | null;
  code: string | null;
  unit: string | null;
}

/**
 * reference: `targetType`/`targetId` for local references (`Patient/123`, or an absolute URL on
 * this server), `url` always holds the reference as written (absolute or canonical).
 */
export interface ReferenceIndexEntry extends EntryBase {
  kind: 'reference';
  targetType: string | null;
  targetId: string | null;
  url: string;
  /** Reference.identifier, for `:identifier` (search.html#reference). */
  identifierSystem?: string | null;
  identifierValue?: string | null;
}

export interface UriIndexEntry extends EntryBase { kind: 'uri'; value: string }

export type ComponentIndexEntry =
  | StringIndexEntry | TokenIndexEntry | DateIndexEntry | NumberIndexEntry
  | QuantityIndexEntry | ReferenceIndexEntry | UriIndexEntry;

/**
 * composite (search.html#composite): a pair of component values that occur in the SAME node
 * (the resource itself, or one Observation.component). R4's composites pair a token with a
 * token, quantity, date or string.
 */
export interface CompositeIndexEntry extends EntryBase {
  kind: 'composite';
  first: TokenIndexEntry;
  second: ComponentIndexEntry;
}

export type SearchIndexEntry = ComponentIndexEntry | CompositeIndexEntry;
