/**
 * One pass over a resource's JSON that does everything cheap, element by element:
 *
 *  - the FHIR JSON format rules (FHIR R4 json.html): no `null` (except as a placeholder in an
 *    array of primitives whose `_name` companion has an entry at that index, json.html#primitive),
 *    no empty strings, arrays or objects. In JSON these are what invariant ele-1
 *    (`hasValue() or (children().count() > id.count())`, element.html) forbids;
 *  - ext-1 on every Extension (`extension.exists() != value.exists()`, extensibility.html);
 *  - base cardinalities JSON schema cannot state (a required primitive such as Observation.status
 *    may be present as `_status` only, so the schema cannot list it as required);
 *  - the mandatory profiles' cardinalities (profiles.ts), on the top-level resource;
 *  - collecting the FHIRPath invariants that apply to each element instance present, skipping
 *    those the presence analysis decides (constraint.ts).
 *
 * ele-1 and ext-1 bind to every element: evaluating them with FHIRPath would mean one fhirpath.js
 * run per element of the resource, more than all other validation work together, for rules a
 * structural check states exactly.
 */
import type { OutcomeIssue } from '../fhir-error.js';
import type { CardinalityRule, ChildSlot, ElementNode } from './definitions.js';
import { decideWithoutEvaluation, type CompiledConstraint, type ConstraintEnvironment } from './constraint.js';
import type { ProfileCardinalityRule, ProfileNode } from './profiles.js';
import type { TypeRegistry } from './type-registry.js';
import { elementNameOfKey, shownElementName } from './location.js';

/** An invariant to run on one element instance once the structure is known to be sound. */
export interface PendingInvariant {
  constraint: CompiledConstraint;
  focus: unknown;
  location: string;
  env: ConstraintEnvironment;
  /** Already decided as violated by the presence analysis (no evaluation needed). */
  violated: boolean;
}

export interface WalkResult {
  issues: OutcomeIssue[];
  pending: PendingInvariant[];
  /** Locations with a JSON-format issue: schema errors at or below them repeat it. */
  flagged: Set<string>;
  /** Locations of legal `null` placeholders, which the R4 schema wrongly rejects. */
  nullPlaceholders: Set<string>;
}

/** The `_name` companion of a primitive: an Element with id and extensions (json.html#primitive). */
function primitiveElementNode(): ElementNode {
  const children = new Map<string, ChildSlot>();
  children.set('id', { elementName: 'id', kind: 'primitive', path: 'Element.id', definitions: [], constraints: [] });
  children.set('extension', { elementName: 'extension', kind: 'complex', typeName: 'Extension', path: 'Element.extension', definitions: [], constraints: [] });
  return {
    path: 'Element', children, keysByElement: new Map([['id', ['id']], ['extension', ['extension']]]),
    cardinality: [], definitions: [], constraints: [],
  };
}

function isExtensionKey(key: string): boolean {
  return key === 'extension' || key === 'modifierExtension';
}

function hasValueKey(obj: Record<string, unknown>): boolean {
  for (const key in obj) {
    // value[x] of an Extension: `value` followed by an upper-case type name; a primitive value
    // that only has extensions (`_valueString`) exists too (json.html#primitive).
    const start = key.charCodeAt(0) === 95 ? 1 : 0;
    if (key.length > start + 5 && key.startsWith('value', start)) {
      const c = key.charCodeAt(start + 5);
      if (c >= 65 && c <= 90) return true;
    }
  }
  return false;
}

export class ElementWalker {
  private readonly primitiveElement = primitiveElementNode();
  private readonly ele1: string;
  private readonly ext1: string;

  constructor(private readonly registry: TypeRegistry) {
    this.ele1 = registry.structuralHuman.get('ele-1') ?? 'All FHIR elements must have a @value or children';
    this.ext1 = registry.structuralHuman.get('ext-1') ?? 'Must have either extensions or value[x], not both';
  }

  /** Walks a resource of a known type; `profile` holds the mandatory profile rules for it, if any. */
  walk(resource: Record<string, unknown>, type: string, profile: ProfileNode | undefined): WalkResult {
    const out: WalkResult = { issues: [], pending: [], flagged: new Set(), nullPlaceholders: new Set() };
    const env: ConstraintEnvironment = { resource, rootResource: resource };
    this.visitObject(resource, this.registry.resources.get(type), type, env, profile, out, true);
    return out;
  }

