/**
 * The element trees of every R4 resource and complex datatype, with their invariants compiled.
 *
 * Which invariants: every constraint of severity 'error' in the snapshots of
 * profiles-resources.json (resource-level ones such as dom-2..dom-5, obs-6, obs-7; element-level
 * ones such as obs-3 on Observation.referenceRange, pat-1 on Patient.contact) and of
 * profiles-types.json (datatype-level ones such as per-1 on Period, qty-3 on Quantity, ref-1 on
 * Reference, txt-1/txt-2 on Narrative.div, and sqty-1 where an element is typed SimpleQuantity).
 * Datatype invariants are attached to the datatype's tree, so they run only where the datatype
 * occurs; with the presence analysis of constraint.ts, absent elements cost nothing.
 *
 * Two keys are left to the structural walk (element-walker.ts) instead: ele-1 and ext-1, which
 * bind to every element (conformance-rules.html#constraints); one FHIRPath run per element would
 * cost more than the rest of validation together. Warnings (dom-6, the *-0 name rules) are best
 * practice, not conformance, and are not evaluated.
 */
import {
  buildElementTree, type ConstraintDefinition, type ElementNode, type OfficialDefinitions, type StructureDefinition,
} from './definitions.js';
import { compileConstraint, type CompiledConstraint, type ConstraintSite, type SkippedConstraint } from './constraint.js';
import { FastFhirPathCompiler } from './fast-fhirpath.js';

/** Invariant keys enforced by the structural walk rather than by FHIRPath. */
export const STRUCTURAL_INVARIANTS: ReadonlySet<string> = new Set(['ele-1', 'ext-1']);

/**
 * Official invariants that fhirpath.js compiles and runs, but whose R4 expression rejects valid
 * content; they are reported as skipped rather than enforced.
 */
export const FAULTY_OFFICIAL_INVARIANTS: Readonly<Record<string, string>> = {
  'que-7': "`answer is Boolean` names FHIRPath's System.Boolean, but answerBoolean is a FHIR boolean: "
    + "fhirpath.js evaluates it to false for every valid 'exists' condition (e.g. the official Questionnaire-bb example)",
};

/**
 * Official invariants that fhirpath.js cannot run as written, but whose intent a minimal,
 * documented rewrite restores; they are enforced in the rewritten form.
 */
export const CORRECTED_OFFICIAL_INVARIANTS: Readonly<Record<string, { reason: string; rewrite: (expression: string) => string }>> = {
  'dom-3': {
    reason: 'fhirpath.js 5 requires a singleton input for as() (FHIRPath N2), so `%resource.descendants().as(canonical)` '
      + 'throws for every resource with contained resources; the R4 expression means the filter ofType(), which is used instead',
    rewrite: (expression) => expression.replaceAll('descendants().as(', 'descendants().ofType('),
  },
};

/** An official invariant enforced through a rewritten expression. */
export interface CorrectedConstraint {
  key: string;
  path: string;
  expression: string;
  corrected: string;
  reason: string;
}

export class TypeRegistry {
  /** Element trees of concrete resources, by type. */
  readonly resources = new Map<string, ElementNode>();
  /** Element trees of complex datatypes (and SimpleQuantity/MoneyQuantity), by name. */
  readonly datatypes = new Map<string, ElementNode>();
  /** Official error invariants fhirpath.js cannot compile or run, with the reason. */
  readonly skipped: SkippedConstraint[] = [];
  /** Official error invariants enforced through a documented rewrite (CORRECTED_OFFICIAL_INVARIANTS). */
  readonly corrected: CorrectedConstraint[] = [];
  /** Human text of ele-1 and ext-1, from the Element and Extension definitions. */
  readonly structuralHuman = new Map<string, string>();
  private readonly cache = new Map<string, CompiledConstraint | null>();
  private readonly urls = new Map<ElementNode, string>();
  private readonly fast: FastFhirPathCompiler | null;

  /** `fastPath: false` runs every invariant on fhirpath.js (for comparing the engines). */
  constructor(defs: OfficialDefinitions, resourceTypes: ReadonlySet<string>, options: { fastPath?: boolean } = {}) {
    this.fast = options.fastPath === false ? null : new FastFhirPathCompiler(this);
    const datatypeNames = new Set(defs.datatypes.keys());
    for (const [name, sd] of defs.datatypes) {
      const root = buildElementTree(sd, datatypeNames);
      this.datatypes.set(name, root);
      this.urls.set(root, sd.url);
    }
    for (const type of resourceTypes) {
      const sd = defs.resources.get(type);
      if (!sd) continue;
      const root = buildElementTree(sd, datatypeNames);
      this.resources.set(type, root);
      this.urls.set(root, sd.url);
    }
    for (const sd of defs.datatypes.values()) this.recordStructuralHuman(sd);
    for (const [name, root] of this.datatypes) this.compileTree(root, { resourceLevel: false, resourceType: 'Basic', typeName: name });
    for (const [type, root] of this.resources) this.compileTree(root, { resourceLevel: true, resourceType: type, typeName: type });
  }

