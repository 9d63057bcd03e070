/**
 * A small FHIRPath evaluator for the shapes most official invariants take (qty-3
 * `code.empty() or system.exists()`, cpt-2, obs-3, pat-1, ref-1...), running directly on the
 * resource JSON and the element tree. fhirpath.js spends 4-11 µs on each of these, mostly
 * building typed nodes; this evaluator needs well under 1 µs, which matters because they run on
 * every Reference, Quantity and ContactPoint of every resource written.
 *
 * It implements exactly the FHIRPath semantics (FHIRPath N1, hl7.org/fhirpath) of the subset it
 * accepts, and nothing more: member navigation (with choice types and the `_name` companions of
 * primitives), string/boolean/integer literals, `%resource`, `%rootResource`, `%ucum`, `$this`,
 * and/or/xor/implies, = and != on strings, booleans and integers, < <= > >= on numbers, `is`/`as`
 * with a primitive type nothing specializes (decimal, boolean, date...), `in`, `|`, and the functions
 * exists(), empty(), not(), hasValue(), count(), first(), startsWith(), substring(), trace().
 * An expression outside the subset is not compiled (fhirpath.js runs it). Content outside what
 * the subset decides exactly (a collection where a singleton is required, a comparison between
 * types whose equality has FHIR-specific rules such as dates or decimals, an element this
 * evaluator has no definition for) makes it give up at run time and hand the evaluation to
 * fhirpath.js. The test suite compares both engines on every invariant instance of the official
 * examples.
 *
 * Invariants are full FHIRPath, so this compiles fhirpath.js's own syntax tree rather than the
 * path subset (fhirpath-subset/path-syntax.ts); member navigation is the shared one
 * (fhirpath-subset/element-children.ts).
 */
import type { ChildSlot, ElementNode } from './definitions.js';
import { elementChildren } from '../fhirpath-subset/element-children.js';

export interface TypeLookup {
  readonly resources: ReadonlyMap<string, ElementNode>;
  readonly datatypes: ReadonlyMap<string, ElementNode>;
}

export interface FastEnvironment {
  resource: unknown;
  rootResource: unknown;
}

/** Thrown (one shared instance, no stack capture) when fhirpath.js must decide instead. */
export class FallbackToFhirPath extends Error {
  constructor() {
    super('outside the fast FHIRPath subset');
  }
}
export const FALLBACK = new FallbackToFhirPath();

/** One item of a FHIRPath collection: a JSON value, with its element definition when known. */
interface Item {
  /** The value; undefined for a primitive that only has extensions (`_name` alone). */
  readonly v: unknown;
  /** Children of a complex value. */
  readonly node?: ElementNode;
  /** Type code of a primitive ('code', 'boolean', 'System.String' for literals...). */
  readonly prim?: string;
}

type Collection = readonly Item[];
type Evaluator = (focus: Item, env: FastEnvironment) => Collection;

interface AstNode {
  type: string;
  text?: string;
  delimitedText?: string;
  children?: AstNode[];
}

const STRING_TYPES = new Set(['string', 'code', 'id', 'uri', 'url', 'canonical', 'markdown', 'oid', 'uuid', 'System.String']);
const NUMBER_TYPES = new Set(['integer', 'positiveInt', 'unsignedInt', 'decimal', 'System.Integer', 'System.Decimal']);
/**
 * FHIR primitive types that no other type specializes (datatypes.html): `is`/`as` on them is a
 * plain type test. (string, integer and uri have specializations: code, positiveInt, url...)
 */
const LEAF_PRIMITIVE_TYPES = new Set(['decimal', 'boolean', 'date', 'dateTime', 'instant', 'time', 'base64Binary']);
const BOOLEAN_TYPES = new Set(['boolean', 'System.Boolean']);
const INTEGER_TYPES = new Set(['integer', 'positiveInt', 'unsignedInt', 'System.Integer']);

const UCUM = 'http://unitsofmeasure.org';
const EMPTY: Collection = [];
const TRUE: Collection = [{ v: true, prim: 'System.Boolean' }];
const FALSE: Collection = [{ v: false, prim: 'System.Boolean' }];

function bool(b: boolean): Collection {
  return b ? TRUE : FALSE;
}

function family(prim: string | undefined): number {
  if (prim === undefined) return 0;
  if (STRING_TYPES.has(prim)) return 1;
  if (BOOLEAN_TYPES.has(prim)) return 2;
  if (INTEGER_TYPES.has(prim)) return 3;
  return 0;
}

