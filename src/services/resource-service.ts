/**
 * The service layer: every FHIR interaction on resources, and THE write path (DESIGN.md "The
 * spine"). Every write, from REST or a bundle entry, goes through `commitVersion`, after
 * `prepareResource` has validated it and extracted its index entries.
 */
import { randomUUID } from 'node:crypto';
import fastJsonPatch from 'fast-json-patch';
import type { Deidentification } from '../deid/deidentification.js';
import { FhirError, type OutcomeIssue } from '../fhir/fhir-error.js';
import { isValidResourceId, referenceStrings, type Resource } from '../fhir/resource.js';
import type { SearchIndexEntry } from '../fhir/search-index-entry.js';
import type { SearchIndexExtractor } from '../fhir/search-index-extraction.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import { parseSearchQuery, type ParsedSearch } from '../fhir/search-query-parser.js';
import type { ResourceValidator } from '../fhir/validator.js';
import { newVersionLeaf } from '../ledger/version-leaf.js';
import type { HistoryPage, Store, StoredVersion, StoreReader, StoreTransaction } from '../store/store.js';

export interface ResourceServiceOptions {
  defaultPageSize: number;
  maxPageSize: number;
}

/** The result of a write interaction, for the http layer and for bundle entry responses. */
export interface WriteResult {
  /** 200 updated or matched, 201 created, 204 deleted. */
  status: 200 | 201 | 204;
  /** The version written, or the existing one a conditional create matched. */
  version: StoredVersion | undefined;
  /** True when a conditional create found its match and wrote nothing. */
  matchedExisting?: boolean;
}

/** Where a resource is going: its stored id, and the ids the same request assigned (a transaction's POSTs). */
export interface WriteContext {
  id: string;
  issuedIds?: ReadonlySet<string>;
}

/** A resource that passed validation and de-identification, with its index entries, ready to commit. */
export interface PreparedResource {
  resource: Resource;
  indexEntries: SearchIndexEntry[];
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