  private recordStructuralHuman(sd: StructureDefinition): void {
    for (const c of sd.snapshot?.element[0]?.constraint ?? []) {
      if (STRUCTURAL_INVARIANTS.has(c.key) && !this.structuralHuman.has(c.key)) this.structuralHuman.set(c.key, c.human);
    }
  }

  /**
   * The node at an element path (Observation.referenceRange, Observation.code), following
   * datatypes; undefined when the path does not lead to an element with children.
   */
  nodeAtPath(path: string): ElementNode | undefined {
    const [type, ...names] = path.split('.');
    let node = this.resources.get(type ?? '') ?? this.datatypes.get(type ?? '');
    for (const raw of names) {
      if (!node) return undefined;
      const name = raw.endsWith('[x]') ? raw.slice(0, -3) : raw;
      const keys = node.keysByElement.get(name);
      const slot = keys?.[0] === undefined ? undefined : node.children.get(keys[0]);
      if (!slot) return undefined;
      node = slot.kind === 'backbone' ? slot.node : slot.kind === 'complex' ? this.datatypes.get(slot.typeName ?? '') : undefined;
    }
    return node;
  }

  /**
   * Compiles one invariant for a site, once per (site, expression). Returns null (and records
   * the reason) when fhirpath.js cannot compile or run it.
   */
  compile(definition: ConstraintDefinition, site: ConstraintSite, source: string, path: string, variant = ''): CompiledConstraint | null {
    const expression = definition.expression;
    if (!expression) return null;
    // `variant` separates the types of one choice element (probabilityDecimal vs probabilityRange).
    const cacheKey = `${site.base}\u0000${variant}\u0000${site.resourceLevel ? site.resourceType : ''}\u0000${definition.key}\u0000${expression}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) return cached;
    let compiled: CompiledConstraint | null = null;
    const faulty = FAULTY_OFFICIAL_INVARIANTS[definition.key];
    if (faulty !== undefined && source.startsWith('http://hl7.org/fhir/')) {
      if (!this.skipped.some((s) => s.key === definition.key)) this.skipped.push({ key: definition.key, path, expression, reason: faulty });
      this.cache.set(cacheKey, null);
      return null;
    }
    try {
      compiled = compileConstraint({ key: definition.key, human: definition.human, expression, source }, site, this.fast);
    } catch (err) {
      const correction = source.startsWith('http://hl7.org/fhir/') ? CORRECTED_OFFICIAL_INVARIANTS[definition.key] : undefined;
      if (correction) {
        const corrected = correction.rewrite(expression);
        compiled = compileConstraint({ key: definition.key, human: definition.human, expression: corrected, source }, site, this.fast);
        if (!this.corrected.some((c) => c.key === definition.key)) {
          this.corrected.push({ key: definition.key, path, expression, corrected, reason: correction.reason });
        }
        this.cache.set(cacheKey, compiled);
        return compiled;
      }
      const reason = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 200) : String(err);
      if (!this.skipped.some((s) => s.key === definition.key && s.expression === expression)) {
        this.skipped.push({ key: definition.key, path, expression, reason });
      }
    }
    this.cache.set(cacheKey, compiled);
    return compiled;
  }

  private errorInvariants(definitions: readonly ConstraintDefinition[]): ConstraintDefinition[] {
    return definitions.filter((c) => c.severity === 'error' && !STRUCTURAL_INVARIANTS.has(c.key) && c.expression);
  }

  private compileTree(root: ElementNode, context: { resourceLevel: boolean; resourceType: string; typeName: string }): void {
    const source = this.urls.get(root) ?? '';
    const visited = new Set<ElementNode>();
    const visit = (node: ElementNode, isRoot: boolean): void => {
      if (visited.has(node)) return;
      visited.add(node);
      const nodeSite: ConstraintSite = {
        // A datatype root is evaluated as its base type (SimpleQuantity's path is Quantity).
        base: isRoot ? (context.resourceLevel ? context.resourceType : node.path) : node.path,
        resourceLevel: isRoot && context.resourceLevel,
        node,
        resourceType: context.resourceType,
      };
      for (const def of this.errorInvariants(node.definitions)) {
        const c = this.compile(def, nodeSite, def.source ?? source, node.path);
        if (c) node.constraints.push(c);
      }
      for (const slot of node.children.values()) {
        const defs = this.errorInvariants(slot.definitions);
        if (defs.length > 0 && slot.constraints.length === 0) {
          const target = slot.kind === 'complex' ? this.datatypes.get(slot.typeName ?? '') : undefined;
          const site: ConstraintSite = {
            base: slot.path,
            resourceLevel: false,
            node: target ?? null,
            primitiveFocus: slot.kind === 'primitive',
            resourceType: context.resourceType,
          };
          for (const def of defs) {
            const c = this.compile(def, site, def.source ?? source, slot.path, slot.typeName ?? slot.kind);
            if (c) slot.constraints.push(c);
          }
        }
        if (slot.kind === 'backbone' && slot.node) visit(slot.node, false);
      }
    };
    visit(root, true);
  }
}
