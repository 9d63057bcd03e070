/**
 * The service layer: every FHIR interaction on resources, and THE write path (DESIGN.md "The
 * spine", docs/ARCHITECTURE.md). Every write, from REST or a bundle entry, is a `WritePlan`
 * holding a `PreparedResource` that only `prepareResource` can make (validate → de-identify →
 * index rows), committed by the private `commitVersion`, which adds the ledger leaf.
 */
import { randomUUID } from 'node:crypto';
import fastJsonPatch from 'fast-json-patch';
import type { Deidentification } from '../deid/deidentification.js';
import { FhirError, type OutcomeIssue } from '../fhir/fhir-error.js';
import { isResourceObject, isValidResourceId, referenceStrings, type Resource } from '../fhir/resource.js';
import type { SearchRestriction } from '../auth/access-policy.js';
import { canonicalJson } from '../ledger/jcs.js';
import { checkJsonValueLimits, type JsonValueLimits } from '../fhir/json-value-limits.js';
import type { SearchIndexEntry } from '../fhir/search-index-entry.js';
import type { SearchIndexExtractor } from '../fhir/search-index/search-index-extractor.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import type { SearchLimits } from '../fhir/search-limits.js';
import { parseSearchQuery, type ParsedSearch } from '../fhir/search-query-parser.js';
import type { SearchQuery } from '../fhir/search-query.js';
import { patientCompartmentParams } from '../fhir/patient-compartment.js';
import type { ResourceValidator } from '../fhir/validator.js';
import { newVersionLeaf } from '../ledger/version-leaf.js';
import type { HistoryPage, Store, StoredVersion, StoreReader, StoreTransaction } from '../store/store.js';

export interface ResourceServiceOptions {
  defaultPageSize: number;
  maxPageSize: number;
  /** `_sort` keys, OR values, AND repetitions and parameters per search; default DEFAULT_SEARCH_LIMITS. */
  searchLimits?: SearchLimits;
  /** Checked on what a PATCH makes too, since a patch can grow an element past the body limits. */
  valueLimits?: JsonValueLimits;
}

/** The result of a write interaction, for the http layer and for bundle entry responses. */
export interface WriteResult {
  /** 200 updated or matched, 201 created, 204 deleted. */
  status: 200 | 201 | 204;
  /** The version written, or the existing one a conditional create matched. */
  version: StoredVersion | undefined;
  /** True when a conditional create found its match and wrote nothing. */
  matchedExisting?: boolean;
  /** True when an update's content equalled the current version's: nothing was written. */
  unchanged?: boolean;
}

/** What a write may touch under the access policy (auth/access-policy.ts, asked by the executor). */
export interface WriteGuard {
  /** May this stored resource be seen? One that may not is answered as absent (404), never 403. */
  mayRead(resource: Resource): boolean;
  /** May this resource, in its stored form, be written (the new content, and what it replaces)? */
  mayWrite(resource: Resource): boolean;
  mayDelete(resource: Resource): boolean;
  /** ANDed into the search of a conditional operation, so it never matches what may not be seen. */
  searchRestriction(resourceType: string | null): SearchRestriction | undefined;
}

export interface WriteOptions {
  /** Inside a transaction Bundle: plan and commit in its store transaction. */
  tx?: StoreTransaction;
  /** Ids the same request assigned itself (a transaction's entries): references to them are stored ids. */
  issuedIds?: ReadonlySet<string>;
  guard?: WriteGuard;
}

export interface PlanOptions extends Omit<WriteOptions, 'tx'> {
  /** Where planning reads (default: the committed store). */
  reader?: StoreReader;
  /** The id a create (or a conditional update that matches nothing) gets, when the caller chose it. */
  newId?: string;
  /**
   * A transaction's resolution of a conditional create or delete (the matched stored id, or null
   * for none): the commit checks the store still agrees, else the plan is stale.
   */
  expectedMatch?: string | null;
}

/**
 * A write prepared outside the writer (validated, de-identified, indexed). `commit` runs inside
 * a store transaction, re-checks what can have changed since, and writes.
 */
export interface WritePlan {
  resourceType: string;
  /** The stored id it writes, when planning resolved it. */
  id: string | undefined;
  commit(tx: StoreTransaction): Promise<WriteResult>;
}

/** Thrown by `WritePlan.commit` when what the plan assumed no longer holds: plan again. */
export class StaleWritePlan extends Error {
  /** Set by a transaction: the entry whose plan went stale. */
  entryIndex: number | undefined;

  constructor() {
    super('the write plan is stale');
    this.name = 'StaleWritePlan';
  }
}

/** Plans made stale this many times in a row give up with 409 (the target keeps changing). */
export const MAX_PLAN_ATTEMPTS = 3;

