/**
 * batch and transaction Bundles (FHIR R4 http.html#transaction).
 *
 * transaction: all entries in ONE store transaction, all or nothing; processed in the order
 * the spec prescribes (DELETE, POST, PUT/PATCH, GET/HEAD — http.html#trules); `urn:uuid:`
 * fullUrls and conditional references (`Patient?identifier=…`) are resolved before any
 * resource is validated, so every stored reference is a real `Type/id`.
 * batch: each entry on its own, in its own transaction; a failing entry fails alone.
 */
import { randomUUID } from 'node:crypto';
import { FhirError, operationOutcome, type OutcomeIssue } from '../fhir/fhir-error.js';
import { historyBundle, pagingLinks, statusLine, versionLocation, weakETag } from '../fhir/bundle-builders.js';
import { entryRequestOf, transactionOrder, type BundleEntryRequest } from '../fhir/bundle-plan.js';
import { referenceStrings, type Resource } from '../fhir/resource.js';
import type { StoreReader, StoreTransaction } from '../store/store.js';
import type { ResourceService, WriteResult } from './resource-service.js';
import type { SearchService } from './search-service.js';

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

export interface BundleOptions {
  baseUrl: string;
  returnPreference: ReturnPreference;
}

interface EntryResponse {
  response: Record<string, unknown>;
  resource?: unknown;
}

export class BundleService {
  constructor(private readonly resources: ResourceService, private readonly search: SearchService) {}

  async process(bundle: Resource, options: BundleOptions): Promise<Resource> {
    if (bundle.resourceType !== 'Bundle') {
      throw FhirError.badRequest('POST to the base takes a Bundle of type batch or transaction', 'invalid', ['resourceType']);
    }
    const type = bundle.type;
    if (type !== 'batch' && type !== 'transaction') {
      throw FhirError.badRequest('Bundle.type must be batch or transaction', 'value', ['Bundle.type']);
    }
    const entries = (bundle.entry ?? []) as unknown[];
    if (!Array.isArray(entries)) throw FhirError.badRequest('Bundle.entry must be an array', 'structure', ['Bundle.entry']);
    return type === 'transaction'
      ? this.transaction(entries, options)
      : this.batch(entries, options);
  }

  /** Parses one entry's request and checks its resource type is one this server knows. */
  private checkedEntryRequest(entry: unknown, index: number, options: BundleOptions): BundleEntryRequest {
    const request = entryRequestOf(entry, index, options.baseUrl);
    if (request.target.resourceType !== undefined) {
      try {
        this.resources.assertKnownType(request.target.resourceType);
      } catch (error) {
        throw error instanceof FhirError ? locate(error, index) : error;
      }
    }
    return request;
  }

  // ---------------------------------------------------------------- transaction

  private async transaction(rawEntries: unknown[], options: BundleOptions): Promise<Resource> {
    // Every entry is checked before anything runs: a malformed entry fails the whole bundle.
    const requests = rawEntries.map((entry, index) => this.checkedEntryRequest(entry, index, options));
    const store = this.resources.storeForTransactions;
    const responses = await store.transaction(async (tx) => {
      await this.assertNoOverlappingTargets(tx, requests);
      const out = new Array<EntryResponse>(requests.length);
      // What each write finally touched must not overlap either (a conditional create that
      // matched a resource another entry also writes).
      const touched = new Map<string, number>();
      const run = async (request: BundleEntryRequest, references: Map<string, string>, issuedIds?: ReadonlySet<string>) => {
        try {
          if (request.resource) replaceReferences(request.resource, references);
          const { entry, identity } = await this.execute(tx, request, options, issuedIds);
          if (identity !== undefined) {
            const earlier = touched.get(identity);
            if (earlier !== undefined) {
              throw FhirError.badRequest(`Bundle.entry[${earlier}] and Bundle.entry[${request.index}] resolve to the same resource`, 'invalid');
            }
            touched.set(identity, request.index);
          }
          out[request.index] = entry;
        } catch (error) {
          if (error instanceof FhirError) {
            // The whole transaction fails with the entry's error, located at its entry.
            throw new FhirError(error.status, error.issues.map((issue) => locateIssue(issue, request.index)), error.headers);
          }
          throw error;
        }
      };
      const ordered = transactionOrder(requests);
      // Step 1, DELETE, runs before anything is resolved: what it removes is gone for the
      // conditional creates and conditional references of the later steps.
      for (const request of ordered) if (request.method === 'DELETE') await run(request, new Map());
      const references = await this.resolveFullUrls(tx, requests);
      assertLocalReferencesResolve(requests, references);
      // Ids this transaction assigned: references to them are stored ids, not client ids to pseudonymize.
      const issuedIds = new Set(requests.flatMap((r) => (r.assignedId !== undefined && !r.matchedExisting ? [r.assignedId] : [])));
      for (const request of ordered) if (request.method !== 'DELETE') await run(request, references, issuedIds);
      return out;
    });
    return { resourceType: 'Bundle', type: 'transaction-response', entry: responses };
  }

