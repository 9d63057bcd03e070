/**
 * Index-value extraction (FHIR R4 search.html): turns a resource into the SearchIndexEntry rows
 * the store writes next to each version, one set per search parameter of its type.
 *
 * Expressions come from the official SearchParameter definitions (search-parameter-registry.ts).
 * Two evaluators run them:
 *  - a small compiled evaluator for the subset of FHIRPath that nearly all official search
 *    expressions use (type-rooted dotted paths, `|` unions, `(x as T)`, `x.as(T)`,
 *    `x.ofType(T)`, `x.where(resolve() is T)`, `x.where(field = 'literal')`): it walks the JSON
 *    with the FHIRPath R4 model's type tables and allocates almost nothing, which is what the
 *    write path's budget (2,500 indexed creates per second on one core) needs;
 *  - fhirpath.js, compiled once per expression, for everything else (and, with
 *    `engine: 'fhirpath'`, for everything: the test suite runs both and asserts identical
 *    entries).
 *
 * The pure helpers below (string folding, date ranges, decimal precision, reference parsing)
 * are also used by the query parser, so a value is normalised the same way on both sides.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { isValidResourceId, type Resource } from './resource.js';
import type {
  CompositeIndexEntry, DateIndexEntry, NumberIndexEntry, QuantityIndexEntry, ReferenceIndexEntry, SearchIndexEntry,
  SearchParamType, StringIndexEntry, TokenIndexEntry, UriIndexEntry,
} from './search-index-entry.js';
import {
  r4ResourceTypes, unionMembers, type SearchParameterDefinition, type SearchParameterRegistry,
} from './search-parameter-registry.js';

// ---------------------------------------------------------------------------------------------
// Pure helpers shared with the query side
// ---------------------------------------------------------------------------------------------

const NON_ASCII = /[^\x00-\x7f]/;
const COMBINING_MARKS = /\p{M}+/gu;
const WHITESPACE_RUN = /\s+/g;

/**
 * search.html#string: "the search is case-insensitive and accent-insensitive". Canonical
 * decomposition (NFD) splits accented letters into base letter + combining mark; the marks are
 * dropped, then the text is lower-cased and runs of whitespace collapsed to one space (and
 * trimmed). ASCII input skips the Unicode work.
 */
export function foldSearchString(s: string): string {
  let t = s;
  if (NON_ASCII.test(t)) t = t.normalize('NFD').replace(COMBINING_MARKS, '');
  return t.toLowerCase().replace(WHITESPACE_RUN, ' ').trim();
}

const DATE_PATTERN = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;
const DAY_MS = 86_400_000;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, month1: number): number {
  if (month1 === 2) return isLeapYear(y) ? 29 : 28;
  return month1 === 4 || month1 === 6 || month1 === 9 || month1 === 11 ? 30 : 31;
}

/** Epoch ms of a UTC calendar time; unlike Date.UTC, years 1–99 are not shifted to 19xx. */
function utcMs(y: number, month0: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  if (y >= 100) return Date.UTC(y, month0, d, h, mi, s, ms);
  const dt = new Date(0);
  dt.setUTCFullYear(y, month0, d);
  dt.setUTCHours(h, mi, s, ms);
  return dt.getTime();
}

/**
 * search.html#date: a date, dateTime or instant stands for the whole interval its precision
 * covers ("2013-01" is all of January 2013). Returns that interval as epoch ms [low, high).
 *
 * Accepted: YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm, …:ss, …:ss.fff (any number of
 * fraction digits; sub-millisecond digits are truncated, so their interval is 1 ms), each time
 * optionally followed by Z or ±hh:mm. A time without a zone is taken as UTC: R4 lets a server
 * choose how to read unzoned search times, and UTC keeps the index independent of the host's
 * zone. Calendar-invalid values (month 13, 30 February, hour 24, offset beyond ±14:00) and
 * anything else give undefined.
 */
export function parseDateRange(text: string): { low: number; high: number } | undefined {
  const m = DATE_PATTERN.exec(text);
  if (m === null) return undefined;
  const y = Number(m[1]);
  if (y < 1) return undefined;
  if (m[2] === undefined) return { low: utcMs(y, 0, 1), high: utcMs(y + 1, 0, 1) };
  const mo = Number(m[2]);
  if (mo < 1 || mo > 12) return undefined;
  if (m[3] === undefined) return { low: utcMs(y, mo - 1, 1), high: utcMs(y, mo, 1) };
  const d = Number(m[3]);
  if (d < 1 || d > daysInMonth(y, mo)) return undefined;
  if (m[4] === undefined) {
    const low = utcMs(y, mo - 1, d);
    return { low, high: low + DAY_MS };
  }
  const h = Number(m[4]);
  const mi = Number(m[5]);
  // FHIR R4 datatypes.html#dateTime allows second 60 (a leap second); it rolls into the next minute.
  const s = m[6] === undefined ? 0 : Number(m[6]);
  if (h > 23 || mi > 59 || s > 60) return undefined;
  let ms = 0;
  let width: number;
  if (m[6] === undefined) width = 60_000;
  else if (m[7] === undefined) width = 1_000;
  else {
    const frac = m[7];
    ms = Number(frac.length >= 3 ? frac.slice(0, 3) : frac.padEnd(3, '0'));
    width = frac.length >= 3 ? 1 : 10 ** (3 - frac.length);
  }
  let offsetMs = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 14 || om > 59) return undefined;
    offsetMs = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const low = utcMs(y, mo - 1, d, h, mi, s, ms) - offsetMs;
  return { low, high: low + width };
}

const DECIMAL_PATTERN = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * search.html#number: a number stands for the interval of its implicit precision, half a unit
 * of its last significant digit either side: "100" → [99.5, 100.5), "100.00" →
 * [99.995, 100.005), "0.8" → [0.75, 0.85). Exponent notation shifts that unit: "1e2" has one
 * significant digit in the hundreds, so → [50, 150). (The R4 table gives [95, 105) for 1e2,
 * which contradicts its own "to 1 significant figure" wording; we follow the rule, not the typo.)
 *
 * The bounds are computed in decimal (mantissa digits as an integer, then one string → number
 * conversion) so that they are the doubles nearest to the exact bounds, e.g. 0.75, not
 * 0.7500000000000001.
 */
