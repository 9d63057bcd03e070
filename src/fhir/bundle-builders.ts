/**
 * Builders of the Bundles the server returns: searchset (search.html#bundle), history
 * (http.html#history) and the entry.response of batch/transaction responses
 * (http.html#transaction-response). Pure functions over stored versions.
 */
import { operationOutcome, type OperationOutcome } from './fhir-error.js';
import type { Resource } from './resource.js';
import type { IgnoredSearchParameter } from './search-query.js';

/** What the builders need of a stored version (structurally the store's StoredVersion). */
export interface VersionView {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  json: string | null;
}

export interface BundleLink { relation: string; url: string }

export function versionLocation(baseUrl: string, v: VersionView): string {
  return `${baseUrl}/${v.resourceType}/${v.id}/_history/${v.versionId}`;
}

export function weakETag(versionId: number): string {
  return `W/"${versionId}"`;
}

/** Paging links (absolute URLs, search.html#paging) from the query minus paging parameters. */
export function pagingLinks(selfUrlBase: string, params: [string, string][], offset: number, count: number,
  pageLength: number, total: number | undefined, hasMore?: boolean): BundleLink[] {
  const kept = params.filter(([name]) => name !== '_offset');
  const url = (o: number) => {
    const search = new URLSearchParams(kept);
    // The page size in force, not the one asked for (_count is capped by MAX_PAGE_SIZE).
    if (count > 0 && search.has('_count')) search.set('_count', String(count));
    if (o > 0) search.set('_offset', String(o));
    const text = search.toString();
    return text ? `${selfUrlBase}?${text}` : selfUrlBase;
  };
  const links: BundleLink[] = [{ relation: 'self', url: url(offset) }];
  if (count > 0) {
    links.push({ relation: 'first', url: url(0) });
    if (offset > 0) links.push({ relation: 'previous', url: url(Math.max(0, offset - count)) });
    const more = hasMore ?? (total !== undefined ? offset + pageLength < total : pageLength === count);
    if (more) links.push({ relation: 'next', url: url(offset + count) });
  }
  return links;
}

function ignoredOutcome(ignored: IgnoredSearchParameter[]): OperationOutcome {
  return operationOutcome(ignored.map((i) => ({ severity: 'warning', code: 'not-supported', diagnostics: i.reason })));
}

/**
 * One searchset entry: a match or an included resource. `resource` when it was reshaped
 * (`_summary`, `_elements`); otherwise the stored JSON text is spliced in as it is.
 */
export interface SearchsetEntry {
  version: VersionView;
  resource?: Resource;
  mode: 'match' | 'include';
}

/** A placeholder no JSON value of ours can equal; replaced by stored JSON text after stringify. */
const rawPlaceholder = (index: number) => `__fhir_ledger_raw_${index}__`;
const RAW_PLACEHOLDER = /"__fhir_ledger_raw_(\d+)__"/g;

/**
 * The searchset Bundle as JSON text. Stored resources are not parsed and re-serialized: their
 * JSON text goes into the Bundle as it is, which is most of the work of a search response.
 */
export function searchsetBundleJson(baseUrl: string, entries: SearchsetEntry[], total: number | undefined,
  links: BundleLink[], ignored: IgnoredSearchParameter[]): string {
  const raws: string[] = [];
  const entry: unknown[] = entries.map(({ version: v, resource, mode }) => {
    let body: unknown = resource;
    if (body === undefined) {
      raws.push(v.json!);
      body = rawPlaceholder(raws.length - 1);
    }
    return { fullUrl: `${baseUrl}/${v.resourceType}/${v.id}`, resource: body, search: { mode } };
  });
  // search.html#errors: parameters the server ignored are reported in an outcome entry.
  if (ignored.length > 0) entry.push({ resource: ignoredOutcome(ignored), search: { mode: 'outcome' } });
  const skeleton = JSON.stringify({
    resourceType: 'Bundle',
    type: 'searchset',
    ...(total !== undefined ? { total } : {}),
    link: links,
    ...(entry.length > 0 ? { entry } : {}),
  });
  return raws.length === 0 ? skeleton : skeleton.replace(RAW_PLACEHOLDER, (_, i: string) => raws[Number(i)]!);
}

/** The searchset Bundle as an object (bundle entries of a batch/transaction response). */
export function searchsetBundle(baseUrl: string, entries: SearchsetEntry[], total: number | undefined,
  links: BundleLink[], ignored: IgnoredSearchParameter[]): Resource {
  return JSON.parse(searchsetBundleJson(baseUrl, entries, total, links, ignored)) as Resource;
}

export function historyBundle(baseUrl: string, versions: VersionView[], total: number, links: BundleLink[]): Resource {
  const entry = versions.map((v) => {
    const url = `${v.resourceType}/${v.id}`;
    // A version is a create when it is the first; deletes carry no resource (http.html#history).
    const method = v.deleted ? 'DELETE' : v.versionId === 1 ? 'POST' : 'PUT';
    return {
      fullUrl: `${baseUrl}/${url}`,
      ...(v.json ? { resource: JSON.parse(v.json) } : {}),
      request: { method, url: method === 'POST' ? v.resourceType : url },
      response: {
        status: v.deleted ? '204 No Content' : v.versionId === 1 ? '201 Created' : '200 OK',
        etag: weakETag(v.versionId),
        lastModified: v.lastUpdated,
      },
    };
  });
  return {
    resourceType: 'Bundle',
    type: 'history',
    total,
    link: links,
    ...(entry.length > 0 ? { entry } : {}),
  };
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 204: '204 No Content', 400: '400 Bad Request', 401: '401 Unauthorized',
  403: '403 Forbidden', 404: '404 Not Found', 405: '405 Method Not Allowed', 409: '409 Conflict', 410: '410 Gone',
  412: '412 Precondition Failed', 413: '413 Payload Too Large', 422: '422 Unprocessable Entity', 500: '500 Internal Server Error',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? String(status);
}