  /**
   * Assigns each POST entry its id (or the match of its If-None-Exist) and maps every
   * `urn:uuid:`/absolute fullUrl to `Type/id`; resolves conditional references.
   */
  private async resolveFullUrls(tx: StoreTransaction, requests: BundleEntryRequest[]): Promise<Map<string, string>> {
    const references = new Map<string, string>();
    for (const request of requests) {
      if (request.method === 'POST' && request.resource) {
        let id: string = randomUUID();
        if (request.ifNoneExist) {
          const matches = await this.resources.conditionalMatches(tx, request.target.resourceType!, request.ifNoneExist, 2);
          if (matches.length > 1) throw locate(FhirError.preconditionFailed('Multiple resources match the conditional create criteria', 'multiple-matches'), request.index);
          if (matches.length === 1) {
            id = matches[0]!.id;
            request.matchedExisting = matches[0]!;
          }
        }
        request.assignedId = id;
        if (request.fullUrl) references.set(request.fullUrl, `${request.target.resourceType}/${id}`);
      } else if ((request.method === 'PUT') && request.fullUrl && request.target.id) {
        references.set(request.fullUrl, `${request.target.resourceType}/${request.target.id}`);
      }
    }
    // Conditional references (http.html#trules): `Type?query` must match exactly one resource.
    for (const request of requests) {
      if (!request.resource) continue;
      for (const reference of referenceStrings(request.resource)) {
        if (references.has(reference) || !/^[A-Z][A-Za-z]+\?/.test(reference)) continue;
        const [type, query] = [reference.slice(0, reference.indexOf('?')), reference.slice(reference.indexOf('?') + 1)];
        this.resources.assertKnownType(type);
        const matches = await this.resources.conditionalMatches(tx, type, query, 2);
        if (matches.length !== 1) {
          throw locate(FhirError.preconditionFailed(
            `Conditional reference ${type}?… matched ${matches.length === 0 ? 'no' : 'several'} resources; exactly one is required`,
            matches.length === 0 ? 'not-found' : 'multiple-matches'), request.index);
        }
        references.set(reference, `${type}/${matches[0]!.id}`);
      }
    }
    return references;
  }

