/**
 * The paths of mapping-table rules: a subset of FHIRPath (R4 fhirpath.html) that can be decided
 * element by element during one typed walk of the resource, instead of running fhirpath.js once
 * per rule per write (which would cost more than the whole write).
 *
 * Forms (each is ordinary FHIRPath, checked with fhirpath.js at start):
 *
 *   Patient.birthDate                          a resource type, then element names
 *   Resource.id, DomainResource.text           the same for every resource (that is a DomainResource)
 *   descendants().ofType(HumanName)            every element of a datatype, anywhere
 *   Patient.descendants().ofType(Address).line  …restricted to one resource type, then names
 *   Observation.value.ofType(string)           a choice element, one of its types
 *   descendants().ofType(Extension).where(url = 'http://…')   any of the above, filtered
 *
 * `where(…)` may close the path; its criteria are full FHIRPath, compiled once with fhirpath.js
 * and evaluated only on the elements the structural part already matched.
 *
 * Paths are parsed by the shared path-subset parser (fhir/fhirpath-subset/path-syntax.ts) and
 * checked against the element model with the shared member navigation
 * (fhir/fhirpath-subset/element-children.ts); what stays here is rule-specific: the anchors a
 * rule may have, and matching a path backwards from an element met during the typed walk.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { ElementNode } from '../fhir/validation/definitions.js';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import { elementChildren } from '../fhir/fhirpath-subset/element-children.js';
import { parsePathExpression, UnsupportedExpression, type PathExpression } from '../fhir/fhirpath-subset/path-syntax.js';

export { primitiveTypeName } from '../fhir/fhirpath-subset/element-children.js';

/** One element met by the walk: its name, its type, and where it hangs. */
export interface ElementFrame {
  /** Element name without the choice suffix (`value` for `valueQuantity`); the type for a resource root. */
  readonly name: string;
  /** FHIR type: a resource type, a datatype (HumanName), a primitive (date), or BackboneElement. */
  readonly type: string;
  readonly parent: ElementFrame | null;
  /** True for a resource (top-level, contained, or inside a Bundle entry). */
  readonly isResource: boolean;
}

/** A compiled rule path: cheap structural test plus optional criteria. */
export interface CompiledRulePath {
  readonly source: string;
  /** The name or type the last step matches: the walk looks rules up by it. */
  readonly terminal: { kind: 'name'; name: string } | { kind: 'type'; type: string };
  /** The element type the path ends on, when the path fixes one (for method checks at start). */
  readonly endType: string | undefined;
  matches(frame: ElementFrame, value: unknown): boolean;
}

/** R4 primitive type names (datatypes.html#primitive). */
export const PRIMITIVE_TYPES: ReadonlySet<string> = new Set([
  'boolean', 'integer', 'string', 'decimal', 'uri', 'url', 'canonical', 'base64Binary', 'instant', 'date',
  'dateTime', 'time', 'code', 'oid', 'id', 'markdown', 'unsignedInt', 'positiveInt', 'uuid', 'xhtml',
]);

/** Abstract roots that stand for any resource (resource.html, domainresource.html). */
const ANY_RESOURCE = 'Resource';
const ANY_DOMAIN_RESOURCE = 'DomainResource';
/** Resources that are not DomainResources in R4 (no text, contained, extension). */
const NOT_DOMAIN_RESOURCES: ReadonlySet<string> = new Set(['Bundle', 'Binary', 'Parameters']);

type Step =
  | { kind: 'name'; name: string }
  | { kind: 'ofType'; type: string };

export class RulePathError extends Error {}

/**
 * Compiles a rule path against the R4 definitions: every element name must exist on the type it
 * is read from, every type must be known. Throws RulePathError with the reason.
 */