export function decimalRange(text: string): { value: number; low: number; high: number } | undefined {
  const m = DECIMAL_PATTERN.exec(text.trim());
  if (m === null) return undefined;
  const negative = m[1] === '-';
  const fraction = m[3] ?? '';
  const digits = (m[2] + fraction).replace(/^0+(?=\d)/, '');
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  const unitExponent = exponent - fraction.length;
  const value = Number(`${negative ? '-' : ''}${digits}e${unitExponent}`);
  if (!Number.isFinite(value)) return undefined;
  // |x| ∈ [(2M−1)·5·10^(u−1), (2M+1)·5·10^(u−1)) with M the mantissa as an integer.
  let below: string;
  let above: string;
  if (digits.length <= 14) {
    const mantissa = Number(digits);
    below = String((2 * mantissa - 1) * 5);
    above = String((2 * mantissa + 1) * 5);
  } else {
    const mantissa = BigInt(digits);
    below = ((2n * mantissa - 1n) * 5n).toString();
    above = ((2n * mantissa + 1n) * 5n).toString();
  }
  const lowAbs = Number(`${below}e${unitExponent - 1}`);
  const highAbs = Number(`${above}e${unitExponent - 1}`);
  return negative
    ? { value: value === 0 ? 0 : value, low: -highAbs, high: -lowAbs }
    : { value, low: lowAbs, high: highAbs };
}

const RESOURCE_TYPES: ReadonlySet<string> = new Set(r4ResourceTypes());
const ABSOLUTE_URL = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * references.html#Reference: Reference.reference is a relative `Type/id`, an absolute URL, a
 * `urn:uuid:`/`urn:oid:` (bundle-local) or `#id` (contained). A version suffix
 * `/_history/vid` is ignored for matching (search.html#reference: version-specific references
 * match the resource).
 *
 * targetType/targetId are filled when the reference has the shape `<anything>/<Type>/<id>` with a
 * known R4 resource type and a valid id. With `baseUrl`, an absolute reference is local only
 * when it lies under that base; other absolute references keep only their url (they are on
 * another server). `url` is always the reference as written.
 */
export function parseReference(reference: string, baseUrl?: string): { targetType: string | null; targetId: string | null; url: string } {
  const none = { targetType: null, targetId: null, url: reference };
  if (reference.length === 0 || reference[0] === '#' || reference.startsWith('urn:')) return none;
  let local = reference;
  if (baseUrl !== undefined && ABSOLUTE_URL.test(reference)) {
    const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
    if (!reference.startsWith(base)) return none;
    local = reference.slice(base.length);
  }
  const segments = local.split('/');
  let n = segments.length;
  if (n >= 4 && segments[n - 2] === '_history' && isValidResourceId(segments[n - 1])) n -= 2;
  if (n < 2) return none;
  const type = segments[n - 2];
  const id = segments[n - 1];
  if (!RESOURCE_TYPES.has(type) || !isValidResourceId(id)) return none;
  return { targetType: type, targetId: id, url: reference };
}

// ---------------------------------------------------------------------------------------------
// The FHIRPath R4 model: element types, choice types, type hierarchy
// ---------------------------------------------------------------------------------------------

interface R4ModelTables {
  path2Type: Record<string, string | { code: string }>;
  choiceTypePaths: Record<string, string[]>;
  pathsDefinedElsewhere: Record<string, string>;
  type2Parent: Record<string, string>;
}

const MODEL = r4Model as unknown as R4ModelTables;

/** FHIR R4 datatypes.html#primitive: primitive type names are lower-camel. */
const PRIMITIVE_TYPES = new Set([
  'boolean', 'integer', 'string', 'decimal', 'uri', 'url', 'canonical', 'base64Binary', 'instant', 'date',
  'dateTime', 'time', 'code', 'oid', 'id', 'markdown', 'unsignedInt', 'positiveInt', 'uuid', 'xhtml',
]);

/** Where to find one element of a type in JSON, and the type of what is found there. */
interface ChildSlot {
  /** JSON property, e.g. `valueQuantity` for the choice element `value`. */
  key: string;
  /** FHIR type name of the value, e.g. `Quantity`, `dateTime`, `BackboneElement`. */
  type: string;
  /** Where its own children are described: a type name, or an element path for backbone elements. */
  typePath: string;
  /** Element typed `Resource` (Bundle.entry.resource, contained): its type is its resourceType. */
  isResource: boolean;
}

/**
 * The JSON slots of element `name` of the type (or backbone element) at `typePath`, or null when
 * the model does not know it. A choice element `value[x]` has one slot per allowed type
 * (json.html#choice: `valueQuantity`, `valueString`…).
 */
function childSlots(typePath: string, name: string): ChildSlot[] | null {
  const path = `${typePath}.${name}`;
  const choices = MODEL.choiceTypePaths[path];
  if (choices !== undefined) {
    return choices.map((suffix) => {
      const lower = suffix[0].toLowerCase() + suffix.slice(1);
      const type = PRIMITIVE_TYPES.has(lower) ? lower : suffix;
      return { key: name + suffix, type, typePath: type, isResource: false };
    });
  }
  const resolved = MODEL.pathsDefinedElsewhere[path] ?? path;
  const declared = MODEL.path2Type[resolved];
  if (declared === undefined) return null;
  const type = typeof declared === 'string' ? declared : declared.code;
  const inline = type === 'BackboneElement' || type === 'Element';
  return [{ key: name, type, typePath: inline ? resolved : type, isResource: type === 'Resource' }];
}

const subtypeMemo = new Map<string, boolean>();