  /**
   * Runs one entry; for a write, also says which resource it resolved to (`Type/id` as stored),
   * for the overlap rule of http.html#trules.
   */
  /**
   * http.html#trules: "If any resource identities (including resolved identities from
   * conditional update/delete) overlap in steps 1-3, then the transaction SHALL fail." The
   * DELETE, PUT and PATCH entries' targets, conditional ones resolved against the store as it
   * is before the transaction, compared as stored ids.
   */
  private async assertNoOverlappingTargets(tx: StoreTransaction, requests: BundleEntryRequest[]): Promise<void> {
    const seen = new Map<string, number>();
    for (const request of requests) {
      if (request.method !== 'DELETE' && request.method !== 'PUT' && request.method !== 'PATCH') continue;
      const type = request.target.resourceType!;
      let id: string | undefined;
      if (request.target.id !== undefined) {
        id = await this.resources.deidentification.storedIdForRead(type, request.target.id);
      } else if (request.target.query !== undefined) {
        const matches = await this.resources.conditionalMatches(tx, type, request.target.query, 2);
        if (matches.length === 1) id = matches[0]!.id;
      }
      if (id === undefined) continue;
      const key = `${type}/${id}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        throw FhirError.badRequest(`Bundle.entry[${earlier}] and Bundle.entry[${request.index}] both modify the same ${type}`, 'invalid', [`Bundle.entry[${request.index}]`]);
      }
      seen.set(key, request.index);
    }
  }

  private async execute(tx: StoreTransaction, request: BundleEntryRequest, options: BundleOptions,
    issuedIds: ReadonlySet<string> = new Set()): Promise<{ entry: EntryResponse; identity?: string }> {
    const { target } = request;
    // checkShape (fhir/bundle-plan.ts) guarantees a type on every write entry.
    const resourceType = target.resourceType!;
    const written = (result: WriteResult) => ({
      entry: this.writeResponse(result, options),
      ...(result.version ? { identity: `${resourceType}/${result.version.id}` } : {}),
    });
    switch (request.method) {
      case 'GET':
      case 'HEAD':
        return { entry: await this.executeRead(tx, request, options) };
      case 'POST': {
        if (request.matchedExisting) {
          return written({ status: 200, version: request.matchedExisting, matchedExisting: true });
        }
        const prepared = await this.resources.prepareResource({ ...request.resource!, id: request.assignedId! },
          { id: request.assignedId!, issuedIds });
        const version = await this.resources.commitVersion(tx, resourceType, request.assignedId!, prepared, undefined);
        return written({ status: 201, version });
      }
      case 'PUT':
        if (target.id) return written(await this.resources.update(resourceType, target.id, request.resource!, request.ifMatch, tx, issuedIds));
        return written(await this.resources.conditionalUpdate(resourceType, target.query ?? '', request.resource!, tx, issuedIds));
      case 'PATCH': {
        const operations = patchOperations(request);
        if (target.id) return written(await this.resources.patch(resourceType, target.id, operations, request.ifMatch, tx));
        return written(await this.resources.conditionalPatch(resourceType, target.query ?? '', operations, tx));
      }
      case 'DELETE':
        if (target.id) return written(await this.resources.delete(resourceType, target.id, tx, request.ifMatch));
        return written(await this.resources.conditionalDelete(resourceType, target.query ?? '', tx));
    }
  }

  private async executeRead(reader: StoreReader, request: BundleEntryRequest, options: BundleOptions): Promise<EntryResponse> {
    const { target } = request;
    const base = options.baseUrl;
    if (target.resourceType === undefined || target.interaction === 'system-history') {
      const page = await this.resources.history({ ...historyParams(target.queryEntries) }, reader);
      return ok(historyBundle(base, page.versions, page.total, pagingLinks(`${base}/_history`, target.queryEntries, page.offset, page.count, page.versions.length, page.total)));
    }
    this.resources.assertKnownType(target.resourceType);
    switch (target.interaction) {
      case 'read': {
        const version = await this.resources.read(target.resourceType, target.id!, reader);
        return { resource: JSON.parse(version.json!), response: { status: '200 OK', etag: weakETag(version.versionId), lastModified: version.lastUpdated } };
      }
      case 'vread': {
        const version = await this.resources.vread(target.resourceType, target.id!, target.versionId!, reader);
        return { resource: JSON.parse(version.json!), response: { status: '200 OK', etag: weakETag(version.versionId), lastModified: version.lastUpdated } };
      }
      case 'instance-history':
      case 'type-history': {
        const page = await this.resources.history({
          resourceType: target.resourceType, ...(target.id !== undefined ? { id: target.id } : {}), ...historyParams(target.queryEntries),
        }, reader);
        const path = [target.resourceType, target.id, '_history'].filter((p) => p !== undefined).join('/');
        return ok(historyBundle(base, page.versions, page.total, pagingLinks(`${base}/${path}`, target.queryEntries, page.offset, page.count, page.versions.length, page.total)));
      }
      case 'search':
        return ok(await this.search.searchBundle({
          resourceType: target.resourceType, entries: target.queryEntries, strict: false, baseUrl: base,
        }, reader));
      default:
        throw FhirError.badRequest(`Unsupported GET in a bundle entry`, 'not-supported');
    }
  }

  private writeResponse(result: WriteResult, options: BundleOptions): EntryResponse {
    const { version } = result;
    const response: Record<string, unknown> = { status: statusLine(result.status) };
    if (version && !version.deleted) {
      response.etag = weakETag(version.versionId);
      response.lastModified = version.lastUpdated;
      if (result.status === 201 || result.status === 200) response.location = versionLocation(options.baseUrl, version);
    }
    const entry: EntryResponse = { response };
    if (version?.json && options.returnPreference === 'representation') entry.resource = JSON.parse(version.json);
    if (options.returnPreference === 'OperationOutcome') {
      response.outcome = operationOutcome([{ severity: 'information', code: 'informational', diagnostics: statusLine(result.status) }]);
    }
    return entry;
  }

  // ---------------------------------------------------------------- batch

  private async batch(rawEntries: unknown[], options: BundleOptions): Promise<Resource> {
    const responses: EntryResponse[] = [];
    for (let index = 0; index < rawEntries.length; index++) {
      try {
        const request = this.checkedEntryRequest(rawEntries[index], index, options);
        if (request.resource && referenceStrings(request.resource).some((r) => r.startsWith('urn:uuid:'))) {
          // http.html#brules: batch entries may not depend on each other.
          throw FhirError.badRequest('A batch entry may not reference other entries by urn:uuid; use a transaction', 'invalid');
        }
        responses.push(await this.executeBatchEntry(request, options));
      } catch (error) {
        if (!(error instanceof FhirError)) throw error;
        responses.push({ response: { status: statusLine(error.status), outcome: operationOutcome(error.issues) } });
      }
    }
    return { resourceType: 'Bundle', type: 'batch-response', entry: responses };
  }

  private async executeBatchEntry(request: BundleEntryRequest, options: BundleOptions): Promise<EntryResponse> {
    const { target } = request;
    switch (request.method) {
      case 'GET':
      case 'HEAD':
        return this.executeRead(this.resources.storeForTransactions, request, options);
      case 'POST':
        return this.writeResponse(await this.resources.create(target.resourceType!, request.resource!, request.ifNoneExist), options);
      default:
        return (await this.resources.storeForTransactions.transaction((tx) => this.execute(tx, request, options))).entry;
    }
  }
}

function ok(resource: Resource): EntryResponse {
  return { resource, response: { status: '200 OK' } };
}

function historyParams(entries: [string, string][]) {
  const get = (name: string) => entries.find(([n]) => n === name)?.[1];
  const since = get('_since');
  const count = get('_count');
  const offset = get('_offset');
  return { ...(since ? { since } : {}), ...(count ? { count } : {}), ...(offset ? { offset } : {}) };
}

function patchOperations(request: BundleEntryRequest): unknown {
  // A JSON Patch travels in a bundle as a Binary (R4 http.html#patch: "binary resource").
  const resource = request.resource;
  if (resource?.resourceType === 'Binary' && typeof resource.data === 'string') {
    try {
      return JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8'));
    } catch {
      throw FhirError.badRequest('The Binary of a PATCH entry must hold a base64 JSON Patch document');
    }
  }
  throw FhirError.badRequest('A PATCH entry needs a Binary resource holding a JSON Patch document', 'not-supported');
}

function locateIssue(issue: OutcomeIssue, index: number): OutcomeIssue {
  const prefix = `Bundle.entry[${index}]`;
  return {
    ...issue,
    diagnostics: `${prefix}: ${issue.diagnostics ?? issue.code}`,
    expression: issue.expression?.length
      ? issue.expression.map((e) => `${prefix}.resource.${e.replace(/^[A-Z][A-Za-z]+\.?/, '') || ''}`.replace(/\.$/, ''))
      : [prefix],
  };
}

function locate(error: FhirError, index: number): FhirError {
  return new FhirError(error.status, error.issues.map((i) => locateIssue(i, index)), error.headers);
}

/**
 * A `urn:uuid:` / `urn:oid:` reference names an entry of this bundle (http.html#trules); one
 * that no entry has as its fullUrl would be stored as a reference to nothing.
 */
function assertLocalReferencesResolve(requests: BundleEntryRequest[], references: Map<string, string>): void {
  for (const request of requests) {
    if (!request.resource) continue;
    for (const reference of referenceStrings(request.resource)) {
      if ((reference.startsWith('urn:uuid:') || reference.startsWith('urn:oid:')) && !references.has(reference)) {
        throw FhirError.badRequest(`Bundle.entry[${request.index}]: the reference ${reference.slice(0, 9)}… names no entry of this transaction (no entry has it as fullUrl)`,
          'invalid', [`Bundle.entry[${request.index}]`]);
      }
    }
  }
}

/** Rewrites `reference` strings (and exact urn:uuid strings, e.g. in uri elements) in place. */
function replaceReferences(value: unknown, references: Map<string, string>): void {
  if (references.size === 0) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === 'string') { const r = references.get(item); if (r && item.startsWith('urn:')) value[i] = r; } else replaceReferences(item, references);
    }
  } else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(record)) {
      if (typeof child === 'string') {
        const replacement = references.get(child);
        if (replacement && (key === 'reference' || child.startsWith('urn:'))) record[key] = replacement;
      } else if (typeof child === 'object') {
        replaceReferences(child, references);
      }
    }
  }
}
