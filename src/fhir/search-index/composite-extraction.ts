/**
 * Composite search parameters (FHIR R4 search.html#composite): pairs of component values taken
 * from the same node (the resource, or one Observation.component).
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { Resource } from '../resource.js';
import type { CompositeIndexEntry, SearchIndexEntry } from '../search-index-entry.js';
import { unionMembers, type SearchParameterDefinition, type SearchParameterRegistry } from '../search-parameter-registry.js';
import { BUILDERS, buildToken, entryKey } from './entry-builders.js';
import { toIndexableFhirPath, typedNodes, type FhirPathFn } from './fhirpath-js-evaluation.js';
import type { TypedNode } from './result-nodes.js';
import { compileSimpleExpression, UnsupportedExpression } from './simple-path-evaluator.js';


export interface CompiledComposite {
  code: string;
  expression: string;
  extract(resource: Resource, out: SearchIndexEntry[], baseUrl: string | undefined, memo: CompositeMemo): void;
}


/**
 * Component results of one extract() call, by node and expression: the eight Observation
 * composites share their first component (`code`) and four value expressions, so each is
 * evaluated once per node instead of once per composite.
 */
export type CompositeMemo = Map<unknown, Map<string, TypedNode[]>>;


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
export function compileComposite(def: SearchParameterDefinition, registry: SearchParameterRegistry): CompiledComposite | undefined {
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
