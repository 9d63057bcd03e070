/**
 * Parses FHIR search URL parameters (FHIR R4 search.html) into a typed SearchQuery.
 *
 * Bad values (`birthdate=notadate`) are always a 400. Unknown parameters and unsupported
 * modifiers are returned in `ignored` so the search Bundle can report them (search.html#errors:
 * lenient handling by default), or raise a 400 under `Prefer: handling=strict`.
 */
import { CodeSystemHierarchies } from './code-system-hierarchy.js';
import { FhirError } from './fhir-error.js';
import { isValidResourceId } from './resource.js';
import type { SearchParamType } from './search-index-entry.js';
import { decimalRange, foldSearchString, parseDateRange, parseReference } from './search-index/search-value-normalisation.js';
import { DEFAULT_SEARCH_LIMITS, type SearchLimits } from './search-limits.js';
import {
  COMMON_PARAMETER_CODES, type SearchParameterDefinition, type SearchParameterRegistry,
} from './search-parameter-registry.js';
import type {
  IgnoredSearchParameter, IncludeDirective, RangeSearchValue, SearchCriterion, SearchPrefix, SearchQuery,
  SearchResultOptions, SearchSortKey, SearchValue, SummaryMode, TotalMode,
} from './search-query.js';

export interface SearchParseOptions {
  defaultCount: number;
  maxCount: number;
  /** `Prefer: handling=strict` */
  strict: boolean;
  /** This server's FHIR base URL, to recognise absolute references to local resources. */
  baseUrl?: string;
  /** Code system hierarchies for token `:below`/`:above`; default: the shipped HL7 code systems. */
  codeSystems?: CodeSystemHierarchies;
  /** How much one search may ask for (fhir/search-limits.ts); default DEFAULT_SEARCH_LIMITS. */
  limits?: SearchLimits;
}

export interface ParsedSearch {
  query: SearchQuery;
  result: SearchResultOptions;
  ignored: IgnoredSearchParameter[];
}

/** Result parameters handled by the http layer or by this parser itself, never as criteria. */
const CONTROL_PARAMETERS = new Set([
  '_count', '_offset', '_sort', '_total', '_summary', '_format', '_pretty', '_snapshot',
  '_include', '_revinclude', '_include:iterate', '_revinclude:iterate', '_elements', '_type',
]);

/** search.html#chaining: a chain may not be longer than this (each link is a subquery). */
const MAX_CHAIN_DEPTH = 4;

const PREFIXES: readonly SearchPrefix[] = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'];

/**
 * Modifiers this server implements, per parameter type (search.html#modifiers). Two of them
 * apply only to some parameters of their type (isSupportedModifier):
 * - token `:below`/`:above` (subsumption, search.html#token) only for `system|code` values in a
 *   code system whose hierarchy the server has (fhir/code-system-hierarchy.ts); any other system
 *   makes the parameter unsupported, reported like an unknown one;
 * - reference `:below`/`:above` (search.html#recursive) only on a circular reference, one that
 *   can point to its own resource type (Location `partof`, Organization `partof`, …).
 * Reference `:[type]` is accepted for every target type of the parameter.
 */
export const SUPPORTED_MODIFIERS: Partial<Record<SearchParamType, readonly string[]>> = {
  string: ['exact', 'contains', 'missing'],
  token: ['not', 'text', 'of-type', 'below', 'above', 'missing'],
  reference: ['identifier', 'below', 'above', 'missing'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  uri: ['below', 'above', 'missing'],
  composite: ['missing'],
};

/** search.html#escaping: split on separators not preceded by a backslash, then unescape. */
export function splitEscaped(text: string, separator: ',' | '|' | '$'): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length && ',|$\\'.includes(text[i + 1]!)) {
      current += c + text[i + 1];
      i++;
    } else if (c === separator) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

export function unescapeSearchValue(text: string): string {
  return text.replace(/\\([,|$\\])/g, '$1');
}

/** A search over one of the limits of fhir/search-limits.ts. */
function tooCostly(diagnostics: string): FhirError {
  return FhirError.badRequest(diagnostics, 'too-costly');
}