/** FHIRPath `is`/`as`/`ofType` semantics: a type matches itself and its ancestors (Age is a Quantity, code a string). */
function isTypeOrSubtype(type: string, wanted: string): boolean {
  const key = `${type}>${wanted}`;
  let result = subtypeMemo.get(key);
  if (result === undefined) {
    result = false;
    for (let t: string | undefined = type; t !== undefined; t = MODEL.type2Parent[t]) {
      if (t === wanted) { result = true; break; }
    }
    subtypeMemo.set(key, result);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The compiled simple-path evaluator
// ---------------------------------------------------------------------------------------------

/** Receives each result node: its JSON value and FHIR type. */
type NodeSink = (data: unknown, type: string) => void;
/** One compiled step: consumes a node, passes results on. */
type Visit = (data: unknown, type: string, typePath: string, sink: NodeSink) => void;

type PathStep =
  | { kind: 'child'; name: string }
  | { kind: 'ofType'; type: string }
  | { kind: 'referenceTo'; type: string }
  | { kind: 'fieldEquals'; field: string; value: string };

interface SimplePath { root: string; steps: PathStep[] }

class UnsupportedExpression extends Error {}

interface Token { kind: 'ident' | 'string' | 'punct'; text: string }

const TOKEN = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|'((?:[^'\\]|\\.)*)'|(\(|\)|\.|=))/y;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  while (pos < source.length) {
    if (/^\s*$/.test(source.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(source);
    if (m === null) throw new UnsupportedExpression(`unsupported syntax at ${pos}`);
    if (m[1] !== undefined) tokens.push({ kind: 'ident', text: m[1] });
    else if (m[2] !== undefined) {
      if (m[2].includes('\\')) throw new UnsupportedExpression('escaped string literal');
      tokens.push({ kind: 'string', text: m[2] });
    } else tokens.push({ kind: 'punct', text: m[3] });
    pos = TOKEN.lastIndex;
  }
  return tokens;
}

/**
 * Parses one union member of the supported subset:
 *   path   := term ('.' step)*
 *   term   := TypeName | '(' path 'as' TypeName ')'
 *   step   := name | 'as(' T ')' | 'ofType(' T ')' | 'where(resolve() is' T ')' | "where(" name "= '" lit "')"
 * Throws UnsupportedExpression for anything else (that parameter then runs on fhirpath.js).
 */
function parseSimplePath(source: string): SimplePath {
  const tokens = tokenize(source);
  let i = 0;
  const peek = (text?: string): Token | undefined => {
    const t = tokens[i];
    // A string literal never stands for punctuation or a keyword.
    return t !== undefined && (text === undefined || (t.kind !== 'string' && t.text === text)) ? t : undefined;
  };
  const expect = (text?: string, kind?: Token['kind']): Token => {
    const t = tokens[i];
    if (t === undefined || (text !== undefined && t.text !== text) || (kind !== undefined && t.kind !== kind)) {
      throw new UnsupportedExpression(`expected ${text ?? kind ?? 'token'} at token ${i}`);
    }
    i++;
    return t;
  };
  const typeName = (): string => {
    const t = expect(undefined, 'ident').text;
    // FHIRPath allows namespaced type names (FHIR.Quantity).
    if (t === 'FHIR' && peek('.')) { i++; return expect(undefined, 'ident').text; }
    return t;
  };

  const parsePath = (): SimplePath => {
    let path: SimplePath;
    if (peek('(')) {
      i++;
      path = parsePath();
      const as = expect(undefined, 'ident');
      if (as.text !== 'as') throw new UnsupportedExpression('only (x as T) is supported in parentheses');
      path.steps.push({ kind: 'ofType', type: typeName() });
      expect(')');
    } else {
      path = { root: expect(undefined, 'ident').text, steps: [] };
    }
    while (peek('.')) {
      i++;
      const name = expect(undefined, 'ident').text;
      if (!peek('(')) { path.steps.push({ kind: 'child', name }); continue; }
      i++;
      if (name === 'as' || name === 'ofType') {
        path.steps.push({ kind: 'ofType', type: typeName() });
      } else if (name === 'where' && peek('resolve')) {
        i++;
        expect('('); expect(')');
        const is = expect(undefined, 'ident');
        if (is.text !== 'is') throw new UnsupportedExpression('where(resolve() …) other than is');
        path.steps.push({ kind: 'referenceTo', type: typeName() });
      } else if (name === 'where') {
        const field = expect(undefined, 'ident').text;
        expect('=');
        const value = expect(undefined, 'string').text;
        path.steps.push({ kind: 'fieldEquals', field, value });
      } else {
        throw new UnsupportedExpression(`function ${name}()`);
      }
      expect(')');
    }
    return path;
  };

  const path = parsePath();
  if (i !== tokens.length) throw new UnsupportedExpression(`trailing tokens after ${i}`);
  return path;
}

/** Compiles a parsed path into a chain of visitors; `next` receives the step's results. */
function compileSteps(steps: readonly PathStep[], index: number): Visit {
  if (index === steps.length) return (data, type, _typePath, sink) => sink(data, type);
  const next = compileSteps(steps, index + 1);
  const step = steps[index];
  switch (step.kind) {
    case 'child': {
      const name = step.name;
      const slotsByTypePath = new Map<string, ChildSlot[] | null>();
      const visitValue = (value: unknown, slot: ChildSlot, sink: NodeSink): void => {
        if (value === null || value === undefined) return;
        if (slot.isResource) {
          const rt = (value as { resourceType?: unknown }).resourceType;
          if (typeof rt === 'string') next(value, rt, rt, sink);
          return;
        }
        next(value, slot.type, slot.typePath, sink);
      };
      return (data, _type, typePath, sink) => {
        if (typeof data !== 'object' || data === null) return;
        let slots = slotsByTypePath.get(typePath);
        if (slots === undefined) {
          slots = childSlots(typePath, name);
          slotsByTypePath.set(typePath, slots);
        }
        if (slots === null) return;
        const object = data as Record<string, unknown>;
        for (let s = 0; s < slots.length; s++) {
          const slot = slots[s];
          const value = object[slot.key];
          if (value === undefined) continue;
          if (Array.isArray(value)) {
            for (let k = 0; k < value.length; k++) visitValue(value[k], slot, sink);
          } else {
            visitValue(value, slot, sink);
          }
        }
      };
    }
    case 'ofType': {
      const wanted = step.type;
      return (data, type, typePath, sink) => {
        if (isTypeOrSubtype(type, wanted)) next(data, type, typePath, sink);
      };
    }
    case 'referenceTo': {
      // See REFERENCE_TYPE_TEST: resolve() cannot run at index time, so "resolves to a T" is
      // read as "its reference has the shape …/T/id".
      const wanted = step.type;
      return (data, type, typePath, sink) => {
        const ref = (data as { reference?: unknown }).reference;
        if (typeof ref === 'string' && parseReference(ref).targetType === wanted) next(data, type, typePath, sink);
      };
    }
    case 'fieldEquals': {
      const { field, value: wanted } = step;
      return (data, type, typePath, sink) => {
        let v = (data as Record<string, unknown>)[field];
        // FHIRPath `=` on a one-item collection compares the item; on several it is not true.
        if (Array.isArray(v)) v = v.length === 1 ? v[0] : undefined;
        if (v === wanted) next(data, type, typePath, sink);
      };
    }
  }
}

