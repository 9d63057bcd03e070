/**
 * The compiled evaluator for the subset of FHIRPath that nearly all official search expressions
 * use (type-rooted dotted paths, `|` unions, `(x as T)`, `x.as(T)`, `x.ofType(T)`,
 * `x.where(resolve() is T)`, `x.where(field = 'literal')`): it walks the JSON with the FHIRPath
 * R4 model's type tables and allocates almost nothing, which is what the write path's budget
 * needs. Expressions are parsed by the shared path-subset parser (fhirpath-subset/path-syntax.ts);
 * an expression outside what this evaluator runs throws UnsupportedExpression (fhirpath.js runs it).
 */
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { unionMembers } from '../search-parameter-registry.js';
import type { Evaluator, NodeSink } from './result-nodes.js';
import { parseReference } from './search-value-normalisation.js';
import { parsePathExpression, UnsupportedExpression, type PathStep } from '../fhirpath-subset/path-syntax.js';

export { UnsupportedExpression };

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

/** One compiled step: consumes a node, passes results on. */
type Visit = (data: unknown, type: string, typePath: string, sink: NodeSink) => void;

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
    default:
      throw new UnsupportedExpression(`${step.kind}() at index time`);
  }
}


const ABSTRACT_ROOTS = new Set(['Resource', 'DomainResource']);

/** The fast evaluator for an expression, or throws UnsupportedExpression. */
export function compileSimpleExpression(expression: string, resourceType: string): Evaluator {
  const members = unionMembers(expression).map((part) => {
    const path = parsePathExpression(part);
    if (path.root === null) throw new UnsupportedExpression('a path that starts with descendants()');
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