  /** The store, for services that compose several interactions in one transaction (bundles). */
  get storeForTransactions(): Store {
    return this.store;
  }

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
   * de-identification cannot run; nothing is stored either way.
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
    return { resource: stored, indexEntries: this.extractor.extract(stored) };
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
    const prepared = { resource: stored, indexEntries: this.extractor.extract(stored) };
    return this.store.transaction((t) => this.commitVersion(t, resource.resourceType, id, prepared, undefined));
  }

  /** The de-identification in force (its table, id translation), for the other services. */
  get deidentification(): Deidentification {
    return this.deid;
  }

  /**
   * Step 2: the new version in the store, inside the caller's transaction. The server owns
   * meta.versionId and meta.lastUpdated (FHIR R4 resource.html#Meta); other meta is kept.
   * The version's ledger leaf (salted hash of its RFC 8785 form) is committed with it.
   */
  async commitVersion(tx: StoreTransaction, resourceType: string, id: string,
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

  /** FHIR R4 http.html#create, with If-None-Exist (http.html#ccreate). */
  async create(resourceType: string, body: Resource, ifNoneExist: string | undefined,
    tx?: StoreTransaction): Promise<WriteResult> {
    this.assertBodyType(resourceType, body);
    // http.html#create: a client-supplied id is ignored on create; the server assigns one.
    const { id: _ignored, ...withoutId } = body;
    const id = randomUUID();
    const prepared = await this.prepareResource(withoutId as Resource, { id });
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      if (ifNoneExist !== undefined) {
        const matches = await this.conditionalMatches(t, resourceType, ifNoneExist, 2);
        // http.html#ccreate: one match → 200 and nothing created; several → 412.
        if (matches.length === 1) return { status: 200, version: matches[0], matchedExisting: true };
        if (matches.length > 1) throw this.multipleMatches('conditional create');
      }
      const version = await this.commitVersion(t, resourceType, id, prepared, undefined);
      return { status: 201, version };
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /** FHIR R4 http.html#update, including update-as-create (upsert) and If-Match. */
  async update(resourceType: string, clientId: string, body: Resource, ifMatch: string | undefined,
    tx?: StoreTransaction, issuedIds?: ReadonlySet<string>): Promise<WriteResult> {
    this.assertBodyType(resourceType, body);
    this.assertValidId(clientId);
    // http.html#update: the body's id SHALL equal the URL's id, else 400.
    if (body.id === undefined) throw FhirError.badRequest('The resource in an update must carry an id', 'required', [`${resourceType}.id`]);
    if (body.id !== clientId) throw FhirError.badRequest(`Resource id does not match the id in the URL`, 'invalid', [`${resourceType}.id`]);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    // A client-assigned id is stored as its pseudonym (deid/), the same one every time.
    const id = await this.deid.storedIdForWrite(resourceType, clientId, issuedIds);
    const prepared = await this.prepareResource(body, { id, ...(issuedIds ? { issuedIds } : {}) });
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const current = await t.readCurrent(resourceType, id);
      this.checkIfMatch(expectedVersion, current);
      const version = await this.commitVersion(t, resourceType, id, prepared, current);
      return { status: current && !current.deleted ? 200 : 201, version };
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /** FHIR R4 http.html#cond-update: `PUT Type?query`. */
  async conditionalUpdate(resourceType: string, query: string, body: Resource,
    tx?: StoreTransaction, issuedIds?: ReadonlySet<string>): Promise<WriteResult> {
    this.assertBodyType(resourceType, body);
    if (body.id !== undefined) this.assertValidId(body.id);
    const bodyId = body.id === undefined ? undefined : await this.deid.storedIdForWrite(resourceType, body.id, issuedIds);
    // Prepared for the id it will have when nothing matches; a match's id replaces it below.
    const newId = bodyId ?? randomUUID();
    const prepared = await this.prepareResource(body, { id: newId, ...(issuedIds ? { issuedIds } : {}) });
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const matches = await this.conditionalMatches(t, resourceType, query, 2);
      if (matches.length > 1) throw this.multipleMatches('conditional update');
      if (matches.length === 1) {
        const match = matches[0]!;
        // http.html#cond-update: one match but the body names another id → 400.
        if (bodyId !== undefined && bodyId !== match.id) {
          throw FhirError.badRequest('The resource id does not match the resource found by the conditional update');
        }
        const version = await this.commitVersion(t, resourceType, match.id, await this.reprepareFor(prepared, body, match.id, newId, issuedIds), match);
        return { status: 200, version };
      }
      // No match: create, with the body's id when it has one (update-as-create).
      const id = newId;
      const current = bodyId !== undefined ? await t.readCurrent(resourceType, id) : undefined;
      if (current && !current.deleted) {
        throw FhirError.preconditionFailed('A resource with this id exists but does not match the conditional update criteria');
      }
      const version = await this.commitVersion(t, resourceType, id, prepared, current);
      return { status: 201, version };
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /** FHIR R4 http.html#patch with JSON Patch (RFC 6902). */
  async patch(resourceType: string, id: string, operations: unknown, ifMatch: string | undefined,
    tx?: StoreTransaction): Promise<WriteResult> {
    this.assertValidId(id);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    const storedId = await this.deid.storedIdForRead(resourceType, id);
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const current = await this.readExisting(t, resourceType, storedId);
      this.checkIfMatch(expectedVersion, current);
      return this.applyPatch(t, current, operations);
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /** `PATCH Type?query`: exactly one match is patched (http.html#patch, conditional). */
  async conditionalPatch(resourceType: string, query: string, operations: unknown,
    tx?: StoreTransaction): Promise<WriteResult> {
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const matches = await this.conditionalMatches(t, resourceType, query, 2);
      if (matches.length === 0) throw FhirError.notFound('No resource matches the conditional patch criteria');
      if (matches.length > 1) throw this.multipleMatches('conditional patch');
      return this.applyPatch(t, matches[0]!, operations);
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /**
   * A conditional update prepared for a new id that matched an existing resource instead: the
   * resource's own id decides its date shift (a Patient's), so it is prepared again only then.
   */
  private async reprepareFor(prepared: PreparedResource, body: Resource, id: string, preparedId: string,
    issuedIds?: ReadonlySet<string>): Promise<PreparedResource> {
    if (id === preparedId || body.resourceType !== 'Patient' || !this.deid.table?.rules.some((r) => r.method === 'dateShift')) {
      return { ...prepared, resource: { ...prepared.resource, id } };
    }
    return this.prepareResource(body, { id, ...(issuedIds ? { issuedIds } : {}) });
  }

  private async applyPatch(t: StoreTransaction, current: StoredVersion, operations: unknown): Promise<WriteResult> {
    if (!Array.isArray(operations)) throw FhirError.badRequest('A JSON Patch document must be an array of operations');
    const original = JSON.parse(current.json!) as Resource;
    let patched: Resource;
    try {
      patched = fastJsonPatch.applyPatch(original, operations as fastJsonPatch.Operation[], true, false).newDocument;
    } catch (error) {
      const name = (error as { name?: string }).name ?? 'error';
      const index = (error as { index?: number }).index;
      throw FhirError.badRequest(`JSON Patch could not be applied (${name}${index === undefined ? '' : ` at operation ${index}`})`);
    }
    if (patched.resourceType !== current.resourceType || patched.id !== current.id) {
      throw FhirError.unprocessable([{ severity: 'error', code: 'invalid', diagnostics: 'A patch may not change resourceType or id' }]);
    }
    const prepared = await this.prepareResource(patched, { id: current.id }, original);
    const version = await this.commitVersion(t, current.resourceType, current.id, prepared, current);
    return { status: 200, version };
  }

  /**
   * FHIR R4 http.html#delete. Deletes are versions too (history shows them). Deleting a
   * resource that is already deleted, or never existed, succeeds and writes nothing. With
   * If-Match (http.html#concurrency, applied to deletes too so that a client deleting what it
   * last saw cannot delete a newer version): a stale or absent version → 412.
   */
  async delete(resourceType: string, clientId: string, tx?: StoreTransaction, ifMatch?: string): Promise<WriteResult> {
    this.assertValidId(clientId);
    const id = await this.deid.storedIdForRead(resourceType, clientId);
    const expectedVersion = ifMatch === undefined ? undefined : parseETagVersion(ifMatch);
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const current = await t.readCurrent(resourceType, id);
      this.checkIfMatch(expectedVersion, current);
      if (!current || current.deleted) return { status: 204, version: current };
      const version = await this.commitVersion(t, resourceType, id, null, current);
      return { status: 204, version };
    };
    return tx ? work(tx) : this.store.transaction(work);
  }

  /** http.html#cdelete: no match → success, one → delete, several → 412. */
  async conditionalDelete(resourceType: string, query: string, tx?: StoreTransaction): Promise<WriteResult> {
    const work = async (t: StoreTransaction): Promise<WriteResult> => {
      const matches = await this.conditionalMatches(t, resourceType, query, 2);
      if (matches.length > 1) throw this.multipleMatches('conditional delete');
      if (matches.length === 0) return { status: 204, version: undefined };
      const version = await this.commitVersion(t, resourceType, matches[0]!.id, null, matches[0]);
      return { status: 204, version };
    };
    return tx ? work(tx) : this.store.transaction(work);
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
  async conditionalMatches(t: StoreReader, resourceType: string, query: string, limit: number): Promise<StoredVersion[]> {
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
    });
    parsed.query.count = limit;
    parsed.query.offset = 0;
    parsed.query.total = 'none';
    parsed.query.countOnly = false;
    return (await t.search(parsed.query)).versions;
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