export function staleConflict(): FhirError {
  return FhirError.conflict('The resources this write depends on kept changing while it was prepared; send it again');
}

function issued(options: { issuedIds?: ReadonlySet<string> }): { issuedIds?: ReadonlySet<string> } {
  return options.issuedIds ? { issuedIds: options.issuedIds } : {};
}

/** Equal content, whatever meta.versionId and meta.lastUpdated say (compared in RFC 8785 form). */
function sameStoredContent(candidate: Resource, currentJson: string): boolean {
  const comparable = (resource: Resource): string => {
    const { meta, ...rest } = resource;
    const { versionId: _v, lastUpdated: _l, ...otherMeta } = (meta ?? {}) as Record<string, unknown>;
    return canonicalJson(Object.keys(otherMeta).length > 0 ? { ...rest, meta: otherMeta } : rest);
  };
  return comparable(candidate) === comparable(JSON.parse(currentJson) as Resource);
}

/** Where a resource is going: its stored id, and the ids the same request assigned (a transaction's POSTs). */
export interface WriteContext {
  id: string;
  issuedIds?: ReadonlySet<string>;
}

/** Only this module can make a PreparedResource: the brand is a symbol no other module sees. */
declare const preparedBrand: unique symbol;

/**
 * A resource that passed the write pipeline (validation, de-identification, index extraction),
 * ready to commit. What a store commits can only come from here: a caller cannot skip a step.
 */
export interface PreparedResource {
  readonly resource: Resource;
  readonly indexEntries: SearchIndexEntry[];
  readonly [preparedBrand]: true;
}

function prepared(resource: Resource, indexEntries: SearchIndexEntry[]): PreparedResource {
  return { resource, indexEntries } as PreparedResource;
}

export interface SearchOptions {
  strict: boolean;
  baseUrl: string;
}

/** `W/"3"` or `"3"` → 3 (FHIR R4 http.html#versioning). */
export function parseETagVersion(etag: string): number {
  const match = /^(?:W\/)?"(\d+)"$/.exec(etag.trim());
  if (!match) throw FhirError.badRequest('If-Match must be a version ETag such as W/"3"');
  return Number(match[1]);
}

export class ResourceService {
  constructor(
    private readonly store: Store,
    private readonly validator: ResourceValidator,
    private readonly registry: SearchParameterRegistry,
    private readonly extractor: SearchIndexExtractor,
    private readonly deid: Deidentification,
    private readonly options: ResourceServiceOptions,
  ) {}

  isKnownType(resourceType: string): boolean {
    return this.validator.isKnownResourceType(resourceType);
  }

  assertKnownType(resourceType: string): void {
    if (!this.validator.isKnownResourceType(resourceType)) {
      throw FhirError.notFound('Unknown resource type: not a FHIR R4 resource type this server supports');
    }
  }

  // ---------------------------------------------------------------- the write path

  /**
   * Step 1 of the write path: structure, invariants and profiles (fhir/validator.ts) on what the
   * client sent, so every issue points at its input; then the mapping table (deid/), then index
   * extraction from what will be stored. Throws 422 with every problem found, 503 when
   * de-identification cannot run; nothing is stored either way. `storedVersion`: the stored
   * version `resource` was derived from (a PATCH applies to the stored form), so the table's
   * rules that are not idempotent leave what that version already holds as it is.
   */
  async prepareResource(resource: Resource, context: WriteContext, storedVersion?: Resource): Promise<PreparedResource> {
    const issues = this.validator.validate(resource);
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (errors.length > 0) throw FhirError.unprocessable(issues);
    // Content derived from a stored version (PATCH) is re-checked without re-applying the rules
    // that are not idempotent to what it already holds (deid/ Deidentification.deidentifyRevision).
    const stored = storedVersion
      ? await this.deid.deidentifyRevision(storedVersion, { ...resource, id: context.id }, context)
      : await this.deid.deidentify({ ...resource, id: context.id }, context);
    return prepared(stored, this.extractor.extract(stored));
  }

  /**
   * A record the server writes about itself (an AuditEvent): validated, indexed and committed
   * like any version, but not passed through the mapping table: it holds stored ids and the
   * server's own words, and a table that redacts `agent.network` would erase the audit trail.
   * Skipping the table, it must carry no client string (identifiers never rest in the clinical
   * store): its callers keep them out, and every reference is checked to name a resource the
   * store holds, so a client's id can never be stored in clear this way.
   */
  async createServerRecord(resource: Resource): Promise<StoredVersion> {
    const id = randomUUID();
    const stored: Resource = { ...resource, id };
    const issues = this.validator.validate(stored).filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (issues.length > 0) throw new Error(`internal: invalid ${resource.resourceType} record: ${issues.map((i) => i.diagnostics).join('; ')}`);
    for (const reference of referenceStrings(stored)) {
      const literal = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(reference);
      if (!literal || !(await this.store.readCurrent(literal[1]!, literal[2]!))) {
        throw new Error(`internal: a ${resource.resourceType} record names something other than a stored resource`);
      }
    }
    const record = prepared(stored, this.extractor.extract(stored));
    return this.store.transaction((t) => this.commitVersion(t, resource.resourceType, id, record, undefined));
  }

