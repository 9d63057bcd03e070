/**
 * Resources, versions and queries for store tests: what the service layer would hand a store
 * (server-owned meta, extracted index entries, the version's ledger leaf) and a search as the
 * REST layer would parse it.
 */
import type { Resource } from '../../../src/fhir/resource.js';
import { SearchIndexExtractor } from '../../../src/fhir/search-index/search-index-extractor.js';
import { SearchParameterRegistry } from '../../../src/fhir/search-parameter-registry.js';
import { parseSearchQuery } from '../../../src/fhir/search-query-parser.js';
import type { SearchQuery } from '../../../src/fhir/search-query.js';
import { newVersionLeaf } from '../../../src/ledger/version-leaf.js';
import type { NewVersion, StoredVersion } from '../../../src/store/store.js';

export const registry = SearchParameterRegistry.loadR4();
const extractor = new SearchIndexExtractor(registry);

/**
 * A search as the REST layer would parse it; strict, so a typo in a test fails loudly. The
 * parser's limits are an operator's to raise (SEARCH_MAX_*): a store must answer far beyond them.
 */
export function query(resourceType: string | null, entries: [string, string][]): SearchQuery {
  return parseSearchQuery(resourceType, [...entries, ['_total', 'accurate']], registry, {
    defaultCount: 100, maxCount: 1000, strict: true,
    limits: { maxSortKeys: 8, maxOrValues: 10_000, maxAndRepetitions: 2_000, maxParameters: 20_000 },
  }).query;
}

export function patient(id: string, family: string, identifier = `mrn-${id}`): Resource {
  return {
    resourceType: 'Patient', id, name: [{ family, given: ['Test'] }],
    identifier: [{ system: 'urn:test:mrn', value: identifier }], birthDate: '1970-01-01',
  };
}

export function observation(id: string, code: string | string[], subject = 'Patient/p1'): Resource {
  const codes = Array.isArray(code) ? code : [code];
  return {
    resourceType: 'Observation', id, status: 'final',
    code: { coding: codes.map((c) => ({ system: 'http://loinc.org', code: c })) }, subject: { reference: subject },
  };
}

/** The version the service layer would write: meta owned by the server, index entries extracted, its leaf. */
export function versionOf(resource: Resource, versionId: number, lastUpdated = new Date().toISOString()): NewVersion {
  const stored: Resource = { ...resource, meta: { versionId: String(versionId), lastUpdated } };
  const content = { resourceType: resource.resourceType, id: resource.id!, versionId, lastUpdated, json: JSON.stringify(stored) };
  return { ...content, indexEntries: extractor.extract(stored), leaf: newVersionLeaf(content) };
}

export function deletionOf(resourceType: string, id: string, versionId: number, lastUpdated = new Date().toISOString()): NewVersion {
  const content = { resourceType, id, versionId, lastUpdated, json: null };
  return { ...content, indexEntries: [], leaf: newVersionLeaf(content) };
}

export function familyOf(version: StoredVersion | undefined): string | undefined {
  return version?.json ? (JSON.parse(version.json) as { name: { family: string }[] }).name[0]!.family : undefined;
}

export function ids(versions: StoredVersion[]): string[] {
  return versions.map((v) => v.id).sort();
}

export function label(v: StoredVersion): string {
  return `${v.resourceType}/${v.id}/${v.versionId}`;
}