function badValue(name: string, value: string, expected: string): FhirError {
  // The value itself is not echoed: it may carry an identifier.
  return FhirError.badRequest(`Invalid value for search parameter ${quoted(name)}: expected ${expected}`, 'value');
}

/**
 * A parameter name, modifier or type named in a message: the client's text, quoted, when it has
 * the shape of one; otherwise a placeholder, so that arbitrary text is never echoed back.
 */
function quoted(text: string, prefix = ''): string {
  return text.length <= 100 && /^[A-Za-z_][A-Za-z0-9_\-.:|]*$/.test(text) ? `'${prefix}${text}'` : '(not a valid name)';
}

function splitPrefix(text: string): { prefix: SearchPrefix; rest: string } {
  const candidate = text.slice(0, 2) as SearchPrefix;
  if (PREFIXES.includes(candidate) && /^[-+.\d]/.test(text.slice(2))) return { prefix: candidate, rest: text.slice(2) };
  return { prefix: 'eq', rest: text };
}

function parseValue(name: string, param: SearchParameterDefinition, modifier: string | undefined,
  raw: string, baseUrl: string | undefined, registry?: SearchParameterRegistry): SearchValue {
  switch (param.type) {
    case 'composite': {
      // search.html#composite: components separated by an unescaped `$`.
      const parts = splitEscaped(raw, '$');
      const components = (param.components ?? []).map((c) => registry?.get(param.resourceType, c.code));
      if (parts.length !== 2 || components.length !== 2 || components.some((c) => c === undefined)) {
        throw badValue(name, raw, 'two components separated by $, e.g. http://loinc.org|8480-6$gt100');
      }
      const first = parseValue(name, components[0]!, undefined, parts[0]!, baseUrl);
      const second = parseValue(name, components[1]!, undefined, parts[1]!, baseUrl);
      if (first.kind !== 'token' || (second.kind !== 'token' && second.kind !== 'string' && second.kind !== 'range')) {
        throw FhirError.notSupported(`Composite parameter '${name}' has components this server cannot match`);
      }
      return { kind: 'composite', first, second, secondType: components[1]!.type };
    }
    case 'token': {
      if (modifier === 'text') return { kind: 'token', system: undefined, code: unescapeSearchValue(raw) };
      if (modifier === 'below' || modifier === 'above') {
        // search.html#token: "the search parameter is a concept with the form [system]|[code]":
        // subsumption is defined within one code system, so both parts are required.
        const parts = splitEscaped(raw, '|').map(unescapeSearchValue);
        if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
          throw badValue(name, raw, `system|code (:${modifier} is subsumption within a code system, so the system is required)`);
        }
        return { kind: 'token', system: parts[0]!, code: parts[1]! };
      }
      if (modifier === 'of-type') {
        // search.html#token :of-type: [type system]|[type code]|[identifier value]
        const parts = splitEscaped(raw, '|').map(unescapeSearchValue);
        if (parts.length !== 3 || parts[1] === '' || parts[2] === '') throw badValue(name, raw, 'type-system|type-code|value');
        return { kind: 'token', system: undefined, code: parts[2]!, ofType: `${parts[0]}|${parts[1]}` };
      }
      const parts = splitEscaped(raw, '|').map(unescapeSearchValue);
      if (parts.length === 1) return { kind: 'token', system: undefined, code: parts[0]! };
      if (parts.length === 2) {
        const [system, code] = parts as [string, string];
        if (system === '' && code === '') throw badValue(name, raw, 'a code, system|code, |code or system|');
        return { kind: 'token', system: system === '' ? null : system, code: code === '' ? undefined : code };
      }
      throw badValue(name, raw, 'a code, system|code, |code or system|');
    }
    case 'string':
      return { kind: 'string', folded: foldSearchString(unescapeSearchValue(raw)), raw: unescapeSearchValue(raw) };
    case 'uri':
      return { kind: 'uri', value: unescapeSearchValue(raw) };
    case 'date': {
      const { prefix, rest } = splitPrefix(raw);
      const range = parseDateRange(rest);
      if (!range) throw badValue(name, raw, 'a FHIR date, dateTime or instant, optionally prefixed (ge2020-01-01)');
      return { kind: 'range', prefix, value: range.low, low: range.low, high: range.high };
    }
    case 'number': {
      const { prefix, rest } = splitPrefix(raw);
      const range = decimalRange(rest);
      if (!range) throw badValue(name, raw, 'a decimal number, optionally prefixed (gt100)');
      return { kind: 'range', prefix, ...range };
    }
    case 'quantity': {
      const parts = splitEscaped(raw, '|').map(unescapeSearchValue);
      if (parts.length !== 1 && parts.length !== 3) throw badValue(name, raw, 'number, or number|system|code');
      const { prefix, rest } = splitPrefix(parts[0]!);
      const range = decimalRange(rest);
      if (!range) throw badValue(name, raw, 'number, or number|system|code');
      const value: RangeSearchValue = { kind: 'range', prefix, ...range };
      if (parts.length === 3) {
        value.system = parts[1] === '' ? undefined : parts[1];
        value.code = parts[2] === '' ? undefined : parts[2];
      }
      return value;
    }
    case 'reference': {
      if (modifier === 'identifier') {
        // search.html#reference :identifier: a token [system|]value matched to Reference.identifier.
        const parts = splitEscaped(raw, '|').map(unescapeSearchValue);
        const value = parts[parts.length - 1];
        if (parts.length > 2 || !value) throw badValue(name, raw, 'an identifier, system|value or value');
        return { kind: 'reference', targetType: undefined, targetId: undefined, url: undefined,
          identifier: { system: parts.length === 2 ? parts[0] : undefined, value } };
      }
      const text = unescapeSearchValue(raw);
      if (text === '') throw badValue(name, raw, 'a reference (Type/id, id or an absolute URL)');
      if (modifier === 'below' || modifier === 'above') {
        // search.html#recursive: the hierarchy is the one this circular reference builds among
        // resources of its own type, so the value names one of them.
        const own = param.resourceType;
        const parsed = text.includes('/') ? parseReference(text, baseUrl) : { targetType: own, targetId: text };
        if (parsed.targetType !== own || parsed.targetId === null || !isValidResourceId(parsed.targetId)) {
          throw badValue(name, raw, `a ${own} on this server (${own}/id or id)`);
        }
        return { kind: 'reference', targetType: own, targetId: parsed.targetId, url: undefined };
      }
      const typeModifier = modifier !== undefined && modifier !== 'missing' && modifier !== 'identifier' ? modifier : undefined;
      if (!text.includes('/')) return { kind: 'reference', targetType: typeModifier, targetId: text, url: undefined };
      const parsed = parseReference(text, baseUrl);
      if (parsed.targetType !== null && parsed.targetId !== null) {
        return { kind: 'reference', targetType: parsed.targetType, targetId: parsed.targetId, url: undefined };
      }
      return { kind: 'reference', targetType: undefined, targetId: undefined, url: text };
    }
    default:
      throw FhirError.notSupported(`Search parameter '${name}' of type ${param.type} is not supported`);
  }
}