  /**
   * The stored id a client's id names (deid/: an EHR's own id is stored as its pseudonym when
   * the table pseudonymizes ids; otherwise the same id).
   */
  async storedIdFor(resourceType: string, clientId: string): Promise<string> {
    return this.deid.storedIdForRead(resourceType, clientId);
  }

  /**
   * Step 2: the new version in the store, inside the caller's transaction. The server owns
   * meta.versionId and meta.lastUpdated (FHIR R4 resource.html#Meta); other meta is kept.
   * The version's ledger leaf (salted hash of its RFC 8785 form) is committed with it.
   */
  private async commitVersion(tx: StoreTransaction, resourceType: string, id: string,
    prepared: PreparedResource | null, previous: StoredVersion | undefined): Promise<StoredVersion> {
    const versionId = (previous?.versionId ?? 0) + 1;
    const lastUpdated = new Date().toISOString();
    let json: string | null = null;
    if (prepared) {
      const { resourceType: _t, id: _i, meta, ...content } = prepared.resource;
      const stored: Resource = {
        resourceType, id, meta: { ...(meta ?? {}), versionId: String(versionId), lastUpdated }, ...content,
      };
      json = JSON.stringify(stored);
    }
    const leaf = newVersionLeaf({ resourceType, id, versionId, lastUpdated, json });
    await tx.writeVersion({
      resourceType, id, versionId, lastUpdated, json, indexEntries: prepared ? prepared.indexEntries : [], leaf,
    });
    return { resourceType, id, versionId, lastUpdated, deleted: prepared === null, json };
  }

  // ---------------------------------------------------------------- writes
  //
  // Every write is planned OUTSIDE the writer: validated, de-identified and indexed against the
  // committed store (prepareResource), then committed by `WritePlan.commit` inside one store
  // transaction, which re-checks only what can change meanwhile (conditional targets, the current
  // version). When such an assumption no longer holds the plan is stale: it is planned again, up
  // to MAX_PLAN_ATTEMPTS times, then the write fails with 409. A transaction Bundle plans all its
  // entries first and commits them together (bundle-service.ts).

  /** FHIR R4 http.html#create, with If-None-Exist (http.html#ccreate). */
  async create(resourceType: string, body: Resource, ifNoneExist: string | undefined, options: WriteOptions = {}): Promise<WriteResult> {
    return this.runPlanned(() => this.planCreate(resourceType, body, ifNoneExist, options), options.tx);
  }

  async planCreate(resourceType: string, body: Resource, ifNoneExist: string | undefined, options: PlanOptions = {}): Promise<WritePlan> {
    this.assertBodyType(resourceType, body);
    // http.html#create: a client-supplied id is ignored on create; the server assigns one.
    const { id: _ignored, ...withoutId } = body;
    const id = options.newId ?? randomUUID();
    const prepared = await this.prepareResource(withoutId as Resource, { id, ...issued(options) });
    this.assertMayWrite(prepared.resource, options.guard);
    return {
      resourceType, id,
      commit: async (t) => {
        if (ifNoneExist !== undefined) {
          const matches = await this.conditionalMatches(t, resourceType, ifNoneExist, 2, options.guard);
          if (options.expectedMatch !== undefined && (matches.length > 1 || (matches[0]?.id ?? null) !== options.expectedMatch)) throw new StaleWritePlan();
          // http.html#ccreate: one match → 200 and nothing created; several → 412.
          if (matches.length === 1) return { status: 200, version: matches[0], matchedExisting: true };
          if (matches.length > 1) throw this.multipleMatches('conditional create');
        }
        return { status: 201, version: await this.commitVersion(t, resourceType, id, prepared, undefined) };
      },
    };
  }

  /** FHIR R4 http.html#update, including update-as-create (upsert) and If-Match. */
  async update(resourceType: string, clientId: string, body: Resource, ifMatch: string | undefined, options: WriteOptions = {}): Promise<WriteResult> {
    return this.runPlanned(() => this.planUpdate(resourceType, clientId, body, ifMatch, options), options.tx);
  }