/** FHIRPath `=` on two singletons of the supported primitive families; gives up on anything else. */
function equal(a: Item, b: Item): boolean {
  const fa = family(a.prim);
  if (fa === 0 || fa !== family(b.prim) || a.v === undefined || b.v === undefined) throw FALLBACK;
  return a.v === b.v;
}

/** Singleton evaluation to a boolean (fhirpath.html#singleton); undefined is empty. */
function toBoolean(c: Collection): boolean | undefined {
  if (c.length === 0) return undefined;
  if (c.length > 1) throw FALLBACK;
  const v = c[0]!.v;
  if (typeof v !== 'boolean') throw FALLBACK;
  return v;
}

function singleString(c: Collection): string | undefined {
  if (c.length === 0) return undefined;
  if (c.length > 1 || !STRING_TYPES.has(c[0]!.prim ?? '') || typeof c[0]!.v !== 'string') throw FALLBACK;
  return c[0]!.v;
}

function unquote(text: string): string {
  return text.startsWith('`') && text.endsWith('`') ? text.slice(1, -1) : text;
}

function functionParts(node: AstNode): { name: string; params: AstNode[] } {
  const functn = node.children?.[0];
  const name = unquote(functn?.children?.[0]?.text ?? '');
  const paramList = functn?.children?.find((c) => c.type === 'ParamList');
  return { name, params: paramList?.children ?? [] };
}

/** The literal a parameter node holds, if it is a plain string or integer literal. */
function literalOf(node: AstNode | undefined): string | number | undefined {
  let n = node;
  while (n && (n.type === 'TermExpression' || n.type === 'LiteralTerm')) n = n.children?.[0];
  if (!n?.text) return undefined;
  if (n.type === 'StringLiteral') {
    const body = n.text.slice(1, -1);
    return body.includes('\\') ? undefined : body;
  }
  if (n.type === 'NumberLiteral' && /^[0-9]+(\.[0-9]+)?$/.test(n.text)) return Number(n.text);
  return undefined;
}

export class FastFhirPathCompiler {
  constructor(private readonly types: TypeLookup) {}

  /**
   * Compiles an expression for a focus with known children (`focusNode`). Returns null when the
   * expression is outside the subset.
   */
  compile(ast: unknown, focusNode: ElementNode): ((focus: unknown, env: FastEnvironment) => unknown[]) | null {
    const evaluator = this.expr(ast as AstNode);
    if (!evaluator) return null;
    return (focus, env) => {
      const result = evaluator({ v: focus, node: focusNode }, env);
      const out: unknown[] = new Array(result.length);
      for (let i = 0; i < result.length; i++) out[i] = result[i]!.v;
      return out;
    };
  }

  private item(value: unknown, slot: ChildSlot): Item {
    switch (slot.kind) {
      case 'primitive': return { v: value, prim: slot.typeName };
      case 'complex': return { v: value, node: this.types.datatypes.get(slot.typeName ?? '') };
      case 'backbone': return { v: value, node: slot.node };
      case 'resource': return { v: value, node: this.resourceNode(value) };
      default: throw FALLBACK;
    }
  }

  private resourceNode(value: unknown): ElementNode | undefined {
    const type = typeof value === 'object' && value !== null ? (value as { resourceType?: unknown }).resourceType : undefined;
    return typeof type === 'string' ? this.types.resources.get(type) : undefined;
  }