/**
 * FHIR R4 search.html#all and http.html#search: a system-level search (`GET [base]?…`, no type)
 * can use only the parameters defined for all resources. The registry holds no abstract
 * `Resource` entry; it registers those common parameters on every concrete type, so any type's
 * copy serves (only code, type and targets are read here, and the store matches a system search
 * by code across types).
 */
function lookupParameter(registry: SearchParameterRegistry, resourceType: string | null,
  code: string, types?: string[]): SearchParameterDefinition | undefined {
  if (resourceType !== null) return registry.get(resourceType, code);
  if (!COMMON_PARAMETER_CODES.includes(code)) return types ? sharedParameter(registry, types, code) : undefined;
  const anyType = registry.resourceTypes()[0];
  return anyType === undefined ? undefined : registry.get(anyType, code);
}

/**
 * search.html#all: with `_type`, a system search may also use a parameter every listed type
 * defines, with the same type (e.g. `_type=Observation,Condition&code=…`). The store matches it
 * by code across the listed types.
 */
function sharedParameter(registry: SearchParameterRegistry, types: string[], code: string): SearchParameterDefinition | undefined {
  const definitions = types.map((type) => registry.get(type, code));
  const first = definitions[0];
  if (!first || definitions.some((d) => d === undefined || d.type !== first.type)) return undefined;
  return first;
}