  async planUpdate(resourceType: string, clientId: string, body: Resource, ifMatch: string | undefined, options: PlanOptions = {}): Promise<WritePlan> {
    this.assertBodyType(resourceType, body);
    this.assertValidId(clientId);
    if (body.id === undefined) throw FhirError.badRequest('The resource in an update must carry an id', 'required', [`${resourceType}.id`]);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    // A client-assigned id is stored as its pseudonym (deid/), the same one every time.
    const id = await this.deid.storedIdForWrite(resourceType, clientId, options.issuedIds);
    // http.html#update: the body's id SHALL equal the URL's id, else 400. The id a read answered
    // (the stored one) names the same resource as the client's own id: both are accepted.
    if (body.id !== clientId && body.id !== id) throw FhirError.badRequest('Resource id does not match the id in the URL', 'invalid', [`${resourceType}.id`]);
    const prepared = await this.prepareResource({ ...body, id: clientId }, { id, ...issued(options) });
    this.assertMayWrite(prepared.resource, options.guard);
    return {
      resourceType, id,
      commit: async (t) => {
        const current = await t.readCurrent(resourceType, id);
        this.checkIfMatch(expectedVersion, current);
        return this.commitReplacing(t, resourceType, id, prepared, current, options.guard);
      },
    };
  }

  /** FHIR R4 http.html#cond-update: `PUT Type?query`. */
  async conditionalUpdate(resourceType: string, query: string, body: Resource, options: WriteOptions = {},
    ifMatch?: string): Promise<WriteResult> {
    return this.runPlanned(() => this.planConditionalUpdate(resourceType, query, body, options, ifMatch), options.tx);
  }

  async planConditionalUpdate(resourceType: string, query: string, body: Resource, options: PlanOptions = {},
    ifMatch?: string): Promise<WritePlan> {
    this.assertBodyType(resourceType, body);
    if (body.id !== undefined) this.assertValidId(body.id);
    const bodyId = body.id === undefined ? undefined : await this.deid.storedIdForWrite(resourceType, body.id, options.issuedIds);
    const matches = await this.conditionalMatches(options.reader ?? this.store, resourceType, query, 2, options.guard);
    if (matches.length > 1) throw this.multipleMatches('conditional update');
    const match = matches[0];
    // A transaction resolved this entry's fullUrl already: a different match now is a change meanwhile.
    if (options.expectedMatch !== undefined && (match?.id ?? null) !== options.expectedMatch) throw new StaleWritePlan();
    // http.html#concurrency: If-Match on a conditional update applies to what it matched.
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    // http.html#cond-update: one match but the body names another id → 400.
    if (match && bodyId !== undefined && bodyId !== match.id) {
      throw FhirError.badRequest('The resource id does not match the resource found by the conditional update');
    }
    // No match: create, with the body's id when it has one (update-as-create).
    const id = match?.id ?? bodyId ?? options.newId ?? randomUUID();
    const prepared = await this.prepareResource(body, { id, ...issued(options) });
    this.assertMayWrite(prepared.resource, options.guard);
    return {
      resourceType, id,
      commit: async (t) => {
        const now = await this.conditionalMatches(t, resourceType, query, 2, options.guard);
        if (now.length !== matches.length || now[0]?.id !== match?.id) throw new StaleWritePlan();
        const current = match ? await t.readCurrent(resourceType, id) : bodyId !== undefined ? await t.readCurrent(resourceType, id) : undefined;
        if (!match && current && !current.deleted) {
          throw FhirError.preconditionFailed('A resource with this id exists but does not match the conditional update criteria');
        }
        this.checkIfMatch(expectedVersion, current);
        return this.commitReplacing(t, resourceType, id, prepared, current, options.guard);
      },
    };
  }

  /** FHIR R4 http.html#patch with JSON Patch (RFC 6902). */
  async patch(resourceType: string, id: string, operations: unknown, ifMatch: string | undefined, options: WriteOptions = {}): Promise<WriteResult> {
    return this.runPlanned(() => this.planPatch(resourceType, id, operations, ifMatch, options), options.tx);
  }

  async planPatch(resourceType: string, id: string, operations: unknown, ifMatch: string | undefined, options: PlanOptions = {}): Promise<WritePlan> {
    this.assertValidId(id);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    const storedId = await this.deid.storedIdForRead(resourceType, id);
    const current = await this.readExisting(options.reader ?? this.store, resourceType, storedId);
    this.checkIfMatch(expectedVersion, current);
    return this.patchPlan(current, operations, options);
  }

  /** `PATCH Type?query`: exactly one match is patched (http.html#patch, conditional). */
  async conditionalPatch(resourceType: string, query: string, operations: unknown, options: WriteOptions = {},
    ifMatch?: string): Promise<WriteResult> {
    return this.runPlanned(() => this.planConditionalPatch(resourceType, query, operations, options, ifMatch), options.tx);
  }