  /** Member navigation (fhirpath.html#paths), over choice types and `_name` companions. */
  private navigate(input: Collection, name: string): Collection {
    const out: Item[] = [];
    for (const item of input) {
      const obj = item.v;
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || !item.node) throw FALLBACK;
      const children = elementChildren(item.node, name);
      // Not an element of this type (or a type name used as first step): fhirpath.js decides.
      if (!children) throw FALLBACK;
      const record = obj as Record<string, unknown>;
      for (let c = 0; c < children.length; c++) {
        const { key, slot } = children[c]!;
        const raw = record[key];
        const companion = slot.kind === 'primitive' ? record[`_${key}`] : undefined;
        if (raw === undefined && companion === undefined) continue;
        if (Array.isArray(raw) || Array.isArray(companion)) {
          const values = Array.isArray(raw) ? raw : [];
          const extras = Array.isArray(companion) ? companion : [];
          const n = Math.max(values.length, extras.length);
          for (let i = 0; i < n; i++) {
            const v = values[i];
            if ((v === null || v === undefined) && (extras[i] === null || extras[i] === undefined)) continue;
            out.push(this.item(v === null ? undefined : v, slot));
          }
        } else {
          out.push(this.item(raw, slot));
        }
      }
    }
    return out;
  }

  private expr(node: AstNode): Evaluator | null {
    const children = node.children ?? [];
    switch (node.type) {
      case 'EntireExpression':
      case 'TermExpression':
      case 'ParenthesizedTerm':
        return children.length === 1 ? this.expr(children[0]!) : null;
      case 'InvocationTerm':
        return children.length === 1 ? this.start(children[0]!) : null;
      case 'LiteralTerm': {
        const lit = children[0];
        if (lit?.type === 'BooleanLiteral') {
          const c = bool(lit.text === 'true');
          return () => c;
        }
        const value = literalOf(lit);
        if (value === undefined) return null;
        const prim = typeof value === 'string' ? 'System.String' : lit?.text?.includes('.') ? 'System.Decimal' : 'System.Integer';
        const c: Collection = [{ v: value, prim }];
        return () => c;
      }
      case 'ExternalConstantTerm': {
        const name = node.delimitedText ?? node.text;
        if (name === 'ucum') {
          const c: Collection = [{ v: UCUM, prim: 'System.String' }];
          return () => c;
        }
        if (name === 'resource') return (_f, env) => [{ v: env.resource, node: this.resourceNode(env.resource) }];
        if (name === 'rootResource') return (_f, env) => [{ v: env.rootResource, node: this.resourceNode(env.rootResource) }];
        return null;
      }
      case 'InvocationExpression': {
        const [left, invocation] = children;
        const input = left ? this.expr(left) : null;
        if (!input || !invocation) return null;
        if (invocation.type === 'MemberInvocation') {
          const name = unquote(invocation.text ?? '');
          return (f, env) => this.navigate(input(f, env), name);
        }
        if (invocation.type === 'FunctionInvocation') return this.call(invocation, input);
        return null;
      }
      case 'AndExpression':
      case 'OrExpression':
      case 'XorExpression':
      case 'ImpliesExpression':
        return this.logic(node.type, children);
      case 'EqualityExpression': {
        if (node.text !== '=' && node.text !== '!=') return null;
        const negate = node.text === '!=';
        const [l, r] = children.map((c) => this.expr(c));
        if (!l || !r) return null;
        return (f, env) => {
          const a = l(f, env);
          const b = r(f, env);
          if (a.length === 0 || b.length === 0) return EMPTY;
          if (a.length !== 1 || b.length !== 1) throw FALLBACK;
          return bool(equal(a[0]!, b[0]!) !== negate);
        };
      }
      case 'InequalityExpression': {
        const op = node.text;
        const [l, r] = children.map((c) => this.expr(c));
        if (!l || !r) return null;
        return (f, env) => {
          const a = l(f, env);
          const b = r(f, env);
          if (a.length === 0 || b.length === 0) return EMPTY;
          if (a.length !== 1 || b.length !== 1) throw FALLBACK;
          const x = a[0]!;
          const y = b[0]!;
          // Numbers only: dates, times, strings and quantities compare with FHIRPath-specific rules.
          if (!NUMBER_TYPES.has(x.prim ?? '') || !NUMBER_TYPES.has(y.prim ?? '') || typeof x.v !== 'number' || typeof y.v !== 'number') throw FALLBACK;
          switch (op) {
            case '<': return bool(x.v < y.v);
            case '<=': return bool(x.v <= y.v);
            case '>': return bool(x.v > y.v);
            case '>=': return bool(x.v >= y.v);
            default: throw FALLBACK;
          }
        };
      }
      case 'TypeExpression': {
        const operand = children[0] ? this.expr(children[0]) : null;
        const typeName = children[1]?.type === 'TypeSpecifier' ? children[1].text : undefined;
        if (!operand || !typeName || !LEAF_PRIMITIVE_TYPES.has(typeName)) return null;
        const isTest = node.text === 'is';
        if (!isTest && node.text !== 'as') return null;
        return (f, env) => {
          const c = operand(f, env);
          if (c.length === 0) return EMPTY;
          if (c.length > 1) throw FALLBACK;
          const prim = c[0]!.prim;
          if (prim !== undefined && prim.startsWith('System.')) throw FALLBACK;
          if (isTest) return bool(prim === typeName);
          return prim === typeName ? c : EMPTY;
        };
      }
      case 'MembershipExpression': {
        if (node.text !== 'in') return null;
        const [l, r] = children.map((c) => this.expr(c));
        if (!l || !r) return null;
        return (f, env) => {
          const a = l(f, env);
          const b = r(f, env);
          if (a.length === 0) return EMPTY;
          if (a.length > 1) throw FALLBACK;
          for (const item of b) if (equal(a[0]!, item)) return TRUE;
          return FALSE;
        };
      }
      case 'UnionExpression': {
        const [l, r] = children.map((c) => this.expr(c));
        if (!l || !r) return null;
        return (f, env) => {
          const out: Item[] = [];
          for (const item of [...l(f, env), ...r(f, env)]) {
            if (!out.some((o) => equal(o, item))) out.push(item);
          }
          return out;
        };
      }
      default:
        return null;
    }
  }

  private start(invocation: AstNode): Evaluator | null {
    if (invocation.type === 'MemberInvocation') {
      const name = unquote(invocation.text ?? '');
      return (f) => this.navigate([f], name);
    }
    if (invocation.type === 'ThisInvocation') return (f) => [f];
    return null;
  }

  private logic(type: string, children: AstNode[]): Evaluator | null {
    const [l, r] = children.map((c) => this.expr(c));
    if (!l || !r) return null;
    // Three-valued logic, fhirpath.html#boolean-logic.
    switch (type) {
      case 'AndExpression':
        return (f, env) => {
          const a = toBoolean(l(f, env));
          const b = toBoolean(r(f, env));
          if (a === false || b === false) return FALSE;
          return a === true && b === true ? TRUE : EMPTY;
        };
      case 'OrExpression':
        return (f, env) => {
          const a = toBoolean(l(f, env));
          const b = toBoolean(r(f, env));
          if (a === true || b === true) return TRUE;
          return a === false && b === false ? FALSE : EMPTY;
        };
      case 'XorExpression':
        return (f, env) => {
          const a = toBoolean(l(f, env));
          const b = toBoolean(r(f, env));
          return a === undefined || b === undefined ? EMPTY : bool(a !== b);
        };
      default: // ImpliesExpression
        return (f, env) => {
          const a = toBoolean(l(f, env));
          const b = toBoolean(r(f, env));
          if (a === false) return TRUE;
          if (a === true) return b === undefined ? EMPTY : bool(b);
          return b === true ? TRUE : EMPTY;
        };
    }
  }

  private call(invocation: AstNode, input: Evaluator): Evaluator | null {
    const { name, params } = functionParts(invocation);
    switch (name) {
      case 'exists':
        return params.length === 0 ? (f, env) => bool(input(f, env).length > 0) : null;
      case 'empty':
        return params.length === 0 ? (f, env) => bool(input(f, env).length === 0) : null;
      case 'count':
        return params.length === 0 ? (f, env) => [{ v: input(f, env).length, prim: 'System.Integer' }] : null;
      case 'first':
        return params.length === 0 ? (f, env) => input(f, env).slice(0, 1) : null;
      case 'not':
        if (params.length !== 0) return null;
        return (f, env) => {
          const b = toBoolean(input(f, env));
          return b === undefined ? EMPTY : bool(!b);
        };
      case 'hasValue':
        if (params.length !== 0) return null;
        return (f, env) => {
          const c = input(f, env);
          if (c.length !== 1) return FALSE;
          const prim = c[0]!.prim;
          // Literals and System-typed elements: leave the edge cases to fhirpath.js.
          if (prim !== undefined && (prim.startsWith('System.') || prim.startsWith('http'))) throw FALLBACK;
          return bool(prim !== undefined && c[0]!.v !== undefined);
        };
      case 'trace':
        // Only logs (fhirpath.html#trace); the validator discards traces.
        return params.length >= 1 && params.length <= 2 ? input : null;
      case 'startsWith': {
        const prefix = params.length === 1 ? literalOf(params[0]) : undefined;
        if (typeof prefix !== 'string') return null;
        return (f, env) => {
          const s = singleString(input(f, env));
          return s === undefined ? EMPTY : bool(s.startsWith(prefix));
        };
      }
      case 'substring': {
        const start = literalOf(params[0]);
        const length = params.length === 2 ? literalOf(params[1]) : undefined;
        if (typeof start !== 'number' || !Number.isInteger(start) || params.length > 2
          || (params.length === 2 && (typeof length !== 'number' || !Number.isInteger(length)))) return null;
        return (f, env) => {
          const s = singleString(input(f, env));
          if (s === undefined || start >= s.length) return EMPTY;
          return [{ v: length === undefined ? s.slice(start) : s.slice(start, start + (length as number)), prim: 'System.String' }];
        };
      }
      default:
        return null;
    }
  }
}