export function compileRulePath(source: string, types: TypeRegistry): CompiledRulePath {
  try {
    fhirpath.compile(source, r4Model);
  } catch (error) {
    throw new RulePathError(`not a FHIRPath expression (${(error as Error).message.split('\n')[0]})`);
  }
  let parsed: PathExpression;
  try {
    parsed = parsePathExpression(source);
  } catch (error) {
    if (!(error instanceof UnsupportedExpression)) throw error;
    throw new RulePathError(`not supported in a rule path (names, descendants().ofType(T), ofType(T), a final where(…)): ${error.message}`);
  }
  const parsedSteps = [...parsed.steps];
  let criteria: ((value: unknown) => boolean) | undefined;
  const last = parsedSteps[parsedSteps.length - 1];
  if (last !== undefined && (last.kind === 'where' || last.kind === 'fieldEquals' || last.kind === 'referenceTo')) {
    parsedSteps.pop();
    const evaluate = fhirpath.compile(last.criteria, r4Model);
    criteria = (value) => {
      const result = evaluate(value as object) as unknown[];
      return result.length === 1 && result[0] === true;
    };
  }
  if (parsed.root === null && parsedSteps.length === 0) throw new RulePathError('a path needs at least one step before where()');

  // The anchor: a resource type (or Resource/DomainResource), optionally followed by
  // descendants().ofType(T); or descendants().ofType(T) alone.
  let resourceRestriction: string | undefined;
  let descendantType: string | undefined;
  let index = 0;
  if (parsed.root !== null) {
    const first = parsed.root;
    if (first !== ANY_RESOURCE && first !== ANY_DOMAIN_RESOURCE && !types.resources.has(first)) {
      throw new RulePathError(`'${first}' is not an R4 resource type`);
    }
    resourceRestriction = first;
  }
  if (parsedSteps[index]?.kind === 'descendants') {
    const ofType = parsedSteps[index + 1];
    if (ofType?.kind !== 'ofType') throw new RulePathError('descendants() must be followed by ofType(Type)');
    descendantType = ofType.type;
    if (!isKnownType(descendantType, types)) throw new RulePathError(`'${descendantType}' is not an R4 type`);
    index += 2;
  }

  const steps: Step[] = [];
  for (const step of parsedSteps.slice(index)) {
    if (step.kind === 'ofType') {
      if (steps.length === 0 || steps[steps.length - 1]!.kind !== 'name') throw new RulePathError('ofType() must follow an element name');
      if (!isKnownType(step.type, types)) throw new RulePathError(`'${step.type}' is not an R4 type`);
      steps.push({ kind: 'ofType', type: step.type });
    } else if (step.kind === 'child') {
      steps.push({ kind: 'name', name: step.name });
    } else {
      throw new RulePathError(`${step.kind}() is not supported there in a rule path (names, descendants().ofType(T), ofType(T), a final where(…))`);
    }
  }
  if (descendantType === undefined && steps.length === 0) {
    throw new RulePathError('a path must name an element or a type, not a whole resource');
  }
  const endType = checkSteps(source, resourceRestriction, descendantType, steps, types);

  // The matcher walks the frame chain backwards, one step per frame.
  const names = steps.filter((s): s is { kind: 'name'; name: string } => s.kind === 'name').map((s) => s.name);
  const lastStep = steps[steps.length - 1];
  const requiredType = lastStep?.kind === 'ofType' ? lastStep.type : undefined;
  const terminal: CompiledRulePath['terminal'] = names.length > 0
    ? { kind: 'name', name: names[names.length - 1]! }
    : { kind: 'type', type: descendantType! };

  const matchesStructure = (frame: ElementFrame): boolean => {
    if (requiredType !== undefined && !sameType(frame.type, requiredType)) return false;
    let f: ElementFrame | null = frame;
    for (let i = names.length - 1; i >= 0; i--) {
      if (!f || f.isResource || f.name !== names[i]) return false;
      f = f.parent;
    }
    if (!f) return false;
    if (descendantType !== undefined) {
      // descendants() excludes its focus: the typed element is below a resource root.
      if (f.isResource || !sameType(f.type, descendantType)) return false;
      if (resourceRestriction === undefined || resourceRestriction === ANY_RESOURCE) return true;
      return resourceMatches(enclosingResource(f), resourceRestriction);
    }
    return f.isResource && resourceMatches(f.type, resourceRestriction!);
  };
  return {
    source, terminal, endType,
    matches: criteria
      ? (frame, value) => matchesStructure(frame) && criteria!(value)
      : (frame) => matchesStructure(frame),
  };
}

function enclosingResource(frame: ElementFrame): string {
  let f: ElementFrame | null = frame;
  while (f && !f.isResource) f = f.parent;
  return f?.type ?? '';
}

function resourceMatches(type: string, restriction: string): boolean {
  if (restriction === ANY_RESOURCE) return true;
  if (restriction === ANY_DOMAIN_RESOURCE) return !NOT_DOMAIN_RESOURCES.has(type);
  return type === restriction;
}

/** SimpleQuantity and MoneyQuantity are profiles of Quantity (datatypes.html#SimpleQuantity). */
export function sameType(actual: string, wanted: string): boolean {
  if (actual === wanted) return true;
  return wanted === 'Quantity' && (actual === 'SimpleQuantity' || actual === 'MoneyQuantity');
}

function isKnownType(type: string, types: TypeRegistry): boolean {
  return PRIMITIVE_TYPES.has(type) || types.datatypes.has(type) || types.resources.has(type) || type === 'BackboneElement';
}

/**
 * Follows the names through the definitions from the anchor, so a misspelt element is refused at
 * start. Returns the type the path ends on when it is fixed.
 */
function checkSteps(source: string, resource: string | undefined, descendantType: string | undefined,
  steps: Step[], types: TypeRegistry): string | undefined {
  let nodes: ElementNode[];
  let currentTypes: string[];
  if (descendantType !== undefined) {
    const node = types.datatypes.get(descendantType) ?? types.resources.get(descendantType);
    nodes = node ? [node] : [];
    currentTypes = [descendantType];
  } else if (resource === ANY_RESOURCE || resource === ANY_DOMAIN_RESOURCE) {
    // The abstract roots have no tree of their own here: check against a concrete DomainResource.
    const node = types.resources.get('Basic');
    nodes = node ? [node] : [];
    currentTypes = [resource];
  } else {
    nodes = [types.resources.get(resource!)!];
    currentTypes = [resource!];
  }
  for (const step of steps) {
    if (step.kind === 'ofType') {
      if (!currentTypes.some((t) => sameType(t, step.type))) {
        throw new RulePathError(`${source}: the element cannot be of type ${step.type}`);
      }
      currentTypes = [step.type];
      const node = types.datatypes.get(step.type);
      nodes = node ? [node] : [];
      continue;
    }
    if (nodes.length === 0) throw new RulePathError(`${source}: '${step.name}' is read from an element without children`);
    const nextNodes: ElementNode[] = [];
    const nextTypes: string[] = [];
    let found = false;
    for (const node of nodes) {
      for (const child of elementChildren(node, step.name) ?? []) {
        const slot = child.slot;
        found = true;
        if (slot.kind === 'backbone') {
          if (slot.node) nextNodes.push(slot.node);
        } else if (slot.kind === 'complex') {
          const childNode = types.datatypes.get(slot.typeName ?? '');
          if (childNode) nextNodes.push(childNode);
        }
        nextTypes.push(child.type);
      }
    }
    if (!found) throw new RulePathError(`${source}: no element '${step.name}' there`);
    nodes = nextNodes;
    currentTypes = nextTypes;
  }
  return currentTypes.length === 1 ? currentTypes[0] : undefined;
}
