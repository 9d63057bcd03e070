/**
 * Search as the client sees it (FHIR R4 search.html): the matches from the store, the
 * resources `_include` / `_revinclude` add to them, compartment search, and the result
 * shaping of `_summary` / `_elements`, assembled into a searchset Bundle.
 */
import { FhirError } from '../fhir/fhir-error.js';
import { pagingLinks, searchsetBundleJson, type SearchsetEntry } from '../fhir/bundle-builders.js';
import { patientCompartmentParams } from '../fhir/patient-compartment.js';
import type { Resource } from '../fhir/resource.js';
import { shapeResource, type ElementSummaries } from '../fhir/result-shaping.js';
import type { SearchIndexExtractor } from '../fhir/search-index/search-index-extractor.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import type { ParsedSearch } from '../fhir/search-query-parser.js';
import type { IncludeDirective, SearchQuery } from '../fhir/search-query.js';
import type { ResourceKey, StoredVersion, StoreReader } from '../store/store.js';
import type { SearchRestriction } from '../auth/access-policy.js';
import type { ResourceService } from './resource-service.js';

export interface SearchRequest {
  resourceType: string | null;
  entries: [string, string][];
  strict: boolean;
  baseUrl: string;
  /** Compartment search: `Patient/{id}/{type}`. */
  compartment?: { ownerType: string; ownerId: string };
  /** The access policy's hooks for the request's context (services/interaction-executor.ts). */
  access?: SearchAccess;
}

/** How the access policy takes part in a search (auth/access-policy.ts). */
export interface SearchAccess {
  /** ANDed into the match, the revincludes and every other search made for it. */
  restriction(resourceType: string | null): SearchRestriction | undefined;
  /** After: may this resource be returned (matches and includes)? */
  mayReturn(resource: Resource): boolean;
}

/** Upper bound of resources `_include`/`_revinclude` add to one page. */
const MAX_INCLUDED = 1000;
/** `:iterate` rounds (search.html#revinclude: servers may limit iteration). */
const MAX_ITERATIONS = 3;

export class SearchService {
  constructor(
    private readonly resources: ResourceService,
    private readonly registry: SearchParameterRegistry,
    private readonly extractor: SearchIndexExtractor,
    private readonly summaries: ElementSummaries,
    /** Where includes are read when the search runs outside a transaction. */
    private readonly store: StoreReader,
  ) {}

  async searchBundle(request: SearchRequest, reader?: StoreReader): Promise<Resource> {
    return JSON.parse(await this.searchBundleJson(request, reader)) as Resource;
  }

  /** The searchset Bundle as JSON text, ready to send (stored resources are not re-serialized). */
  async searchBundleJson(request: SearchRequest, reader?: StoreReader): Promise<string> {
    const parsed = await this.resources.parseSearch(request.resourceType, request.entries, { strict: request.strict, baseUrl: request.baseUrl });
    if (request.compartment) await this.restrictToCompartment(parsed.query, request.compartment);
    const access = request.access;
    if (access) await this.resources.restrictSearch(parsed.query, access.restriction(parsed.query.resourceType));
    const page = await this.resources.search(parsed, reader);
    // The restriction was ANDed into the query; this filter is the second line of defence.
    if (access) page.versions = page.versions.filter((v) => access.mayReturn(JSON.parse(v.json!) as Resource));
    const included = parsed.query.countOnly ? [] : (await this.included(page.versions, parsed, reader ?? this.store, access))
      .filter((v) => !access || access.mayReturn(JSON.parse(v.json!) as Resource));

    const { baseUrl } = request;
    const selfBase = request.compartment
      ? `${baseUrl}/${request.compartment.ownerType}/${request.compartment.ownerId}/${request.resourceType}`
      : request.resourceType ? `${baseUrl}/${request.resourceType}` : baseUrl;
    const linkEntries = [...request.entries.filter(([n]) => n !== '_snapshot'), ['_snapshot', page.snapshot] as [string, string]];
    const { count, offset } = parsed.query;
    const links = pagingLinks(selfBase, linkEntries, offset, parsed.query.countOnly ? 0 : count, page.versions.length, page.total, page.hasMore);
    const reshaping = parsed.result.summary !== 'false' || parsed.result.elements !== undefined;
    const shape = (v: StoredVersion): Resource | undefined => (reshaping
      ? shapeResource(JSON.parse(v.json!) as Resource, parsed.result.summary, parsed.result.elements, this.summaries)
      : undefined);
    const entries: SearchsetEntry[] = [
      ...page.versions.map((v) => ({ version: v, resource: shape(v), mode: 'match' as const })),
      ...included.map((v) => ({ version: v, resource: shape(v), mode: 'include' as const })),
    ];
    return searchsetBundleJson(baseUrl, entries, page.total, links, parsed.ignored);
  }

