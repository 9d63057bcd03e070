/**
 * fhirpath.js, for the search expressions the compiled simple-path evaluator does not cover
 * (and, with `engine: 'fhirpath'`, for all of them: the test suite runs both and asserts
 * identical entries).
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { unionMembers } from '../search-parameter-registry.js';
import type { Evaluator, NodeSink, TypedNode } from './result-nodes.js';


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
export function compileWithFhirPathJs(expression: string): Evaluator {
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
export function sendResultNode(node: unknown, sink: NodeSink): void {
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

export type FhirPathFn = (resource: unknown) => unknown[];

/** Typed result nodes of a compiled fhirpath.js function. */
export function typedNodes(fn: FhirPathFn, input: unknown): TypedNode[] {
  const nodes: TypedNode[] = [];
  for (const node of fn(input)) sendResultNode(node, (data, type) => nodes.push({ data, type }));
  return nodes;
}