/** Evaluates an expression against a resource, reporting each result node to `sink`. */
type Evaluator = (resource: Resource, sink: NodeSink) => void;

const ABSTRACT_ROOTS = new Set(['Resource', 'DomainResource']);

/** The fast evaluator for an expression, or throws UnsupportedExpression. */
function compileSimpleExpression(expression: string, resourceType: string): Evaluator {
  const members = unionMembers(expression).map((part) => {
    const path = parseSimplePath(part);
    if (path.root !== resourceType && !ABSTRACT_ROOTS.has(path.root)) {
      throw new UnsupportedExpression(`root ${path.root} is not ${resourceType}`);
    }
    return compileSteps(path.steps, 0);
  });
  if (members.length === 1) {
    const only = members[0];
    return (resource, sink) => only(resource, resourceType, resourceType, sink);
  }
  return (resource, sink) => {
    for (let m = 0; m < members.length; m++) members[m](resource, resourceType, resourceType, sink);
  };
}

// ---------------------------------------------------------------------------------------------
// fhirpath.js, for what the fast evaluator does not cover
// ---------------------------------------------------------------------------------------------

/**
 * Rewrites an official search expression into one fhirpath.js can evaluate at index time with
 * the same meaning as the fast evaluator:
 *
 *  - `x.where(resolve() is T)`: resolve() fetches the target, which cannot happen while indexing
 *    (and is an async function in fhirpath.js 5). search.html#reference defines the parameter by
 *    the target's type, and a literal reference names it: `T/id`, `…/T/id`, optionally
 *    `/_history/vid`. So keep the references whose reference string has that shape, the same
 *    rule as parseReference. Contained (`#id`), `urn:uuid:` and identifier-only references are
 *    not kept: their type cannot be read from the string.
 *  - `(x as T)` and `x.as(T)`: FHIRPath (N1 §6.3.3) makes `as` an error on a collection of more
 *    than one item, and fhirpath.js enforces it, so `(Observation.component.value as Quantity)`
 *    fails on any Observation with two components. The search expressions mean "the items of
 *    type T", which is `x.ofType(T)`.
 */
export function toIndexableFhirPath(expression: string): string {
  let out = expression.replace(
    /\.where\(\s*resolve\(\)\s+is\s+(?:FHIR\.)?([A-Za-z]+)\s*\)/g,
    (_m, type: string) => `.where(reference.matches('${referenceShapePattern(type)}'))`,
  );
  out = out.replace(/\.as\(\s*([A-Za-z.]+)\s*\)/g, (_m, type: string) => `.ofType(${type})`);
  // `(x as T)` where the parenthesis is a grouping, not a function call's argument list.
  let previous: string;
  do {
    previous = out;
    out = out.replace(/(^|[^A-Za-z0-9_])\(([^()]+?)\s+as\s+([A-Za-z.]+)\)/g,
      (_m, before: string, inner: string, type: string) => `${before}${inner.trim()}.ofType(${type})`);
  } while (out !== previous);
  return out;
}

/** The reference shape of REFERENCE_TYPE_TEST as a FHIRPath regex string (no backslashes needed). */
function referenceShapePattern(type: string): string {
  const id = '[-A-Za-z0-9.]{1,64}';
  return `^(.*/)?${type}/${id}(/_history/${id})?$`;
}

interface FhirPathNode { data: unknown; fhirNodeDataType?: string }

/**
 * fhirpath.js evaluator for an expression. Each member of a top-level union is compiled and run
 * on its own: FHIRPath's `|` removes duplicates by FHIRPath equality, which fhirpath.js computes
 * by converting items (it throws on a Quantity with a comparator, and treats quantities of very
 * different magnitude as equal after rounding). Index entries are de-duplicated exactly
 * afterwards instead (dedupeFrom), which is what a union means for an index.
 */
function compileWithFhirPathJs(expression: string): Evaluator {
  const members = unionMembers(expression).map((member) =>
    fhirpath.compile(toIndexableFhirPath(member), r4Model, { resolveInternalTypes: false }) as (resource: unknown) => unknown[]);
  return (resource, sink) => {
    for (const fn of members) {
      for (const node of fn(resource)) sendResultNode(node, sink);
    }
  };
}

/**
 * Passes one fhirpath.js result on with its FHIR type: typed nodes as they are (decimals, which
 * fhirpath.js wraps in FP_Decimal, as the JSON number the index wants), bare JS primitives with
 * the FHIR type they stand for.
 */
function sendResultNode(node: unknown, sink: NodeSink): void {
  if (node !== null && typeof node === 'object' && 'fhirNodeDataType' in node) {
    const n = node as FhirPathNode;
    let data = n.data;
    if (data !== null && typeof data === 'object' && typeof (data as { toNumber?: unknown }).toNumber === 'function') {
      data = (data as { toNumber(): number }).toNumber();
    }
    sink(data, n.fhirNodeDataType ?? '');
  } else if (typeof node === 'boolean') sink(node, 'boolean');
  else if (typeof node === 'number') sink(node, 'decimal');
  else if (typeof node === 'string') sink(node, 'string');
}

// ---------------------------------------------------------------------------------------------
// From result nodes to index entries (search.html, one section per parameter type)
// ---------------------------------------------------------------------------------------------

type EntryBuilder = (param: string, data: unknown, type: string, out: SearchIndexEntry[], baseUrl: string | undefined) => void;

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

function pushString(param: string, raw: unknown, out: SearchIndexEntry[]): void {
  if (typeof raw !== 'string') return;
  const value = foldSearchString(raw);
  if (value.length === 0) return;
  const entry: StringIndexEntry = { param, kind: 'string', value, raw };
  out.push(entry);
}

function pushStrings(param: string, raw: unknown, out: SearchIndexEntry[]): void {
  if (Array.isArray(raw)) for (const r of raw) pushString(param, r, out);
  else pushString(param, raw, out);
}