  /**
   * http.html#read: `_summary` and `_elements` shape a read as they shape a search's matches
   * (tagged SUBSETTED). The version as stored when neither is given; a 400 for a value the
   * search parser refuses, and for `_summary=count`, which only a search can answer.
   */
  async shapeForRead(version: StoredVersion, entries: [string, string][]): Promise<StoredVersion> {
    const wanted = entries.filter(([name]) => name === '_summary' || name === '_elements');
    if (wanted.length === 0 || version.json === null) return version;
    const parsed = await this.resources.parseSearch(version.resourceType, wanted, { strict: true, baseUrl: '' });
    if (parsed.query.countOnly) throw FhirError.badRequest('_summary=count applies to searches, not to a read', 'invalid');
    if (parsed.result.summary === 'false' && parsed.result.elements === undefined) return version;
    const shaped = shapeResource(JSON.parse(version.json) as Resource, parsed.result.summary, parsed.result.elements, this.summaries);
    return { ...version, json: JSON.stringify(shaped) };
  }

  /** R4 http.html#search compartments: `Patient/{id}/Observation`. */
  private async restrictToCompartment(query: SearchQuery, compartment: { ownerType: string; ownerId: string }): Promise<void> {
    if (compartment.ownerType !== 'Patient') throw FhirError.notSupported('Only the Patient compartment is supported', 404);
    const type = query.resourceType!;
    const params = patientCompartmentParams(type)
      .map((code) => this.registry.get(type, code))
      .filter((p): p is NonNullable<typeof p> => p !== undefined && p.type === 'reference');
    if (params.length === 0) throw FhirError.badRequest(`${type} is not in the Patient compartment`, 'not-supported');
    // The owner's id as stored: an EHR's own patient id goes through the vault (deid/).
    const ownerId = await this.resources.storedIdFor(compartment.ownerType, compartment.ownerId);
    query.compartment = { ...compartment, ownerId, params };
  }

  /** search.html#include and #revinclude, with `:iterate` up to MAX_ITERATIONS rounds. */
  private async included(matches: StoredVersion[], parsed: ParsedSearch, reader: StoreReader, access: SearchAccess | undefined): Promise<StoredVersion[]> {
    const { include, revinclude } = parsed.result;
    if (include.length === 0 && revinclude.length === 0) return [];
    const seen = new Set(matches.map((v) => `${v.resourceType}/${v.id}`));
    const added: StoredVersion[] = [];
    let frontier = matches;
    for (let round = 0; round < MAX_ITERATIONS && frontier.length > 0 && added.length < MAX_INCLUDED; round++) {
      const next: StoredVersion[] = [];
      const keep = (v: StoredVersion) => {
        const key = `${v.resourceType}/${v.id}`;
        if (seen.has(key) || v.deleted || added.length + next.length >= MAX_INCLUDED) return;
        // What may not be returned is not walked through either (`:iterate` would reach past it).
        if (access && !access.mayReturn(JSON.parse(v.json!) as Resource)) return;
        seen.add(key);
        next.push(v);
      };
      for (const directive of include.filter((d) => round === 0 || d.iterate)) {
        for (const v of await this.forwardIncludes(directive, frontier, reader)) keep(v);
      }
      for (const directive of revinclude.filter((d) => round === 0 || d.iterate)) {
        for (const v of await this.reverseIncludes(directive, frontier, reader, access)) keep(v);
      }
      added.push(...next);
      frontier = next;
    }
    return added;
  }

  /**
   * The resources that `directive.param` of the frontier's resources points to, read in one
   * batch (StoreReader.readCurrentMany), not one read per reference.
   */
  private async forwardIncludes(directive: IncludeDirective, frontier: StoredVersion[], reader: StoreReader): Promise<StoredVersion[]> {
    const targets: ResourceKey[] = [];
    for (const source of frontier) {
      if (source.resourceType !== directive.sourceType || !source.json) continue;
      const entries = this.extractor.extract(JSON.parse(source.json) as Resource);
      for (const entry of entries) {
        if (entry.kind !== 'reference' || entry.param !== directive.param.code || !entry.targetType || !entry.targetId) continue;
        if (directive.targetType !== undefined && entry.targetType !== directive.targetType) continue;
        targets.push({ resourceType: entry.targetType, id: entry.targetId });
      }
    }
    if (targets.length === 0) return [];
    return (await reader.readCurrentMany(targets)).filter((target) => !target.deleted);
  }

  /** The resources of `directive.sourceType` whose `directive.param` points to the frontier. */
  private async reverseIncludes(directive: IncludeDirective, frontier: StoredVersion[], reader: StoreReader,
    access: SearchAccess | undefined): Promise<StoredVersion[]> {
    const targets = frontier.filter((v) => directive.targetType === undefined || v.resourceType === directive.targetType);
    if (targets.length === 0) return [];
    const query: SearchQuery = {
      resourceType: directive.sourceType,
      criteria: [{
        param: directive.param,
        modifier: undefined,
        values: targets.map((v) => ({ kind: 'reference' as const, targetType: v.resourceType, targetId: v.id, url: undefined })),
      }],
      sort: [], count: MAX_INCLUDED, offset: 0, total: 'none', countOnly: false,
    };
    if (access) await this.resources.restrictSearch(query, access.restriction(query.resourceType));
    return (await reader.search(query)).versions;
  }
}