  async planConditionalPatch(resourceType: string, query: string, operations: unknown, options: PlanOptions = {},
    ifMatch?: string): Promise<WritePlan> {
    const matches = await this.conditionalMatches(options.reader ?? this.store, resourceType, query, 2, options.guard);
    if (matches.length === 0) throw FhirError.notFound('No resource matches the conditional patch criteria');
    if (matches.length > 1) throw this.multipleMatches('conditional patch');
    this.checkIfMatch(ifMatch === undefined ? undefined : parseETagVersion(ifMatch), matches[0]);
    return this.patchPlan(matches[0]!, operations, options, query);
  }

  /**
   * FHIR R4 http.html#delete. Deletes are versions too (history shows them). Deleting a
   * resource that is already deleted, or never existed, succeeds and writes nothing. With
   * If-Match (http.html#concurrency, applied to deletes too so that a client deleting what it
   * last saw cannot delete a newer version): a stale or absent version → 412.
   */
  async delete(resourceType: string, clientId: string, ifMatch: string | undefined, options: WriteOptions = {}): Promise<WriteResult> {
    return this.runPlanned(() => this.planDelete(resourceType, clientId, ifMatch, options), options.tx);
  }

  async planDelete(resourceType: string, clientId: string, ifMatch: string | undefined, options: PlanOptions = {}): Promise<WritePlan> {
    this.assertValidId(clientId);
    const id = await this.deid.storedIdForRead(resourceType, clientId);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    return {
      resourceType, id,
      commit: async (t) => {
        const current = await t.readCurrent(resourceType, id);
        this.checkIfMatch(expectedVersion, current);
        if (!current || current.deleted) return { status: 204, version: current };
        this.assertMayDelete(current, options.guard);
        return { status: 204, version: await this.commitVersion(t, resourceType, id, null, current) };
      },
    };
  }

  /** http.html#cdelete: no match → success, one → delete, several → 412. */
  async conditionalDelete(resourceType: string, query: string, options: WriteOptions = {}, ifMatch?: string): Promise<WriteResult> {
    return this.runPlanned(() => this.planConditionalDelete(resourceType, query, options, ifMatch), options.tx);
  }

  async planConditionalDelete(resourceType: string, query: string, options: PlanOptions = {}, ifMatch?: string): Promise<WritePlan> {
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    // Resolved where it commits: the match is race-free, and there is nothing to prepare.
    const planned = await this.conditionalMatches(options.reader ?? this.store, resourceType, query, 2, options.guard);
    return {
      resourceType, id: planned.length === 1 ? planned[0]!.id : undefined,
      commit: async (t) => {
        const matches = await this.conditionalMatches(t, resourceType, query, 2, options.guard);
        if (options.expectedMatch !== undefined && (matches[0]?.id ?? null) !== (planned[0]?.id ?? null)) throw new StaleWritePlan();
        if (matches.length > 1) throw this.multipleMatches('conditional delete');
        if (matches.length === 0) return { status: 204, version: undefined };
        this.checkIfMatch(expectedVersion, matches[0]);
        this.assertMayDelete(matches[0]!, options.guard);
        return { status: 204, version: await this.commitVersion(t, resourceType, matches[0]!.id, null, matches[0]) };
      },
    };
  }

  /**
   * Runs a plan in its own store transaction, planning again while it is stale. With `tx` (a
   * caller's own transaction) the plan commits there, and a stale plan is the caller's to handle.
   */
  private async runPlanned(plan: () => Promise<WritePlan>, tx: StoreTransaction | undefined): Promise<WriteResult> {
    if (tx) return (await plan()).commit(tx);
    for (let attempt = 1; ; attempt++) {
      const planned = await plan();
      try {
        return await this.store.transaction((t) => planned.commit(t));
      } catch (error) {
        if (!(error instanceof StaleWritePlan)) throw error;
        if (attempt >= MAX_PLAN_ATTEMPTS) throw staleConflict();
      }
    }
  }