/**
 * search.html#string: a string parameter on HumanName matches any of its parts, on Address any of
 * its text parts; on a primitive it matches the value.
 */
const buildString: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') { pushString(param, data, out); return; }
  if (!isObject(data)) return;
  if (type === 'HumanName') {
    pushString(param, data.family, out);
    pushStrings(param, data.given, out);
    pushStrings(param, data.prefix, out);
    pushStrings(param, data.suffix, out);
    pushString(param, data.text, out);
  } else if (type === 'Address') {
    pushStrings(param, data.line, out);
    pushString(param, data.city, out);
    pushString(param, data.district, out);
    pushString(param, data.state, out);
    pushString(param, data.postalCode, out);
    pushString(param, data.country, out);
    pushString(param, data.text, out);
  }
};

function pushToken(param: string, system: string | null, code: string | null, text: string | null, out: SearchIndexEntry[]): void {
  if (system === null && code === null && text === null) return;
  const entry: TokenIndexEntry = { param, kind: 'token', system, code, text };
  out.push(entry);
}

/**
 * search.html#token, the table of how each type maps to [system|]code:
 *  - Coding: system|code, display for :text;
 *  - CodeableConcept: one token per coding, CodeableConcept.text (else the coding's display) for
 *    :text; a concept with only text gives one text-only token so :text still finds it;
 *  - Identifier: system|value, Identifier.type.text for :text;
 *  - ContactPoint: the value, with no system. The table leaves the system column empty and lets
 *    a server use ContactPoint.use at its discretion; we do not, so that `phone=|555` (explicitly
 *    no system) and `phone=555` both match, and ContactPoint.system is already what selects the
 *    email/phone parameters;
 *  - code, boolean, id, uri, string and other primitives: the value, no system (a code's system
 *    is implied by its element's binding and is not stored in the resource).
 */
const buildToken: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') { if (data.length > 0) pushToken(param, null, data, null, out); return; }
  if (typeof data === 'boolean' || typeof data === 'number') { pushToken(param, null, String(data), null, out); return; }
  if (!isObject(data)) return;
  switch (type) {
    case 'Coding':
      pushToken(param, str(data.system), str(data.code), str(data.display), out);
      return;
    case 'CodeableConcept': {
      const text = str(data.text);
      const codings = Array.isArray(data.coding) ? data.coding : [];
      let pushed = false;
      for (const c of codings) {
        if (!isObject(c)) continue;
        const system = str(c.system);
        const code = str(c.code);
        if (system === null && code === null && str(c.display) === null && text === null) continue;
        pushToken(param, system, code, text ?? str(c.display), out);
        pushed = true;
      }
      if (!pushed && text !== null) pushToken(param, null, null, text, out);
      return;
    }
    case 'Identifier': {
      const system = str(data.system);
      const value = str(data.value);
      if (system === null && value === null) return;
      pushToken(param, system, value, isObject(data.type) ? str(data.type.text) : null, out);
      // search.html#token :of-type matches Identifier.type's coding: kept as `system|code`.
      const typeCoding = isObject(data.type) && Array.isArray(data.type.coding)
        ? data.type.coding.find((c): c is JsonObject => isObject(c) && typeof c.code === 'string') : undefined;
      if (typeCoding) (out[out.length - 1] as TokenIndexEntry).ofType = `${str(typeCoding.system) ?? ''}|${String(typeCoding.code)}`;
      return;
    }
    case 'ContactPoint': {
      const value = str(data.value);
      if (value !== null) pushToken(param, null, value, null, out);
      return;
    }
    default:
      return;
  }
};

const MIN_TIME = Number.MIN_SAFE_INTEGER;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

function pushDate(param: string, low: number, high: number, out: SearchIndexEntry[]): void {
  const entry: DateIndexEntry = { param, kind: 'date', low, high };
  out.push(entry);
}

/**
 * search.html#date: date, dateTime and instant are intervals of their precision. A Period is the
 * interval from its start's low to its end's high; a missing start or end is open
 * (datatypes.html#Period: "the period is ongoing" / unknown start), stored as
 * Number.MIN_SAFE_INTEGER / Number.MAX_SAFE_INTEGER so the store can keep plain integer columns.
 * A Timing is the outer limits of its events and repeat.boundsPeriod ("the specified scheduling
 * details are ignored and only the outer limits matter").
 */
const buildDate: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') {
    const range = parseDateRange(data);
    if (range !== undefined) pushDate(param, range.low, range.high, out);
    return;
  }
  if (!isObject(data)) return;
  if (type === 'Period') {
    const start = typeof data.start === 'string' ? parseDateRange(data.start) : undefined;
    const end = typeof data.end === 'string' ? parseDateRange(data.end) : undefined;
    if (start === undefined && end === undefined) return;
    pushDate(param, start?.low ?? MIN_TIME, end?.high ?? MAX_TIME, out);
  } else if (type === 'Timing') {
    let low = Infinity;
    let high = -Infinity;
    if (Array.isArray(data.event)) {
      for (const e of data.event) {
        const r = typeof e === 'string' ? parseDateRange(e) : undefined;
        if (r !== undefined) { low = Math.min(low, r.low); high = Math.max(high, r.high); }
      }
    }
    const bounds = isObject(data.repeat) && isObject(data.repeat.boundsPeriod) ? data.repeat.boundsPeriod : undefined;
    if (bounds !== undefined) {
      const start = typeof bounds.start === 'string' ? parseDateRange(bounds.start) : undefined;
      const end = typeof bounds.end === 'string' ? parseDateRange(bounds.end) : undefined;
      if (start !== undefined || end !== undefined) {
        low = Math.min(low, start?.low ?? MIN_TIME);
        high = Math.max(high, end?.high ?? MAX_TIME);
      }
    }
    if (low !== Infinity) pushDate(param, low, high, out);
  }
};

/**
 * A JSON number's implicit precision, as written. JSON.parse keeps only the double, so `1.50`
 * and `1.5` are the same value here: the precision is that of the shortest string that
 * round-trips the double (String(n)), i.e. trailing zeros are lost. The index is therefore at
 * least as precise as what was written, which only narrows matches for values written with
 * trailing zeros.
 */
function numberRange(value: unknown): { value: number; low: number; high: number } | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return decimalRange(String(value));
}

