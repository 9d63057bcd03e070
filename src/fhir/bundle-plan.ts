/**
 * Planning of batch/transaction bundles (FHIR R4 http.html#transaction): reading each entry's
 * request, parsing its URL into an interaction, and the processing order of a transaction.
 * Pure: no I/O, no store.
 */
import { FhirError } from './fhir-error.js';
import { isResourceObject, isValidResourceId, type Resource } from './resource.js';
import type { VersionView } from './bundle-builders.js';

export type EntryMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type EntryInteraction =
  | 'type' | 'instance' | 'vread' | 'search' | 'read' | 'instance-history' | 'type-history' | 'system-history';

export interface EntryTarget {
  interaction: EntryInteraction;
  resourceType?: string;
  id?: string;
  versionId?: string;
  /** The query string after `?` (conditional operations, searches). */
  query?: string;
  queryEntries: [string, string][];
}

export interface BundleEntryRequest {
  index: number;
  method: EntryMethod;
  url: string;
  fullUrl?: string;
  resource?: Resource;
  ifNoneExist?: string;
  ifMatch?: string;
  target: EntryTarget;
  /** Set while planning a transaction: the id a POST entry gets. */
  assignedId?: string;
  /** Set while planning: the existing resource a conditional create matched. */
  matchedExisting?: VersionView;
}

const METHODS: readonly EntryMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

function entryError(index: number, diagnostics: string, suffix = ''): FhirError {
  const where = `Bundle.entry[${index}]${suffix}`;
  return FhirError.badRequest(`${where}: ${diagnostics}`, 'invalid', [where]);
}

/**
 * `Patient`, `Patient/1`, `Patient/1/_history/2`, `Patient?x=y`, `_history`… relative to the
 * base; an absolute URL on this server's base is accepted too.
 */
export function parseEntryUrl(url: string, baseUrl?: string): EntryTarget | undefined {
  let rest = url;
  if (baseUrl && rest.startsWith(`${baseUrl}/`)) rest = rest.slice(baseUrl.length + 1);
  if (/^[a-z]+:/i.test(rest)) return undefined; // absolute URL on another server
  rest = rest.replace(/^\/+/, '');
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? undefined : rest.slice(q + 1);
  const queryEntries = query ? [...new URLSearchParams(query)] : [];
  const parts = path.split('/').filter((p) => p !== '');
  const withQuery = query !== undefined ? { query } : {};
  if (parts.length === 1 && parts[0] === '_history') return { interaction: 'system-history', queryEntries, ...withQuery };
  const [resourceType, second, third, fourth] = parts;
  if (!resourceType || !/^[A-Z][A-Za-z]+$/.test(resourceType)) return undefined;
  if (parts.length === 1) return { interaction: query !== undefined ? 'search' : 'type', resourceType, queryEntries, ...withQuery };
  if (parts.length === 2 && second === '_history') return { interaction: 'type-history', resourceType, queryEntries, ...withQuery };
  if (!isValidResourceId(second!)) return undefined;
  if (parts.length === 2) return { interaction: 'instance', resourceType, id: second!, queryEntries, ...withQuery };
  if (parts.length === 3 && third === '_history') return { interaction: 'instance-history', resourceType, id: second!, queryEntries, ...withQuery };
  if (parts.length === 4 && third === '_history') return { interaction: 'vread', resourceType, id: second!, versionId: fourth!, queryEntries };
  return undefined;
}

/** Reads and checks `entry.request` (and `entry.resource`) of one bundle entry. */
export function entryRequestOf(entry: unknown, index: number, baseUrl?: string): BundleEntryRequest {
  if (typeof entry !== 'object' || entry === null) throw entryError(index, 'an entry must be an object');
  const { request, resource, fullUrl } = entry as { request?: Record<string, unknown>; resource?: unknown; fullUrl?: unknown };
  if (!request || typeof request !== 'object') throw entryError(index, 'entry.request is required in a batch or transaction', '.request');
  const method = request.method;
  if (typeof method !== 'string' || !METHODS.includes(method as EntryMethod)) {
    throw entryError(index, 'request.method must be GET, HEAD, POST, PUT, PATCH or DELETE', '.request.method');
  }
  if (typeof request.url !== 'string' || request.url === '') throw entryError(index, 'request.url is required', '.request.url');
  const target = parseEntryUrl(request.url, baseUrl);
  if (!target) throw entryError(index, 'request.url is not a URL this server can process', '.request.url');
  if (resource !== undefined && !isResourceObject(resource)) throw entryError(index, 'entry.resource must be a resource', '.resource');
  const parsed: BundleEntryRequest = { index, method: method as EntryMethod, url: request.url, target };
  if (typeof fullUrl === 'string') parsed.fullUrl = fullUrl;
  if (resource !== undefined) parsed.resource = structuredClone(resource) as Resource;
  if (typeof request.ifNoneExist === 'string') parsed.ifNoneExist = request.ifNoneExist;
  if (typeof request.ifMatch === 'string') parsed.ifMatch = request.ifMatch;
  checkShape(parsed);
  return parsed;
}

function checkShape(request: BundleEntryRequest): void {
  const { method, target, index, resource } = request;
  const needsResource = method === 'POST' || method === 'PUT' || method === 'PATCH';
  if (needsResource && !resource) throw entryError(index, `a ${method} entry needs entry.resource`, '.resource');
  switch (method) {
    case 'POST':
      if (target.interaction !== 'type') throw entryError(index, 'a POST entry url is the resource type, e.g. "Patient"', '.request.url');
      if (resource!.resourceType !== target.resourceType) throw entryError(index, 'resource type does not match request.url', '.resource');
      break;
    case 'PUT':
      if (target.interaction !== 'instance' && target.interaction !== 'search') {
        throw entryError(index, 'a PUT entry url is Type/id or Type?criteria', '.request.url');
      }
      if (resource!.resourceType !== target.resourceType) throw entryError(index, 'resource type does not match request.url', '.resource');
      break;
    case 'PATCH':
    case 'DELETE':
      if (target.interaction !== 'instance' && target.interaction !== 'search') {
        throw entryError(index, `a ${method} entry url is Type/id or Type?criteria`, '.request.url');
      }
      break;
    default:
      if (target.interaction === 'type') target.interaction = 'search';
      if (target.interaction === 'instance') target.interaction = 'read';
  }
}

/** FHIR R4 http.html#trules: DELETE, then POST, then PUT/PATCH, then GET/HEAD; stable within each. */
export function transactionOrder(requests: BundleEntryRequest[]): BundleEntryRequest[] {
  const rank: Record<EntryMethod, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
  return [...requests].sort((a, b) => rank[a.method] - rank[b.method] || a.index - b.index);
}
