/**
 * Validation of incoming resources, the first step of the write path (DESIGN.md "The spine"):
 *
 *  1. structure: the official R4 JSON schema (json.html#schema), per resource type;
 *  2. the FHIR JSON format rules and ext-1 (json.html, element.html ele-1, extensibility.html),
 *     checked by a structural walk;
 *  3. invariants: every error-severity constraint of the official R4 StructureDefinitions of the
 *     resource and of the datatypes it uses (conformance-rules.html#constraints), in FHIRPath;
 *  4. this server's mandatory profiles (profiles/), applied to every resource of their type.
 *
 * `validate` returns every problem found; any issue of severity 'error' means reject (the
 * caller answers 422, http.html#create). Locations are FHIRPath (`Patient.name[0].given[1]`).
 * Diagnostics name the element and the rule, never the offending value: values may be
 * identifiers, and OperationOutcomes end up in logs.
 *
 * Invariants run only when steps 1, 2 and the cardinality checks found no error: FHIRPath over
 * structurally broken content reports noise, not causes.
 *
 * Start-up reads the definition files and compiles every invariant; that is the only I/O here.
 */
import type { OutcomeIssue } from './fhir-error.js';
import type { Resource } from './resource.js';
import { loadOfficialDefinitions, officialResourceTypes } from './validation/definitions.js';
import { ElementSummaries } from './result-shaping.js';
import { isViolation, type SkippedConstraint } from './validation/constraint.js';
import { ElementWalker, type PendingInvariant, type WalkResult } from './validation/element-walker.js';
import { ProfileSet } from './validation/profiles.js';
import { SchemaValidator, schemaErrorToIssue } from './validation/schema-validator.js';
import { TypeRegistry, type CorrectedConstraint } from './validation/type-registry.js';

const CORE_PROFILE_BASE = 'http://hl7.org/fhir/StructureDefinition/';

export interface ResourceValidatorOptions {
  /** Directory of this server's StructureDefinitions (profiles/). */
  profilesDir: string;
  /**
   * Resource types whose JSON schema validator is compiled at start-up; the others are compiled
   * on first use (about 10-50 ms each). Default: the types this server has profiles for.
   */
  precompile?: 'all' | readonly string[];
  /**
   * false: evaluate every invariant with fhirpath.js, never with the fast evaluator
   * (validation/fast-fhirpath.ts). For comparing the two engines in tests.
   */
  fastPath?: boolean;
}

export class ResourceValidator {
  /** All R4 resource type names known to the official schema. */
  readonly resourceTypes: ReadonlySet<string>;
  /** Official error invariants that fhirpath.js cannot compile or run, and are therefore not enforced. */
  readonly skippedInvariants: readonly SkippedConstraint[];
  /** Official error invariants fhirpath.js cannot run as written, enforced through a documented rewrite. */
  readonly correctedInvariants: readonly CorrectedConstraint[];
  /**
   * The summary and mandatory elements of each type, for `_summary` / `_elements`. Built here
   * because this is where the official definitions are loaded, once.
   */
  readonly summaries: ElementSummaries;

  private constructor(
    resourceTypes: ReadonlySet<string>,
    private readonly registry: TypeRegistry,
    private readonly schema: SchemaValidator,
    private readonly profiles: ProfileSet,
    private readonly walker: ElementWalker,
    summaries: ElementSummaries,
  ) {
    this.summaries = summaries;
    this.resourceTypes = resourceTypes;
    this.skippedInvariants = registry.skipped;
    this.correctedInvariants = registry.corrected;
  }

  /** Loads definitions, compiles the JSON schema and FHIRPath invariants once. profilesDir holds this server's StructureDefinitions (profiles/). */
  static create(options: ResourceValidatorOptions): ResourceValidator {
    const defs = loadOfficialDefinitions();
    const resourceTypes = officialResourceTypes(defs);
    const registry = new TypeRegistry(defs, resourceTypes, { fastPath: options.fastPath ?? true });
    const schema = new SchemaValidator(defs.schema.definitions, resourceTypes);
    const profiles = ProfileSet.load(options.profilesDir, registry);
    const precompile = options.precompile === 'all' ? [...resourceTypes] : options.precompile ?? [...profiles.rootsByType.keys()];
    for (const type of precompile) schema.validatorFor(type);
    const summaries = ElementSummaries.fromStructureDefinitions(defs.resources.values());
    return new ResourceValidator(resourceTypes, registry, schema, profiles, new ElementWalker(registry), summaries);
  }

  /** The element trees of the R4 definitions (types of every element), for typed walks such as de-identification. */
  get elementTypes(): TypeRegistry {
    return this.registry;
  }