/** A Range as one interval: from its low's lower bound to its high's upper bound, open ends unbounded. */
function rangeBounds(range: JsonObject): { value: number; low: number; high: number; from: JsonObject } | undefined {
  const lowQ = isObject(range.low) ? range.low : undefined;
  const highQ = isObject(range.high) ? range.high : undefined;
  const low = lowQ ? numberRange(lowQ.value) : undefined;
  const high = highQ ? numberRange(highQ.value) : undefined;
  if (low === undefined && high === undefined) return undefined;
  return {
    value: (low ?? high)!.value,
    low: low?.low ?? -Infinity,
    high: high?.high ?? Infinity,
    from: (low !== undefined ? lowQ : highQ)!,
  };
}

/**
 * search.html#number: decimals and integers with their implicit precision. A Range (R4 uses one in
 * RiskAssessment.prediction.probability[x]) is indexed as the interval it covers, its `value` the
 * low end (or the high end when open below).
 */
const buildNumber: EntryBuilder = (param, data, type, out) => {
  let r: { value: number; low: number; high: number } | undefined;
  if (typeof data === 'number') r = numberRange(data);
  else if (type === 'Range' && isObject(data)) r = rangeBounds(data);
  if (r === undefined) return;
  const entry: NumberIndexEntry = { param, kind: 'number', value: r.value, low: clampNumber(r.low), high: clampNumber(r.high) };
  out.push(entry);
}

/** Open ends of a Range: ±Infinity cannot be stored in every column type; use the largest finite doubles. */
function clampNumber(n: number): number {
  if (n === Infinity) return Number.MAX_VALUE;
  if (n === -Infinity) return -Number.MAX_VALUE;
  return n;
}

const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'SimpleQuantity', 'MoneyQuantity']);

/** FHIR R4 datatypes.html#Money: currency is an ISO 4217 code. */
const ISO_4217 = 'urn:iso:std:iso:4217';

function pushQuantity(param: string, r: { value: number; low: number; high: number }, system: string | null, code: string | null, unit: string | null, out: SearchIndexEntry[]): void {
  const entry: QuantityIndexEntry = { param, kind: 'quantity', value: r.value, low: clampNumber(r.low), high: clampNumber(r.high), system, code, unit };
  out.push(entry);
}

/**
 * search.html#quantity: Quantity and its profiles (Age, Duration, Count, Distance,
 * SimpleQuantity) give value with its implicit precision, system, code and unit. Money gives
 * value with system urn:iso:std:iso:4217 and the currency as code. A Range (useContext values) is
 * the interval from low to high with low's (else high's) units. SampledData is not indexed: its
 * only Quantity, `origin`, is the zero point of the samples, not a measured value, and matching
 * `value-quantity` against it would give false hits.
 */
const buildQuantity: EntryBuilder = (param, data, type, out) => {
  if (!isObject(data)) return;
  if (QUANTITY_TYPES.has(type)) {
    const r = numberRange(data.value);
    if (r !== undefined) pushQuantity(param, r, str(data.system), str(data.code), str(data.unit), out);
  } else if (type === 'Money') {
    const r = numberRange(data.value);
    const currency = str(data.currency);
    if (r !== undefined) pushQuantity(param, r, currency === null ? null : ISO_4217, currency, currency, out);
  } else if (type === 'Range') {
    const r = rangeBounds(data);
    if (r !== undefined) pushQuantity(param, r, str(r.from.system), str(r.from.code), str(r.from.unit), out);
  }
};

/**
 * search.html#reference: a Reference's literal reference (parseReference). Canonical and uri
 * elements under a reference parameter (e.g. PlanDefinition.relatedArtifact.resource) keep only
 * their url: a canonical names a version-independent artifact, not a local resource id.
 * Reference.identifier is kept for `:identifier`, also when it is the reference's only content.
 */
const buildReference: EntryBuilder = (param, data, type, out, baseUrl) => {
  if (typeof data === 'string') {
    if (data.length === 0) return;
    const entry: ReferenceIndexEntry = { param, kind: 'reference', targetType: null, targetId: null, url: data };
    out.push(entry);
    return;
  }
  if (type !== 'Reference' || !isObject(data)) return;
  // search.html#reference :identifier matches Reference.identifier, which may stand alone.
  const identifier = isObject(data.identifier) ? data.identifier : undefined;
  const identifierFields = identifier && str(identifier.value) !== null
    ? { identifierSystem: str(identifier.system), identifierValue: str(identifier.value) } : {};
  if (typeof data.reference !== 'string' || data.reference.length === 0) {
    if (identifierFields.identifierValue) out.push({ param, kind: 'reference', targetType: null, targetId: null, url: '', ...identifierFields });
    return;
  }
  const ref = parseReference(data.reference, baseUrl);
  const entry: ReferenceIndexEntry = { param, kind: 'reference', targetType: ref.targetType, targetId: ref.targetId, url: ref.url, ...identifierFields };
  out.push(entry);
};

/** search.html#uri: uri, url and canonical values, matched as written. */
const buildUri: EntryBuilder = (param, data, _type, out) => {
  if (typeof data !== 'string' || data.length === 0) return;
  const entry: UriIndexEntry = { param, kind: 'uri', value: data };
  out.push(entry);
};

const BUILDERS: Partial<Record<SearchParamType, EntryBuilder>> = {
  string: buildString,
  token: buildToken,
  date: buildDate,
  number: buildNumber,
  quantity: buildQuantity,
  reference: buildReference,
  uri: buildUri,
};

function entryKey(e: SearchIndexEntry): string {
  switch (e.kind) {
    case 'string': return `${e.value}\u0000${e.raw}`;
    case 'token': return `${e.system}\u0000${e.code}\u0000${e.text}\u0000${e.ofType ?? ''}`;
    case 'date': return `${e.low}\u0000${e.high}`;
    case 'number': return `${e.value}\u0000${e.low}\u0000${e.high}`;
    case 'quantity': return `${e.value}\u0000${e.low}\u0000${e.high}\u0000${e.system}\u0000${e.code}\u0000${e.unit}`;
    case 'reference': return `${e.targetType}\u0000${e.targetId}\u0000${e.url}\u0000${e.identifierSystem ?? ''}\u0000${e.identifierValue ?? ''}`;
    case 'uri': return e.value;
    case 'composite': return `${entryKey(e.first)}\u0001${entryKey(e.second)}`;
  }
}