/** `_type=Patient,Observation` of a system-level search: known types only (400 otherwise). */
function parseTypes(value: string, registry: SearchParameterRegistry): string[] {
  const types = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const known = new Set(registry.resourceTypes());
  const unknown = types.find((t) => !known.has(t));
  if (types.length === 0 || unknown !== undefined) throw badValue('_type', value, 'a comma-separated list of resource types');
  return [...new Set(types)];
}

function parseCount(text: string, options: SearchParseOptions): number {
  if (!/^\d+$/.test(text)) throw badValue('_count', text, 'a non-negative integer');
  return Math.min(Number(text), options.maxCount);
}

function parseSort(resourceType: string | null, text: string, registry: SearchParameterRegistry,
  ignored: IgnoredSearchParameter[], limits: SearchLimits): SearchSortKey[] {
  const keys: SearchSortKey[] = [];
  const items = text.split(',');
  // Each key is a join and an ORDER BY term: 200 of them held a reader for 40 s.
  if (items.length > limits.maxSortKeys) {
    throw tooCostly(`_sort has ${items.length} keys; this server sorts by at most ${limits.maxSortKeys}`);
  }
  for (const item of items) {
    const descending = item.startsWith('-');
    const code = descending ? item.slice(1) : item;
    const param = lookupParameter(registry, resourceType, code);
    if (!param || param.type === 'composite' || param.type === 'special') {
      ignored.push({ name: '_sort', reason: `Cannot sort by ${quoted(code)}: not a sortable search parameter` });
      continue;
    }
    keys.push({ param, descending });
  }
  return keys;
}

/**
 * @param entries the query's name/value pairs in order, repeated names kept (AND).
 */
export function parseSearchQuery(resourceType: string | null, entries: Iterable<[string, string]>,
  registry: SearchParameterRegistry, options: SearchParseOptions): ParsedSearch {
  const ignored: IgnoredSearchParameter[] = [];
  const criteria: SearchCriterion[] = [];
  const query: SearchQuery = {
    resourceType, criteria, sort: [], count: options.defaultCount, offset: 0, total: 'none', countOnly: false,
  };
  const result: SearchResultOptions = { include: [], revinclude: [], summary: 'false', elements: undefined };
  const all = [...entries];
  assertWithinLimits(all, options.limits ?? DEFAULT_SEARCH_LIMITS);
  // `_type` first: it decides which parameters a system search may use, wherever it stands.
  for (const [name, value] of all) {
    if (name !== '_type') continue;
    if (resourceType === null) query.types = [...new Set([...(query.types ?? []), ...parseTypes(value, registry)])];
    else ignored.push({ name, reason: `'_type' applies to system-level searches only; this search is on ${resourceType}` });
  }
  for (const [name, rawValue] of all) {
    if (name === '_type') continue;
    if (CONTROL_PARAMETERS.has(name)) {
      applyControlParameter(query, result, name, rawValue, registry, options, ignored);
      continue;
    }
    const criterion = parseCriterion(resourceType, name, rawValue, registry, options, ignored, 0, query.types);
    if (criterion) criteria.push(criterion);
  }
  if (options.strict && ignored.length > 0) {
    throw new FhirError(400, ignored.map((i) => ({ severity: 'error', code: 'not-supported', diagnostics: i.reason })));
  }
  // A page of no entries (`_count=0`) has nothing to tell but how many there are.
  if (query.count === 0 && query.total === 'none') query.total = 'accurate';
  return { query, result, ignored };
}