  /**
   * The patched resource, prepared from the version it was applied to; the commit checks that
   * this version is still the current one (else the patch is applied again to the newer one).
   */
  private async patchPlan(current: StoredVersion, operations: unknown, options: PlanOptions,
    criteria?: string): Promise<WritePlan> {
    if (!Array.isArray(operations)) throw FhirError.badRequest('A JSON Patch document must be an array of operations');
    const original = JSON.parse(current.json!) as Resource;
    this.assertReadable(current, options.guard);
    this.assertMayWrite(original, options.guard);
    let patched: Resource;
    try {
      patched = fastJsonPatch.applyPatch(original, operations as fastJsonPatch.Operation[], true, false).newDocument;
    } catch (error) {
      const name = (error as { name?: string }).name ?? 'error';
      const index = (error as { index?: number }).index;
      throw FhirError.badRequest(`JSON Patch could not be applied (${name}${index === undefined ? '' : ` at operation ${index}`})`);
    }
    if (!isResourceObject(patched) || patched.resourceType !== current.resourceType || patched.id !== current.id) {
      throw FhirError.unprocessable([{ severity: 'error', code: 'invalid', diagnostics: 'A patch must leave a resource of the same resourceType and id' }]);
    }
    // What a patch makes meets the limits a body must meet (repetitions, numbers in range).
    if (this.options.valueLimits) checkJsonValueLimits(patched, this.options.valueLimits);
    // The patch applies to the stored form: rules that are not idempotent (cryptoHash, dateShift,
    // pseudonymize) are not applied again to what the stored version already holds.
    const prepared = await this.prepareResource(patched, { id: current.id }, original);
    this.assertMayWrite(prepared.resource, options.guard);
    const { resourceType, id } = current;
    return {
      resourceType, id,
      commit: async (t) => {
        if (criteria !== undefined) {
          // A conditional patch: its criteria must still match this resource alone (412 otherwise).
          const matches = await this.conditionalMatches(t, resourceType, criteria, 2, options.guard);
          if (matches.length !== 1 || matches[0]!.id !== id) throw new StaleWritePlan();
        }
        const now = await t.readCurrent(resourceType, id);
        if (!now || now.deleted || now.versionId !== current.versionId) throw new StaleWritePlan();
        return this.commitReplacing(t, resourceType, id, prepared, now, options.guard);
      },
    };
  }

  /**
   * Commits `prepared` over `current`: a no-op when the content equals the current version's
   * (an EHR's nightly full resync grows neither history nor the ledger; 200 with the current
   * version, as HAPI does), else a new version.
   */
  private async commitReplacing(t: StoreTransaction, resourceType: string, id: string, prepared: PreparedResource,
    current: StoredVersion | undefined, guard: WriteGuard | undefined): Promise<WriteResult> {
    const live = current && !current.deleted ? current : undefined;
    if (live) {
      this.assertReadable(live, guard);
      this.assertMayWrite(JSON.parse(live.json!) as Resource, guard);
      if (sameStoredContent(prepared.resource, live.json!)) return { status: 200, version: live, unchanged: true };
    }
    return { status: live ? 200 : 201, version: await this.commitVersion(t, resourceType, id, prepared, current) };
  }