  private flag(out: WalkResult, location: string, issue: OutcomeIssue): void {
    out.flagged.add(location);
    out.issues.push(issue);
  }

  private ele1Issue(out: WalkResult, location: string, what: string): void {
    this.flag(out, location, {
      severity: 'error',
      code: 'invariant',
      diagnostics: `Constraint ele-1 failed: ${this.ele1} (${what} is not allowed in FHIR JSON, json.html)`,
      expression: [location],
    });
  }

  private enqueue(constraints: readonly CompiledConstraint[], focus: unknown, location: string, env: ConstraintEnvironment, out: WalkResult): void {
    for (let i = 0; i < constraints.length; i++) {
      const constraint = constraints[i]!;
      const decided = decideWithoutEvaluation(constraint, focus);
      if (decided === true) continue;
      out.pending.push({ constraint, focus, location, env, violated: decided === false });
    }
  }

  private checkCardinality(obj: Record<string, unknown>, rule: CardinalityRule | ProfileCardinalityRule, location: string, out: WalkResult): void {
    let count = 0;
    for (const key of rule.keys) {
      const v = obj[key];
      if (v === undefined || v === null) continue;
      const n = Array.isArray(v) ? v.length : 1;
      if (n > count) count = n;
    }
    if (count >= rule.min && count <= rule.max) return;
    const where = `${location}.${rule.elementName}`;
    // A profile restating a base cardinality (Observation.status 1..1) would repeat the issue.
    if (out.flagged.has(where)) return;
    const profileUrl = (rule as ProfileCardinalityRule).profileUrl;
    const by = profileUrl ? `profile ${profileUrl}` : 'the base FHIR R4 definition';
    const range = `${rule.min}..${rule.max === Infinity ? '*' : rule.max}`;
    // Flagged: the schema's `required` error for the same element would repeat it.
    this.flag(out, where, count < rule.min
      ? { severity: 'error', code: 'required', diagnostics: `Element ${rule.path} is required: cardinality ${range} in ${by}`, expression: [where] }
      : { severity: 'error', code: 'structure', diagnostics: `Element ${rule.path} occurs too often: cardinality ${range} in ${by}`, expression: [where] });
  }

  private visitObject(
    obj: Record<string, unknown>,
    node: ElementNode | undefined,
    location: string,
    env: ConstraintEnvironment,
    profile: ProfileNode | undefined,
    out: WalkResult,
    isResource: boolean,
  ): void {
    if (node) {
      if (node.constraints.length > 0) this.enqueue(node.constraints, obj, location, env, out);
      for (const rule of node.cardinality) this.checkCardinality(obj, rule, location, out);
    }
    if (profile) {
      if (profile.constraints.length > 0) this.enqueue(profile.constraints, obj, location, env, out);
      for (const rule of profile.cardinality) this.checkCardinality(obj, rule, location, out);
    }

    for (const key in obj) {
      if (isResource && key === 'resourceType') continue;
      const value = obj[key];
      const slot = node?.children.get(key);
      // A key the definitions do not know is client text (shownElementName).
      const childLocation = `${location}.${slot ? elementNameOfKey(key) : shownElementName(key)}`;
      const childProfile = profile && slot ? profile.children.get(slot.elementName) : undefined;
      if (value === null) {
        this.flag(out, childLocation, {
          severity: 'error', code: 'structure', diagnostics: 'null is not a valid value in FHIR JSON (json.html#null)', expression: [childLocation],
        });
      } else if (Array.isArray(value)) {
        if (value.length === 0) {
          this.ele1Issue(out, childLocation, 'an empty array');
          continue;
        }
        // json.html#primitive: `given` and `_given` align by index; null fills the gaps.
        const companionKey = key.charCodeAt(0) === 95 ? key.slice(1) : `_${key}`;
        const companion = obj[companionKey];
        for (let i = 0; i < value.length; i++) {
          const item = value[i];
          const itemLocation = `${childLocation}[${i}]`;
          if (item === null) {
            if (Array.isArray(companion) && companion[i] !== null && companion[i] !== undefined) {
              out.nullPlaceholders.add(itemLocation);
            } else {
              this.flag(out, itemLocation, {
                severity: 'error', code: 'structure',
                diagnostics: 'null is only allowed in an array of primitives, as a placeholder aligned with its _ companion (json.html#primitive)',
                expression: [itemLocation],
              });
            }
          } else {
            this.visitValue(item, key, slot, itemLocation, env, childProfile, out, obj, i);
          }
        }
      } else {
        this.visitValue(value, key, slot, childLocation, env, childProfile, out, obj, -1);
      }
    }
  }