/**
 * The limits that need only the names: the number of parameters, and the repetitions (AND) of
 * each criterion's name. Result parameters (`_include`, `_sort`…) count towards the first only.
 * Checked before any value is parsed, so an over-long query costs one pass over its names.
 */
function assertWithinLimits(entries: [string, string][], limits: SearchLimits): void {
  if (entries.length > limits.maxParameters) {
    throw tooCostly(`The search has ${entries.length} parameters; this server accepts at most ${limits.maxParameters}`);
  }
  const repetitions = new Map<string, number>();
  for (const [name] of entries) {
    if (CONTROL_PARAMETERS.has(name) || name === '_type') continue;
    const count = (repetitions.get(name) ?? 0) + 1;
    repetitions.set(name, count);
    if (count > limits.maxAndRepetitions) {
      throw tooCostly(`Search parameter ${quoted(name)} is repeated more than ${limits.maxAndRepetitions} times (AND), the most this server accepts`);
    }
  }
}

/** One `name=value` criterion, possibly chained (`a.b`) or reverse-chained (`_has:…`). */
function parseCriterion(resourceType: string | null, name: string, rawValue: string, registry: SearchParameterRegistry,
  options: SearchParseOptions, ignored: IgnoredSearchParameter[], depth: number, types?: string[]): SearchCriterion | undefined {
  if (name.startsWith('_has:')) return parseReverseChain(resourceType, name, rawValue, registry, options, ignored, depth);
  const dot = name.indexOf('.');
  if (dot !== -1) return parseChain(resourceType, name, dot, rawValue, registry, options, ignored, depth);
  const colon = name.indexOf(':');
  const code = colon === -1 ? name : name.slice(0, colon);
  const modifier = colon === -1 ? undefined : name.slice(colon + 1);
  const param = lookupParameter(registry, resourceType, code, types);
  if (!param) {
    ignored.push({ name, reason: `Unknown search parameter ${quoted(code)} for ${resourceType ?? (types ? `every type of _type (${types.join(',')})` : 'system-level search')}` });
    return undefined;
  }
  if (modifier !== undefined && !isSupportedModifier(param, modifier)) {
    const hierarchical = param.type === 'reference' && (modifier === 'below' || modifier === 'above');
    ignored.push({
      name,
      reason: hierarchical
        ? `Modifier ':${modifier}' is not supported for parameter '${code}': it applies to circular references only (a reference to ${param.resourceType} itself, search.html#recursive)`
        : `Modifier ${quoted(modifier, ':')} is not supported for parameter '${code}' (${param.type})`,
    });
    return undefined;
  }
  if (modifier === 'missing') {
    if (rawValue !== 'true' && rawValue !== 'false') throw badValue(name, rawValue, 'true or false');
    return { param, modifier, values: [], missing: rawValue === 'true' };
  }
  const rawValues = splitEscaped(rawValue, ',');
  const maxOrValues = (options.limits ?? DEFAULT_SEARCH_LIMITS).maxOrValues;
  if (rawValues.length > maxOrValues) {
    throw tooCostly(`Search parameter ${quoted(name)} has ${rawValues.length} values (OR); this server accepts at most ${maxOrValues}`);
  }
  const values = rawValues.map((v) => parseValue(name, param, modifier, v, options.baseUrl, registry));
  if (param.type === 'token' && (modifier === 'below' || modifier === 'above')) {
    const unsupported = expandSubsumption(values, modifier, options.codeSystems ?? CodeSystemHierarchies.shipped());
    if (unsupported !== undefined) {
      ignored.push({ name, reason: `Modifier ':${modifier}' is not supported for parameter '${code}' with code system ${quotedSystem(unsupported.system)}: ${unsupported.reason}` });
      return undefined;
    }
  }
  return { param, modifier, values };
}

/**
 * search.html#token `:below`/`:above`: each `system|code` becomes the codes of that system it
 * subsumes or is subsumed by, itself included ("this includes the coding itself"), matched as
 * one OR. A code the system does not define has no known relatives, so only itself matches
 * (search.html#errors: an unknown code is "a logical condition", not an error). Returns the
 * first system without a hierarchy, which makes the whole parameter unsupported.
 */
