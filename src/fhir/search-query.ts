/**
 * The parsed, typed form of a FHIR search (FHIR R4 search.html). fhir/search-query-parser.ts
 * builds it from URL parameters; store adapters translate it into their query language.
 * Nothing here knows about SQL.
 */
import type { SearchParameterDefinition } from './search-parameter-registry.js';

/**
 * search.html#recursive: how many levels of a circular reference `:below`/`:above` follow. Stores
 * stop there, so a cycle (A part of B, B part of A) cannot make a search run forever.
 */
export const MAX_HIERARCHY_DEPTH = 32;

/** search.html#prefix */
export type SearchPrefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

export interface TokenSearchValue {
  kind: 'token';
  /** undefined: any system; null: `|code`, no system; string: `system|code` or `system|`. */
  system: string | null | undefined;
  /** undefined: `system|` (any code in the system). */
  code: string | undefined;
  /** `:of-type`: the Identifier.type coding as `system|code`. */
  ofType?: string;
  /**
   * `:below`/`:above` (search.html#token): the codes of `system` that `code` subsumes or is
   * subsumed by, itself included; any of them matches.
   */
  codes?: string[];
}

export interface StringSearchValue { kind: 'string'; folded: string; raw: string }

/** Date, number and quantity values carry their implicit range [low, high). */
export interface RangeSearchValue {
  kind: 'range';
  prefix: SearchPrefix;
  value: number;
  low: number;
  high: number;
  /** quantity only: `number|system|code`; undefined means any. */
  system?: string | null;
  code?: string;
}

export interface ReferenceSearchValue {
  kind: 'reference';
  targetType: string | undefined;
  targetId: string | undefined;
  /** An absolute or canonical URL to compare with the reference as written. */
  url: string | undefined;
  /** `:identifier`: Reference.identifier (system undefined: any system). */
  identifier?: { system: string | undefined; value: string };
}

export interface UriSearchValue { kind: 'uri'; value: string }

/** search.html#composite: `token$value`, both parts matched in the same node. */
export interface CompositeSearchValue {
  kind: 'composite';
  first: TokenSearchValue;
  second: TokenSearchValue | StringSearchValue | RangeSearchValue;
  /** The second component's parameter type (token, quantity, date, string, number). */
  secondType: string;
}

export type SearchValue =
  | TokenSearchValue | StringSearchValue | RangeSearchValue | ReferenceSearchValue | UriSearchValue | CompositeSearchValue;

/** One `name[:modifier]=v1,v2` pair: its values are ORed; criteria of a query are ANDed. */
export interface SearchCriterion {
  param: SearchParameterDefinition;
  /**
   * On a reference, `below`/`above` (search.html#recursive) means: the values name resources of
   * the parameter's own type, and the criterion matches the resources below them (whose chain of
   * this reference reaches a value) or above them (that a value's chain reaches).
   */
  modifier: string | undefined;
  values: SearchValue[];
  /** `:missing=true|false` */
  missing?: boolean;
  /**
   * Chained search (search.html#chaining), e.g. `subject:Patient.name=x`: `param` is the
   * reference; it must point to a resource of one of these types that matches `inner`.
   */
  chain?: { resourceType: string; inner: SearchCriterion }[];
  /**
   * Reverse chaining (search.html#has), e.g. `_has:Observation:patient:code=x`: some resource
   * of `sourceType` whose reference `param` points here matches `inner`.
   */
  reverse?: { sourceType: string; inner: SearchCriterion };
}

/** `_include` / `_revinclude` (search.html#include): `sourceType:param[:targetType]`. */
export interface IncludeDirective {
  sourceType: string;
  param: SearchParameterDefinition;
  targetType: string | undefined;
  iterate: boolean;
}

/** `_summary` (search.html#summary) beyond `count`. */
export type SummaryMode = 'true' | 'text' | 'data' | 'false';

export interface SearchSortKey {
  param: SearchParameterDefinition;
  descending: boolean;
}

export type TotalMode = 'none' | 'estimate' | 'accurate';

export interface SearchQuery {
  /** null for a system-level search across all types. */
  resourceType: string | null;
  /** A system-level search's `_type` (search.html#all): only these types. */
  types?: string[];
  criteria: SearchCriterion[];
  sort: SearchSortKey[];
  count: number;
  offset: number;
  total: TotalMode;
  /** `_summary=count`: only the total, no entries. */
  countOnly: boolean;
  /**
   * Paging snapshot: only resources that existed when the first page was served (an opaque
   * store position), so pages do not shift while writes continue.
   */
  snapshot?: string;
  /**
   * Compartment search (`Patient/123/Observation`): the resource must reference the
   * compartment owner through one of these reference parameters.
   */
  compartment?: { ownerType: string; ownerId: string; params: SearchParameterDefinition[] };
  /**
   * An access policy's compartment (auth/access-policy.ts), ANDed with everything else: the
   * resource must reference one of the owners through one of these parameters. No owners or no
   * parameters: nothing matches.
   */
  accessCompartment?: { ownerType: string; ownerIds: string[]; params: SearchParameterDefinition[] };
}

/** How the matched resources are shaped and what is added to them (not part of matching). */
export interface SearchResultOptions {
  include: IncludeDirective[];
  revinclude: IncludeDirective[];
  summary: SummaryMode;
  /** `_elements`: top-level element names to keep. */
  elements: string[] | undefined;
}

/** Parameters the parser did not use, reported in the search Bundle's OperationOutcome. */
export interface IgnoredSearchParameter {
  name: string;
  reason: string;
}