  private visitValue(
    value: unknown,
    key: string,
    slot: ChildSlot | undefined,
    location: string,
    env: ConstraintEnvironment,
    profile: ProfileNode | undefined,
    out: WalkResult,
    parent: Record<string, unknown>,
    index: number,
  ): void {
    // json.html#complex: a complex or backbone element, a resource, and the `_x` companion of a
    // primitive (json.html#primitive) are JSON objects; a string, number or boolean there is
    // not FHIR (it would otherwise pass unseen, having no children to check).
    if (slot && (slot.kind === 'complex' || slot.kind === 'backbone' || slot.kind === 'resource' || slot.kind === 'primitive-element')
      && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      this.flag(out, location, {
        severity: 'error', code: 'structure',
        diagnostics: `Wrong JSON type: this element is a JSON object (json.html${slot.kind === 'primitive-element' ? '#primitive' : '#complex'})`,
        expression: [location],
      });
      return;
    }
    if (typeof value === 'string') {
      if (value.length === 0) {
        this.ele1Issue(out, location, 'an empty string');
        return;
      }
    } else if (typeof value === 'object' && value !== null) {
      if (Array.isArray(value)) return; // nested arrays: a schema type error
      const obj = value as Record<string, unknown>;
      if (!this.checkObjectHasContent(obj, key, slot, location, out, parent, index)) return;
      if (isExtensionKey(key)) {
        const hasExtensions = Array.isArray(obj['extension']) && (obj['extension'] as unknown[]).length > 0;
        if (hasExtensions === hasValueKey(obj)) {
          // Not flagged: schema errors inside the extension are separate problems.
          out.issues.push({ severity: 'error', code: 'invariant', diagnostics: `Constraint ext-1 failed: ${this.ext1}`, expression: [location] });
        }
      }
      if (slot && slot.constraints.length > 0) this.enqueue(slot.constraints, obj, location, env, out);
      let child: ElementNode | undefined;
      let childEnv = env;
      let isResource = false;
      switch (slot?.kind) {
        case 'complex': child = this.registry.datatypes.get(slot.typeName ?? ''); break;
        case 'backbone': child = slot.node; break;
        case 'primitive-element': child = this.primitiveElement; break;
        case 'resource': {
          isResource = true;
          const type = obj['resourceType'];
          child = typeof type === 'string' ? this.registry.resources.get(type) : undefined;
          // fhirpath.html#variables: %rootResource is the container for contained resources;
          // a Bundle entry or Parameters resource is a root of its own.
          childEnv = { resource: obj, rootResource: key === 'contained' ? env.rootResource : obj };
          // The server's profiles apply to the resource being written, not to nested ones.
          profile = undefined;
          break;
        }
        default: child = undefined;
      }
      this.visitObject(obj, child, location, childEnv, profile, out, isResource);
      return;
    }
    // Primitive values (strings, numbers, booleans): invariants declared on the element.
    if (slot && slot.constraints.length > 0) this.enqueue(slot.constraints, value, location, env, out);
    if (profile && profile.constraints.length > 0) this.enqueue(profile.constraints, value, location, env, out);
  }

  /**
   * ele-1 for objects: an element needs a value or a child other than `id`. For `_name`
   * companions the value is the sibling primitive, so `{"id": "x"}` is fine next to a value.
   */
  private checkObjectHasContent(
    obj: Record<string, unknown>, key: string, slot: ChildSlot | undefined, location: string, out: WalkResult,
    parent: Record<string, unknown>, index: number,
  ): boolean {
    let hasChild = false;
    let hasAny = false;
    for (const k in obj) {
      hasAny = true;
      if (k !== 'id') {
        hasChild = true;
        break;
      }
    }
    if (!hasAny) {
      this.ele1Issue(out, location, 'an empty object');
      return false;
    }
    if (hasChild || slot?.kind === 'resource') return true;
    if (key.charCodeAt(0) === 95) {
      const sibling = parent[key.slice(1)];
      const value = index >= 0 && Array.isArray(sibling) ? sibling[index] : sibling;
      if (value !== undefined && value !== null) return true;
    }
    this.ele1Issue(out, location, 'an element with only an id');
    return false;
  }
}
