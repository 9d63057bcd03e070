/**
 * Member navigation on the one element model (validation/type-registry.ts: the element trees of
 * the official R4 StructureDefinitions): which JSON properties an element name stands for, and
 * the FHIR type found under each. FHIR R4 json.html#choice: a choice element `value[x]` appears
 * as `valueQuantity`, `valueString`…; json.html#primitive: the `_name` companion of a primitive
 * holds its id and extensions and is not a value of the element.
 *
 * Used by the validation invariant evaluator (validation/fast-fhirpath.ts) and the
 * de-identification rule paths (deid/rule-path.ts).
 */
import type { ChildSlot, ElementNode } from '../validation/definitions.js';

/** One JSON property an element can appear under. */
export interface ElementChild {
  readonly key: string;
  readonly slot: ChildSlot;
  /**
   * The FHIR type of the value: a primitive (`code`, `string` for System.String), a datatype
   * (`HumanName`, `SimpleQuantity`), `BackboneElement`, or `Resource`.
   */
  readonly type: string;
}

const childrenByNode = new WeakMap<ElementNode, Map<string, readonly ElementChild[] | null>>();

/**
 * The JSON properties of element `name` of `node` (several for a choice element, `_` companions
 * left out), or undefined when `node` has no such element.
 */
export function elementChildren(node: ElementNode, name: string): readonly ElementChild[] | undefined {
  let byName = childrenByNode.get(node);
  if (byName === undefined) {
    byName = new Map();
    childrenByNode.set(node, byName);
  }
  let children = byName.get(name);
  if (children === undefined) {
    const keys = node.keysByElement.get(name);
    children = keys === undefined ? null : keys
      .filter((key) => key.charCodeAt(0) !== 95)
      .map((key) => {
        const slot = node.children.get(key)!;
        return { key, slot, type: slotType(slot) };
      });
    byName.set(name, children);
  }
  return children ?? undefined;
}

function slotType(slot: ChildSlot): string {
  switch (slot.kind) {
    case 'backbone': return 'BackboneElement';
    case 'complex': return slot.typeName ?? '';
    case 'resource': return 'Resource';
    default: return primitiveTypeName(slot.typeName ?? 'string');
  }
}

/** `http://hl7.org/fhirpath/System.String` (the type of Element.id, Extension.url) → string. */
export function primitiveTypeName(code: string): string {
  if (!code.startsWith('http://hl7.org/fhirpath/System.')) return code;
  const name = code.slice('http://hl7.org/fhirpath/System.'.length);
  return name === 'String' ? 'string' : name.toLowerCase();
}