  private assertMayWrite(resource: Resource, guard: WriteGuard | undefined): void {
    if (guard && !guard.mayWrite(resource)) {
      throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: `This ${resource.resourceType} may not be written with the access granted` });
    }
  }

  /** A resource the context may not see is answered as absent: a 403 would say it exists. */
  private assertReadable(current: StoredVersion, guard: WriteGuard | undefined): void {
    if (guard && current.json !== null && !guard.mayRead(JSON.parse(current.json) as Resource)) {
      throw FhirError.notFound(`No ${current.resourceType} with this id exists`);
    }
  }

  private assertMayDelete(current: StoredVersion, guard: WriteGuard | undefined): void {
    this.assertReadable(current, guard);
    if (guard && !guard.mayDelete(JSON.parse(current.json!) as Resource)) {
      throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: `This ${current.resourceType} may not be deleted with the access granted` });
    }
  }

  /** `$validate` (FHIR R4 resource-operation-validate): the issues, no storage. */
  validateOnly(resourceType: string, body: Resource): OutcomeIssue[] {
    this.assertBodyType(resourceType, body);
    return this.validator.validate(body);
  }

  /**
   * $validate with its `mode` and `profile` (R4 resource-operation-validate): create and no
   * mode validate the resource; update also needs its id (the URL's, when given); delete needs
   * no resource, and any resource may be deleted here (no referential integrity is enforced).
   * A profile is checked when it is the base definition or one of profiles/ (which apply to
   * every resource of their type anyway); another one cannot be, and that is an error issue.
   */
  validateForMode(resourceType: string, resource: Resource | undefined,
    options: { mode: string | undefined; profile: string | undefined; urlId: string | undefined }): OutcomeIssue[] {
    const { mode, profile, urlId } = options;
    if (mode !== undefined && mode !== 'create' && mode !== 'update' && mode !== 'delete') {
      throw FhirError.badRequest('$validate mode must be create, update or delete', 'value');
    }
    if (urlId !== undefined) this.assertValidId(urlId);
    if (mode === 'delete') {
      if (urlId === undefined) throw FhirError.badRequest('$validate mode=delete applies to an instance: POST [type]/[id]/$validate', 'invalid');
      return [{ severity: 'information', code: 'informational', diagnostics: `This ${resourceType} may be deleted` }];
    }
    if (!resource) throw FhirError.badRequest('Parameters for $validate need a "resource" parameter');
    if (urlId !== undefined && resource.id !== undefined && resource.id !== urlId) {
      throw FhirError.badRequest('Resource id does not match the id in the URL');
    }
    const issues: OutcomeIssue[] = [];
    if (mode === 'update' && resource.id === undefined) {
      issues.push({ severity: 'error', code: 'required', diagnostics: 'An update needs the resource id', expression: [`${resourceType}.id`] });
    }
    if (profile !== undefined && profile.split('|')[0] !== `http://hl7.org/fhir/StructureDefinition/${resourceType}`
      && !this.validator.profilesFor(resourceType).includes(profile.split('|')[0]!)) {
      issues.push({ severity: 'error', code: 'not-supported', diagnostics: 'The profile asked for is not one this server knows, so it was not checked' });
    }
    return [...issues, ...this.validateOnly(resourceType, resource)];
  }

  // ---------------------------------------------------------------- reads

  /** http.html#read: unknown → 404, deleted → 410. */
  async read(resourceType: string, id: string, reader: StoreReader = this.store): Promise<StoredVersion> {
    this.assertValidId(id);
    return this.readExisting(reader, resourceType, await this.deid.storedIdForRead(resourceType, id));
  }

  /** The current version (a delete included) of a client's id, or undefined: no 404/410 decided here. */
  async readCurrentVersion(resourceType: string, id: string, reader: StoreReader = this.store): Promise<StoredVersion | undefined> {
    return reader.readCurrent(resourceType, await this.deid.storedIdForRead(resourceType, id));
  }

  /** One stored version by its stored id (a delete version included), or undefined. */
  async readStoredVersion(resourceType: string, storedId: string, versionId: number,
    reader: StoreReader = this.store): Promise<StoredVersion | undefined> {
    return reader.readVersion(resourceType, storedId, versionId);
  }

  /** http.html#vread: a deleted version → 410. */
  async vread(resourceType: string, id: string, versionId: string, reader: StoreReader = this.store): Promise<StoredVersion> {
    this.assertValidId(id);
    if (!/^\d{1,15}$/.test(versionId)) throw FhirError.notFound(`This ${resourceType} version does not exist`);
    const version = await reader.readVersion(resourceType, await this.deid.storedIdForRead(resourceType, id), Number(versionId));
    if (!version) throw FhirError.notFound(`This ${resourceType} version does not exist`);
    if (version.deleted) throw FhirError.gone(`This ${resourceType} version is a deletion`);
    return version;
  }

  async parseSearch(resourceType: string | null, entries: Iterable<[string, string]>, options: SearchOptions): Promise<ParsedSearch> {
    return parseSearchQuery(resourceType, await this.deid.translateSearch(resourceType, [...entries]), this.registry, {
      defaultCount: this.options.defaultPageSize,
      maxCount: this.options.maxPageSize,
      strict: options.strict,
      baseUrl: options.baseUrl,
      ...(this.options.searchLimits ? { limits: this.options.searchLimits } : {}),
    });
  }

  async search(parsed: ParsedSearch, reader: StoreReader = this.store) {
    return reader.search(parsed.query);
  }

  /** http.html#history at instance, type or system level; newest first. */
  async history(params: { resourceType?: string; id?: string; since?: string; count?: string; offset?: string },
    reader: StoreReader = this.store): Promise<HistoryPage & { count: number; offset: number }> {
    if (params.id !== undefined) this.assertValidId(params.id);
    let since: number | undefined;
    if (params.since !== undefined) {
      // http.html#history: _since is an instant.
      since = Date.parse(params.since);
      if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(params.since) || Number.isNaN(since)) {
        throw FhirError.badRequest('_since must be an instant, e.g. 2024-01-01T00:00:00Z', 'value');
      }
    }
    const count = this.pageSize(params.count);
    const offset = params.offset === undefined ? 0 : this.nonNegativeInt('_offset', params.offset);
    const page = await reader.history({
      ...(params.resourceType !== undefined ? { resourceType: params.resourceType } : {}),
      ...(params.id !== undefined ? { id: await this.deid.storedIdForRead(params.resourceType ?? '', params.id) } : {}),
      ...(since !== undefined ? { since } : {}),
      count, offset,
    });
    if (params.id !== undefined && page.total === 0) {
      throw FhirError.notFound(`No ${params.resourceType} with this id exists`);
    }
    return { ...page, count, offset };
  }

  // ---------------------------------------------------------------- helpers

  /** Resolves a conditional operation's query inside the transaction (strict: unknown parameters are errors). */
  async conditionalMatches(t: StoreReader, resourceType: string, query: string, limit: number,
    guard?: Pick<WriteGuard, 'searchRestriction'>): Promise<StoredVersion[]> {
    // Some clients send If-None-Exist / ifNoneExist as `Type?criteria` or `?criteria`; the
    // criteria are what follows the `?` (R4 http.html#ccreate describes the bare query string).
    const question = query.indexOf('?');
    if (question !== -1) {
      const prefix = query.slice(0, question);
      if (prefix !== '' && prefix !== resourceType) {
        throw FhirError.badRequest(`Conditional criteria name another resource type; expected ${resourceType}`);
      }
      query = query.slice(question + 1);
    }
    const entries = [...new URLSearchParams(query)];
    if (entries.length === 0) throw FhirError.badRequest('A conditional operation needs search criteria');
    const parsed = parseSearchQuery(resourceType, await this.deid.translateSearch(resourceType, entries), this.registry, {
      defaultCount: limit, maxCount: limit, strict: true,
      ...(this.options.searchLimits ? { limits: this.options.searchLimits } : {}),
    });
    parsed.query.count = limit;
    parsed.query.offset = 0;
    parsed.query.total = 'none';
    parsed.query.countOnly = false;
    await this.restrictSearch(parsed.query, guard?.searchRestriction(resourceType));
    return (await t.search(parsed.query)).versions;
  }

  /**
   * ANDs an access policy's restriction into a search (auth/access-policy.ts): its criteria are
   * parsed like the client's own; its compartment becomes `accessCompartment`.
   */
  async restrictSearch(query: SearchQuery, restriction: SearchRestriction | undefined): Promise<void> {
    if (!restriction) return;
    // Chains and _has search other resources than the ones returned; the restriction is not
    // ANDed into those inner searches yet, so they would tell what exists behind it.
    if (query.criteria.some((c) => c.chain !== undefined || c.reverse !== undefined)) {
      throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: 'Chained and _has searches are not available with the restricted access granted' });
    }
    if (restriction.criteria.length > 0) {
      const parsed = parseSearchQuery(query.resourceType, await this.deid.translateSearch(query.resourceType, restriction.criteria), this.registry, {
        defaultCount: 1, maxCount: 1, strict: true,
      });
      query.criteria.push(...parsed.query.criteria);
    }
    if (restriction.compartment) {
      const type = query.resourceType;
      if (type === null) {
        throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: 'Access confined to a patient compartment searches one type at a time (or a compartment search)' });
      }
      const params = patientCompartmentParams(type)
        .map((code) => this.registry.get(type, code))
        .filter((p): p is NonNullable<typeof p> => p !== undefined && p.type === 'reference');
      const { ownerType, ownerIds } = restriction.compartment;
      if (type === ownerType) {
        // The owner itself is in its compartment (R4 compartmentdefinition: the Patient resource).
        query.criteria.push(...parseSearchQuery(type, [['_id', ownerIds.join(',')]], this.registry, { defaultCount: 1, maxCount: 1, strict: true }).query.criteria);
      } else if (params.length === 0) {
        // Not in the compartment at all: nothing of this type may be seen.
        query.accessCompartment = { ownerType, ownerIds: [], params: [] };
      } else {
        query.accessCompartment = { ownerType, ownerIds: [...ownerIds], params };
      }
    }
  }

  private async readExisting(reader: StoreReader, resourceType: string, id: string): Promise<StoredVersion> {
    const current = await reader.readCurrent(resourceType, id);
    if (!current) throw FhirError.notFound(`No ${resourceType} with this id exists`);
    if (current.deleted) throw FhirError.gone(`This ${resourceType} has been deleted`);
    return current;
  }

  private checkIfMatch(expected: number | undefined, current: StoredVersion | undefined): void {
    if (expected === undefined) return;
    // http.html#concurrency: a stale If-Match → 412 Precondition Failed.
    if (!current || current.deleted || current.versionId !== expected) {
      throw FhirError.preconditionFailed(
        `If-Match version ${expected} does not match the current version ${current && !current.deleted ? current.versionId : '(none)'}`);
    }
  }

  private assertBodyType(resourceType: string, body: Resource): void {
    if (body.resourceType !== resourceType) {
      throw FhirError.badRequest(`The body's resourceType does not match the endpoint ${resourceType}`, 'invalid', ['resourceType']);
    }
  }

  assertValidId(id: string): void {
    if (!isValidResourceId(id)) {
      throw FhirError.badRequest('Invalid resource id: ids are 1-64 characters of A-Z a-z 0-9 - .', 'value');
    }
  }

  private multipleMatches(what: string): FhirError {
    return FhirError.preconditionFailed(`Multiple resources match the ${what} criteria`, 'multiple-matches');
  }

  private pageSize(text: string | undefined): number {
    if (text === undefined) return this.options.defaultPageSize;
    return Math.min(this.nonNegativeInt('_count', text), this.options.maxPageSize);
  }

  private nonNegativeInt(name: string, text: string): number {
    if (!/^\d{1,9}$/.test(text)) throw FhirError.badRequest(`${name} must be a non-negative integer`, 'value');
    return Number(text);
  }
}
