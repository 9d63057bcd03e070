/**
 * Planning of batch/transaction bundles (FHIR R4 http.html#transaction): reading each entry's
 * request into the same interaction a REST request becomes (fhir/interaction.ts), and the
 * processing order of a transaction. Pure: no I/O, no store.
 */
import { FhirError } from './fhir-error.js';
import { parseInteraction, type Interaction } from './interaction.js';
import { isResourceObject, type Resource } from './resource.js';

export interface BundleEntryRequest {
  index: number;
  /** The interaction the entry's request names; its body is the entry's resource (or JSON Patch). */
  interaction: Interaction;
  fullUrl?: string;
  /** entry.resource, copied: planning never changes the request Bundle. */
  resource?: Resource;
}

function entryError(index: number, diagnostics: string, suffix = ''): FhirError {
  const where = `Bundle.entry[${index}]${suffix}`;
  return FhirError.badRequest(`${where}: ${diagnostics}`, 'invalid', [where]);
}

/** `request.url` relative to the base: an absolute URL is accepted on this server's base only. */
function relativeEntryUrl(url: string, index: number, baseUrl: string | undefined): string {
  if (baseUrl && (url === baseUrl || url.startsWith(`${baseUrl}/`) || url.startsWith(`${baseUrl}?`))) return url.slice(baseUrl.length);
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) throw entryError(index, 'request.url is an absolute URL on another server', '.request.url');
  return url;
}

/** Reads and checks `entry.request` (and `entry.resource`) of one bundle entry. */
export function entryRequestOf(entry: unknown, index: number, baseUrl?: string): BundleEntryRequest {
  if (typeof entry !== 'object' || entry === null) throw entryError(index, 'an entry must be an object');
  const { request, resource, fullUrl } = entry as { request?: Record<string, unknown>; resource?: unknown; fullUrl?: unknown };
  if (!request || typeof request !== 'object') throw entryError(index, 'entry.request is required in a batch or transaction', '.request');
  const method = request.method;
  if (typeof method !== 'string' || !['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
    throw entryError(index, 'request.method must be GET, HEAD, POST, PUT, PATCH or DELETE', '.request.method');
  }
  if (typeof request.url !== 'string' || request.url === '') throw entryError(index, 'request.url is required', '.request.url');
  if (resource !== undefined && !isResourceObject(resource)) throw entryError(index, 'entry.resource must be a resource', '.resource');
  const conditions = {
    ...(typeof request.ifMatch === 'string' ? { ifMatch: request.ifMatch } : {}),
    ...(typeof request.ifNoneExist === 'string' ? { ifNoneExist: request.ifNoneExist } : {}),
  };
  let interaction: Interaction;
  try {
    interaction = parseInteraction(method, relativeEntryUrl(request.url, index, baseUrl), conditions);
  } catch (error) {
    // The same grammar and the same status as REST (404 no such interaction, 405 method), located at the entry.
    if (!(error instanceof FhirError)) throw error;
    const located = entryError(index, error.issues[0]?.diagnostics ?? 'not a FHIR interaction', '.request.url');
    throw new FhirError(error.status, located.issues, error.headers);
  }
  const parsed: BundleEntryRequest = { index, interaction };
  if (typeof fullUrl === 'string') parsed.fullUrl = fullUrl;
  if (resource !== undefined) parsed.resource = structuredClone(resource) as Resource;
  attachBody(parsed);
  return parsed;
}

/** The entry's resource as the body its interaction takes (http.html#transaction). */
function attachBody(request: BundleEntryRequest): void {
  const { interaction, index, resource } = request;
  switch (interaction.kind) {
    case 'create':
    case 'update':
    case 'conditional-update':
      if (!resource) throw entryError(index, `a ${interaction.method} entry needs entry.resource`, '.resource');
      if (resource.resourceType !== interaction.resourceType) throw entryError(index, 'resource type does not match request.url', '.resource');
      interaction.body = resource;
      return;
    case 'patch':
    case 'conditional-patch':
      interaction.body = patchOperations(request);
      return;
    case 'operation':
      if (resource) interaction.body = resource;
      return;
    case 'bundle':
      throw entryError(index, 'an entry may not POST a Bundle to the base (nested batch or transaction)', '.request.url');
    default:
  }
}

function patchOperations(request: BundleEntryRequest): unknown {
  // A JSON Patch travels in a bundle as a Binary (R4 http.html#patch: "binary resource").
  const { resource, index } = request;
  if (!resource) throw entryError(index, 'a PATCH entry needs entry.resource', '.resource');
  if (resource.resourceType === 'Binary' && typeof resource.data === 'string') {
    try {
      return JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8'));
    } catch {
      throw entryError(index, 'the Binary of a PATCH entry must hold a base64 JSON Patch document', '.resource');
    }
  }
  throw entryError(index, 'a PATCH entry needs a Binary resource holding a JSON Patch document', '.resource');
}

/** FHIR R4 http.html#trules: DELETE, then POST, then PUT/PATCH, then GET/HEAD; stable within each. */
export function transactionOrder(requests: BundleEntryRequest[]): BundleEntryRequest[] {
  return [...requests].sort((a, b) => transactionStep(a) - transactionStep(b) || a.index - b.index);
}

export function transactionStep(request: BundleEntryRequest): number {
  switch (request.interaction.method) {
    case 'DELETE': return 0;
    case 'POST': return request.interaction.kind === 'create' ? 1 : 3;
    case 'PUT': case 'PATCH': return 2;
    default: return 3;
  }
}