/** Drops repeated entries of one parameter (out[from..] all belong to it). */
function dedupeFrom(out: SearchIndexEntry[], from: number): void {
  if (out.length - from < 2) return;
  const seen = new Set<string>();
  let w = from;
  for (let r = from; r < out.length; r++) {
    const key = entryKey(out[r]);
    if (seen.has(key)) continue;
    seen.add(key);
    out[w++] = out[r];
  }
  out.length = w;
}

// ---------------------------------------------------------------------------------------------
// Composites (search.html#composite)
// ---------------------------------------------------------------------------------------------

interface CompiledComposite {
  code: string;
  expression: string;
  extract(resource: Resource, out: SearchIndexEntry[], baseUrl: string | undefined, memo: CompositeMemo): void;
}

type FhirPathFn = (resource: unknown) => unknown[];
type TypedNode = { data: unknown; type: string };

/**
 * Component results of one extract() call, by node and expression: the eight Observation
 * composites share their first component (`code`) and four value expressions, so each is
 * evaluated once per node instead of once per composite.
 */
export type CompositeMemo = Map<unknown, Map<string, TypedNode[]>>;

/** Typed result nodes of a compiled fhirpath.js function. */
function typedNodes(fn: FhirPathFn, input: unknown): TypedNode[] {
  const nodes: TypedNode[] = [];
  for (const node of fn(input)) sendResultNode(node, (data, type) => nodes.push({ data, type }));
  return nodes;
}

/**
 * The nodes a composite's base path selects, by walking the JSON: a base is a resource type
 * and optionally child names (`Observation`, `Observation.component`), which is what every R4
 * composite uses. Undefined when the base is not such a path.
 */
function baseNodes(path: string, resource: Resource): unknown[] | undefined {
  const [root, ...children] = path.split('.');
  if (root !== resource.resourceType || children.some((c) => !/^[a-z][A-Za-z0-9]*$/.test(c))) return undefined;
  let nodes: unknown[] = [resource];
  for (const child of children) {
    const next: unknown[] = [];
    for (const node of nodes) {
      const value = (node as Record<string, unknown>)[child];
      if (Array.isArray(value)) next.push(...value);
      else if (value !== undefined) next.push(value);
    }
    nodes = next;
  }
  return nodes;
}

/**
 * A composite parameter whose first component is a token and second any indexable type: its
 * base selects nodes (the resource, or each Observation.component); both component
 * expressions are evaluated on each node, and every pair from the same node is one entry.
 */