function expandSubsumption(values: SearchValue[], modifier: 'below' | 'above',
  codeSystems: CodeSystemHierarchies): { system: string; reason: string } | undefined {
  for (const value of values) {
    if (value.kind !== 'token' || typeof value.system !== 'string' || value.code === undefined) continue;
    const hierarchy = codeSystems.get(value.system);
    if (!hierarchy) return { system: value.system, reason: codeSystems.unsupportedReason(value.system) ?? 'no hierarchy' };
    value.codes = modifier === 'below' ? hierarchy.descendantsOrSelf(value.code) : hierarchy.ancestorsOrSelf(value.code);
  }
  return undefined;
}

/** A code system url named in a message when it looks like one; never arbitrary text. */
function quotedSystem(system: string): string {
  return system.length <= 200 && /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/#]+$/.test(system) ? `'${system}'` : '(not a valid url)';
}

/**
 * search.html#chaining: `subject.name=x` or `subject:Patient.birthdate=x`. Without a type
 * modifier, every target type of the reference that has the chained parameter is tried.
 */
function parseChain(resourceType: string | null, name: string, dot: number, rawValue: string, registry: SearchParameterRegistry,
  options: SearchParseOptions, ignored: IgnoredSearchParameter[], depth: number): SearchCriterion | undefined {
  const head = name.slice(0, dot);
  const tail = name.slice(dot + 1);
  const [code, typeModifier] = head.split(':') as [string, string | undefined];
  const param = resourceType === null ? undefined : registry.get(resourceType, code);
  if (!param || param.type !== 'reference') {
    ignored.push({ name, reason: `Cannot chain on ${quoted(code)}: not a reference search parameter of ${resourceType ?? 'every type'}` });
    return undefined;
  }
  if (depth >= MAX_CHAIN_DEPTH) {
    ignored.push({ name, reason: `Chains longer than ${MAX_CHAIN_DEPTH} links are not supported` });
    return undefined;
  }
  const targets = typeModifier !== undefined ? [typeModifier] : param.targets;
  const tailCode = tail.split(/[.:]/)[0]!;
  const chain: NonNullable<SearchCriterion['chain']> = [];
  for (const target of targets) {
    if (!registry.get(target, tailCode) && !tail.startsWith('_has:')) continue;
    const inner = parseCriterion(target, tail, rawValue, registry, options, [], depth + 1);
    if (inner) chain.push({ resourceType: target, inner });
  }
  if (chain.length === 0) {
    ignored.push({ name, reason: `No target type of '${code}' has a search parameter ${quoted(tailCode)}` });
    return undefined;
  }
  return { param, modifier: typeModifier, values: [], chain };
}

/** search.html#has: `_has:Observation:patient:code=x` (nested `_has` allowed). */
function parseReverseChain(resourceType: string | null, name: string, rawValue: string, registry: SearchParameterRegistry,
  options: SearchParseOptions, ignored: IgnoredSearchParameter[], depth: number): SearchCriterion | undefined {
  const [, sourceType, referenceCode, ...rest] = name.split(':');
  const innerName = rest.join(':');
  if (!sourceType || !referenceCode || !innerName || resourceType === null) {
    ignored.push({ name, reason: '_has needs the form _has:Type:reference:parameter=value on a typed search' });
    return undefined;
  }
  const param = registry.get(sourceType, referenceCode);
  if (!param || param.type !== 'reference' || (param.targets.length > 0 && !param.targets.includes(resourceType))) {
    ignored.push({ name, reason: `${quoted(referenceCode)} of ${quoted(sourceType)} is not a reference that can point to ${resourceType}` });
    return undefined;
  }
  if (depth >= MAX_CHAIN_DEPTH) {
    ignored.push({ name, reason: `Chains longer than ${MAX_CHAIN_DEPTH} links are not supported` });
    return undefined;
  }
  const inner = parseCriterion(sourceType, innerName, rawValue, registry, options, ignored, depth + 1);
  if (!inner) return undefined;
  return { param, modifier: undefined, values: [], reverse: { sourceType, inner } };
}

