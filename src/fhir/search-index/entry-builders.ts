/**
 * From result nodes to index entries: the builder of each search parameter type
 * (FHIR R4 search.html, one section per type), and the identity of an entry for de-duplication.
 */
import type { SearchIndexEntry, SearchParamType } from '../search-index-entry.js';
import type { EntryBuilder } from './entry-values.js';
import { buildDate } from './date-entries.js';
import { buildNumber, buildQuantity } from './number-quantity-entries.js';
import { buildReference, buildUri } from './reference-uri-entries.js';
import { buildString, buildToken } from './string-token-entries.js';

export type { EntryBuilder } from './entry-values.js';
export { buildToken, buildUri };

export const BUILDERS: Partial<Record<SearchParamType, EntryBuilder>> = {
  string: buildString,
  token: buildToken,
  date: buildDate,
  number: buildNumber,
  quantity: buildQuantity,
  reference: buildReference,
  uri: buildUri,
};

export function entryKey(e: SearchIndexEntry): string {
  switch (e.kind) {
    case 'string': return `${e.value}\u0000${e.raw}`;
    case 'token': return `${e.system}\u0000${e.code}\u0000${e.text}\u0000${e.ofType ?? ''}`;
    case 'date': return `${e.low}\u0000${e.high}`;
    case 'number': return `${e.value}\u0000${e.low}\u0000${e.high}`;
    case 'quantity': return `${e.value}\u0000${e.low}\u0000${e.high}\u0000${e.system}\u0000${e.code}\u0000${e.unit}`;
    case 'reference': return `${e.targetType}\u0000${e.targetId}\u0000${e.url}\u0000${e.identifierSystem ?? ''}\u0000${e.identifierValue ?? ''}`;
    case 'uri': return e.value;
    case 'composite': return `${entryKey(e.first)}\u0001${entryKey(e.second)}`;
  }
}

/** Drops repeated entries of one parameter (out[from..] all belong to it). */
export function dedupeFrom(out: SearchIndexEntry[], from: number): void {
  if (out.length - from < 2) return;
  const seen = new Set<string>();
  let w = from;
  for (let r = from; r < out.length; r++) {
    const key = entryKey(out[r]);
    if (seen.has(key)) continue;
    seen.add(key);
    out[w++] = out[r];
  }
  out.length = w;
}