function compileComposite(def: SearchParameterDefinition, registry: SearchParameterRegistry): CompiledComposite | undefined {
  const components = def.components ?? [];
  if (def.expression === null || components.length !== 2) return undefined;
  const types = components.map((c) => registry.get(def.resourceType, c.code)?.type);
  if (types[0] !== 'token' || !types[1] || !BUILDERS[types[1]] || types[1] === 'composite') return undefined;
  const bases = unionMembers(def.expression);
  if (bases.some((b) => baseNodes(b, { resourceType: def.resourceType }) === undefined)) return undefined;
  // A component expression runs on one node. The fast evaluator walks from the resource root,
  // so the node is wrapped in a minimal resource along its base path (`Observation.component`
  // → `{ resourceType, component: [node] }`) and the expression is rooted at that path. What
  // the fast evaluator cannot compile runs on fhirpath.js with the node as its base.
  const fns = new Map<string, (node: unknown) => TypedNode[]>();
  const componentFn = (basePath: string, expression: string): ((node: unknown) => TypedNode[]) => {
    const key = `${basePath}|${expression}`;
    let fn = fns.get(key);
    if (!fn) {
      const [root, ...children] = basePath.split('.');
      try {
        const rooted = unionMembers(expression).map((member) => `${basePath}.${member}`).join(' | ');
        const fast = compileSimpleExpression(rooted, root!);
        fn = (node) => {
          let wrapper: unknown = node;
          for (let c = children.length - 1; c >= 0; c--) wrapper = { [children[c]!]: [wrapper] };
          const resource = children.length === 0 ? node : { ...(wrapper as object), resourceType: root };
          const nodes: TypedNode[] = [];
          fast(resource as Resource, (data, type) => nodes.push({ data, type }));
          return nodes;
        };
      } catch (error) {
        if (!(error instanceof UnsupportedExpression)) throw error;
        const compiled = fhirpath.compile({ base: basePath, expression: toIndexableFhirPath(expression) } as never, r4Model,
          { resolveInternalTypes: false }) as FhirPathFn;
        fn = (node) => typedNodes(compiled, node);
      }
      fns.set(key, fn);
    }
    return fn;
  };
  const evaluate = (memo: CompositeMemo, node: unknown, basePath: string, expression: string): TypedNode[] => {
    let byExpression = memo.get(node);
    if (!byExpression) { byExpression = new Map(); memo.set(node, byExpression); }
    const key = `${basePath}|${expression}`;
    let result = byExpression.get(key);
    if (!result) { result = componentFn(basePath, expression)(node); byExpression.set(key, result); }
    return result;
  };
  const secondBuilder = BUILDERS[types[1]]!;
  const [firstComponent, secondComponent] = components as unknown as [{ expression: string }, { expression: string }];
  return {
    code: def.code,
    expression: def.expression,
    extract(resource, out, baseUrl, memo) {
      const seen = new Set<string>();
      for (const basePath of bases) {
        for (const node of baseNodes(basePath, resource) ?? []) {
          const seconds: SearchIndexEntry[] = [];
          for (const n of evaluate(memo, node, basePath, secondComponent.expression)) secondBuilder(def.code, n.data, n.type, seconds, baseUrl);
          if (seconds.length === 0) continue;
          const firsts: SearchIndexEntry[] = [];
          for (const n of evaluate(memo, node, basePath, firstComponent.expression)) buildToken(def.code, n.data, n.type, firsts, baseUrl);
          for (const first of firsts) {
            for (const second of seconds) {
              const key = `${entryKey(first)}\u0001${entryKey(second)}`;
              if (seen.has(key)) continue;
              seen.add(key);
              out.push({ param: def.code, kind: 'composite', first, second } as CompositeIndexEntry);
            }
          }
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The extractor
// ---------------------------------------------------------------------------------------------

export type ExtractionEngine = 'fast' | 'fhirpath';

export interface SearchIndexExtractorOptions {
  /**
   * 'fast' (default): the compiled simple-path evaluator, fhirpath.js for the rest.
   * 'fhirpath': fhirpath.js for every expression (the reference the fast path is tested against).
   */
  engine?: ExtractionEngine;
  /** This server's FHIR base; absolute references outside it are indexed as external (parseReference). */
  baseUrl?: string;
  /** Called when an expression throws on a resource; that parameter then has no entries for it. */
  onEvaluationError?: (info: { resourceType: string; code: string; expression: string; error: unknown }) => void;
}

/** A parameter whose expression could not be compiled, and so is never indexed. */
export interface SkippedExpression {
  resourceType: string;
  code: string;
  expression: string;
  reason: string;
}

interface CompiledParameter {
  code: string;
  expression: string;
  engine: ExtractionEngine;
  evaluate: Evaluator;
  build: EntryBuilder;
}

const DETACHED_OUTPUT: SearchIndexEntry[] = [];

/** Parameters the store indexes from its own columns (resource id, version timestamp). */
const STORE_COLUMN_PARAMETERS = new Set(['_id', '_lastUpdated']);

export class SearchIndexExtractor {
  private readonly compiled = new Map<string, CompiledParameter[]>();
  private readonly skipped: SkippedExpression[] = [];
  private readonly engine: ExtractionEngine;
  private readonly baseUrl: string | undefined;
  private readonly onEvaluationError: SearchIndexExtractorOptions['onEvaluationError'];

  /**
   * Where the sink sends nodes during extract(): one long-lived sink instead of a closure per
   * parameter per resource (extract is synchronous and never re-entered).
   */
  private readonly target: { code: string; build: EntryBuilder; out: SearchIndexEntry[] } = { code: '', build: buildUri, out: [] };
  private readonly sink: NodeSink;

  constructor(private readonly registry: SearchParameterRegistry, options: SearchIndexExtractorOptions = {}) {
    this.engine = options.engine ?? 'fast';
    this.baseUrl = options.baseUrl;
    this.onEvaluationError = options.onEvaluationError;
    const target = this.target;
    const baseUrl = this.baseUrl;
    this.sink = (data, type) => target.build(target.code, data, type, target.out, baseUrl);
  }

  /**
   * All index entries of a resource, for every parameter of its type except composites (the
   * store matches them from their components' entries), `special` ones (Location `near`), and
   * _id/_lastUpdated (store columns). Entries of one parameter are distinct.
   */
  extract(resource: Resource): SearchIndexEntry[] {
    const params = this.compiledFor(resource.resourceType);
    const out: SearchIndexEntry[] = [];
    const memo: CompositeMemo = new Map();
    for (const composite of this.compositesFor(resource.resourceType)) {
      try {
        composite.extract(resource, out, this.baseUrl, memo);
      } catch (error) {
        this.onEvaluationError?.({ resourceType: resource.resourceType, code: composite.code, expression: composite.expression, error });
      }
    }
    const target = this.target;
    target.out = out;
    for (let p = 0; p < params.length; p++) {
      const param = params[p];
      const from = out.length;
      const code = param.code;
      target.code = code;
      target.build = param.build;
      try {
        param.evaluate(resource, this.sink);
      } catch (error) {
        out.length = from;
        this.onEvaluationError?.({ resourceType: resource.resourceType, code, expression: param.expression, error });
        continue;
      }
      dedupeFrom(out, from);
    }
    // Do not keep the caller's array alive through the sink.
    target.out = DETACHED_OUTPUT;
    return out;
  }

  /** Which evaluator serves a parameter, 'skipped' when none could compile it, undefined when not indexed. */
  engineFor(resourceType: string, code: string): ExtractionEngine | 'skipped' | undefined {
    const param = this.compiledFor(resourceType).find((p) => p.code === code);
    if (param !== undefined) return param.engine;
    return this.skipped.some((s) => s.resourceType === resourceType && s.code === code) ? 'skipped' : undefined;
  }

  /** Compiles every type now (instead of on first use) and lists the expressions that could not be. */
  skippedExpressions(): SkippedExpression[] {
    for (const type of this.registry.resourceTypes()) this.compiledFor(type);
    return [...this.skipped];
  }

  private readonly composites = new Map<string, CompiledComposite[]>();

  private compositesFor(resourceType: string): CompiledComposite[] {
    let list = this.composites.get(resourceType);
    if (list === undefined) {
      list = [];
      for (const def of this.registry.forType(resourceType).values()) {
        if (def.type !== 'composite') continue;
        const compiled = compileComposite(def, this.registry);
        if (compiled) list.push(compiled);
        else this.skipped.push({ resourceType, code: def.code, expression: def.expression ?? '', reason: 'composite components are not a token and one indexable value' });
      }
      this.composites.set(resourceType, list);
    }
    return list;
  }

  private compiledFor(resourceType: string): CompiledParameter[] {
    let params = this.compiled.get(resourceType);
    if (params === undefined) {
      params = this.compileType(resourceType);
      this.compiled.set(resourceType, params);
    }
    return params;
  }

  private compileType(resourceType: string): CompiledParameter[] {
    const params: CompiledParameter[] = [];
    for (const def of this.registry.forType(resourceType).values()) {
      const compiled = this.compileParameter(def);
      if (compiled !== undefined) params.push(compiled);
    }
    return params;
  }

  private compileParameter(def: SearchParameterDefinition): CompiledParameter | undefined {
    const build = BUILDERS[def.type];
    if (build === undefined || def.expression === null || STORE_COLUMN_PARAMETERS.has(def.code)) return undefined;
    const expression = def.expression;
    if (this.engine === 'fast') {
      try {
        return { code: def.code, expression, engine: 'fast', evaluate: compileSimpleExpression(expression, def.resourceType), build };
      } catch (error) {
        if (!(error instanceof UnsupportedExpression)) throw error;
      }
    }
    try {
      return { code: def.code, expression, engine: 'fhirpath', evaluate: compileWithFhirPathJs(expression), build };
    } catch (error) {
      this.skipped.push({
        resourceType: def.resourceType,
        code: def.code,
        expression,
        reason: error instanceof Error ? error.message : String(error),
      });
      return undefined;
    }
  }
}