/** `_include=Observation:subject[:Patient]`, also `*` (search.html#include). */
function parseInclude(text: string, registry: SearchParameterRegistry, iterate: boolean,
  ignored: IgnoredSearchParameter[], name: string): IncludeDirective[] {
  const [sourceType, code, targetType] = text.split(':');
  if (!sourceType || !code) {
    ignored.push({ name, reason: `${name} needs the form SourceType:parameter[:TargetType]` });
    return [];
  }
  const params = code === '*'
    ? [...registry.forType(sourceType).values()].filter((p) => p.type === 'reference')
    : [registry.get(sourceType, code)].filter((p): p is SearchParameterDefinition => p !== undefined);
  const references = params.filter((p) => p.type === 'reference');
  if (references.length === 0) {
    ignored.push({ name, reason: `${quoted(code)} is not a reference search parameter of ${quoted(sourceType)}` });
    return [];
  }
  return references.map((param) => ({ sourceType, param, targetType, iterate }));
}

/**
 * search.html#recursive: "Some references are circular - that is, the reference points to
 * another resource of the same type". Such a parameter (its targets include its own type) can
 * be searched transitively with `:below`/`:above`.
 */
export function isCircularReference(param: SearchParameterDefinition): boolean {
  return param.type === 'reference' && param.targets.includes(param.resourceType);
}

/** Does this server implement `modifier` on `param` (the CapabilityStatement documents the same)? */
export function isSupportedModifier(param: SearchParameterDefinition, modifier: string): boolean {
  if (param.type === 'reference' && param.targets.includes(modifier)) return true; // :[type]
  if (param.code === '_id') return modifier === 'not' || modifier === 'missing';
  if (param.type === 'reference' && (modifier === 'below' || modifier === 'above')) return isCircularReference(param);
  return SUPPORTED_MODIFIERS[param.type]?.includes(modifier) ?? false;
}

function applyControlParameter(query: SearchQuery, result: SearchResultOptions, name: string, value: string,
  registry: SearchParameterRegistry, options: SearchParseOptions, ignored: IgnoredSearchParameter[]): void {
  switch (name) {
    case '_count':
      query.count = parseCount(value, options);
      break;
    case '_offset':
      // FHIR R4 search.html#errors: a value the server cannot process is a 400. Past 2^53 the
      // number is no longer an exact integer, and the store refuses it (SQLite: datatype mismatch).
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw badValue('_offset', value, 'a non-negative integer');
      query.offset = Number(value);
      break;
    case '_sort':
      query.sort = parseSort(query.resourceType, value, registry, ignored, options.limits ?? DEFAULT_SEARCH_LIMITS);
      break;
    case '_total':
      if (!['none', 'estimate', 'accurate'].includes(value)) throw badValue('_total', value, 'none, estimate or accurate');
      query.total = value as TotalMode;
      break;
    case '_summary':
      if (value === 'count') query.countOnly = true;
      else if (['true', 'text', 'data', 'false'].includes(value)) result.summary = value as SummaryMode;
      else throw badValue('_summary', value, 'true, text, data, count or false');
      break;
    case '_elements':
      result.elements = value.split(',').map((e) => e.trim()).filter((e) => e !== '');
      break;
    case '_include':
    case '_include:iterate':
      result.include.push(...parseInclude(value, registry, name.endsWith(':iterate'), ignored, name));
      break;
    case '_revinclude':
    case '_revinclude:iterate':
      result.revinclude.push(...parseInclude(value, registry, name.endsWith(':iterate'), ignored, name));
      break;
    case '_snapshot':
      // Opaque outside the store adapter that issued it (store.ts SearchPage.snapshot), which
      // checks it; here only its alphabet and length, so that no odd text travels further.
      if (!/^[\w-]{1,64}$/.test(value)) throw badValue('_snapshot', value, 'the value from a paging link');
      query.snapshot = value;
      break;
    default:
      break; // _format and _pretty are handled by the http layer
  }
}