  isKnownResourceType(type: string): boolean {
    return this.resourceTypes.has(type);
  }

  /** Canonical URLs of the profiles from profilesDir that apply to a type (for the CapabilityStatement supportedProfile). */
  profilesFor(type: string): string[] {
    return this.profiles.urlsFor(type);
  }

  /** Returns every problem found; severity 'error' issues mean reject. */
  validate(resource: Resource): OutcomeIssue[] {
    if (typeof resource !== 'object' || resource === null || Array.isArray(resource) || typeof resource.resourceType !== 'string') {
      return [{ severity: 'error', code: 'structure', diagnostics: 'Not a FHIR resource: a JSON object with a resourceType is required', expression: ['Resource.resourceType'] }];
    }
    const type = resource.resourceType;
    if (!this.resourceTypes.has(type)) {
      return [{ severity: 'error', code: 'not-supported', diagnostics: 'Unknown resource type: not an R4 resource', expression: ['Resource.resourceType'] }];
    }

    const walk = this.walker.walk(resource as Record<string, unknown>, type, this.profiles.rootsByType.get(type));
    const issues = walk.issues;
    this.addSchemaIssues(resource, walk, issues);

    if (!issues.some((i) => i.severity === 'error')) this.evaluateInvariants(walk.pending, issues);
    this.checkClaimedProfiles(resource, issues);
    return issues;
  }

  private addSchemaIssues(resource: Resource, walk: WalkResult, issues: OutcomeIssue[]): void {
    const errors = this.schema.validate(resource);
    if (errors.length === 0) return;
    const seen = new Set<string>();
    // A value of the wrong JSON type also fails its pattern or enum: report the type only.
    const wrongType = new Set<string>();
    for (const error of errors) if (error.keyword === 'type') wrongType.add(error.instancePath);
    for (const error of errors) {
      if (error.keyword !== 'type' && wrongType.has(error.instancePath)) continue;
      const issue = schemaErrorToIssue(error, resource.resourceType);
      const location = issue.expression![0]!;
      if (walk.nullPlaceholders.has(location) || coveredBy(walk.flagged, location)) continue;
      const key = `${issue.code}\u0000${location}\u0000${issue.diagnostics}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(issue);
    }
  }

  private evaluateInvariants(pending: PendingInvariant[], issues: OutcomeIssue[]): void {
    // Invariants sharing an expression on the same focus (txt-1, txt-2) are evaluated once.
    let lastRun: unknown;
    let lastFocus: unknown;
    let lastViolated = false;
    for (const p of pending) {
      const c = p.constraint;
      let violated = p.violated;
      if (!violated && c.run === lastRun && p.focus === lastFocus) {
        violated = lastViolated;
      } else if (!violated) {
        try {
          violated = isViolation(c.run(p.focus, p.env));
          lastRun = c.run;
          lastFocus = p.focus;
          lastViolated = violated;
        } catch {
          // An official expression fhirpath.js cannot run on this content: do not reject for it.
          issues.push({
            severity: 'warning', code: 'processing',
            diagnostics: `Constraint ${c.key} could not be evaluated and was not checked`, expression: [p.location],
          });
          continue;
        }
      }
      if (violated) {
        const from = this.profiles.urls.has(c.source) ? ` (profile ${c.source})` : '';
        issues.push({ severity: 'error', code: 'invariant', diagnostics: `Constraint ${c.key} failed: ${c.human}${from}`, expression: [p.location] });
      }
    }
  }

  /** meta.profile claims this server does not know are reported, not rejected (profiling.html#claims). */
  private checkClaimedProfiles(resource: Resource, issues: OutcomeIssue[]): void {
    const claimed = resource.meta?.profile;
    if (!Array.isArray(claimed)) return;
    const base = CORE_PROFILE_BASE + resource.resourceType;
    claimed.forEach((url, i) => {
      if (typeof url !== 'string') return;
      const canonical = url.split('|')[0]!;
      if (canonical === base || this.profiles.urls.has(canonical)) return;
      issues.push({
        severity: 'warning', code: 'not-supported',
        diagnostics: 'Profile unknown to this server: the resource was not checked against it',
        expression: [`${resource.resourceType}.meta.profile[${i}]`],
      });
    });
  }
}

/** True when `location` or one of its ancestors (`a.b[0].c` → `a.b[0]` → `a.b` → `a`) is in the set. */
function coveredBy(flagged: ReadonlySet<string>, location: string): boolean {
  if (flagged.size === 0) return false;
  let loc = location;
  for (;;) {
    if (flagged.has(loc)) return true;
    const cut = Math.max(loc.lastIndexOf('.'), loc.lastIndexOf('['));
    if (cut <= 0) return false;
    loc = loc.slice(0, cut);
  }
}
