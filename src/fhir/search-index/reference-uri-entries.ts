/**
 * Reference and uri index entries (FHIR R4 search.html#reference, search.html#uri).
 */
import type { ReferenceIndexEntry, UriIndexEntry } from '../search-index-entry.js';
import { isObject, str, type EntryBuilder } from './entry-values.js';
import { parseReference } from './search-value-normalisation.js';

/**
 * search.html#reference: a Reference's literal reference (parseReference). Canonical and uri
 * elements under a reference parameter (e.g. PlanDefinition.relatedArtifact.resource) keep only
 * their url: a canonical names a version-independent artifact, not a local resource id.
 * Reference.identifier is kept for `:identifier`, also when it is the reference's only content.
 */
export const buildReference: EntryBuilder = (param, data, type, out, baseUrl) => {
  if (typeof data === 'string') {
    if (data.length === 0) return;
    const entry: ReferenceIndexEntry = { param, kind: 'reference', targetType: null, targetId: null, url: data };
    out.push(entry);
    return;
  }
  if (type !== 'Reference' || !isObject(data)) return;
  // search.html#reference :identifier matches Reference.identifier, which may stand alone.
  const identifier = isObject(data.identifier) ? data.identifier : undefined;
  const identifierFields = identifier && str(identifier.value) !== null
    ? { identifierSystem: str(identifier.system), identifierValue: str(identifier.value) } : {};
  if (typeof data.reference !== 'string' || data.reference.length === 0) {
    if (identifierFields.identifierValue) out.push({ param, kind: 'reference', targetType: null, targetId: null, url: '', ...identifierFields });
    return;
  }
  const ref = parseReference(data.reference, baseUrl);
  const entry: ReferenceIndexEntry = { param, kind: 'reference', targetType: ref.targetType, targetId: ref.targetId, url: ref.url, ...identifierFields };
  out.push(entry);
};

/** search.html#uri: uri, url and canonical values, matched as written. */
export const buildUri: EntryBuilder = (param, data, _type, out) => {
  if (typeof data !== 'string' || data.length === 0) return;
  const entry: UriIndexEntry = { param, kind: 'uri', value: data };
  out.push(entry);
};
