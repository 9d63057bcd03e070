/**
 * What an index entry builder is, and the small JSON readers the builders share.
 */
import type { SearchIndexEntry } from '../search-index-entry.js';

/**
 * Turns one result node of a search expression (its JSON value and FHIR type) into the index
 * entries of parameter `param`, appended to `out`.
 */
export type EntryBuilder = (param: string, data: unknown, type: string, out: SearchIndexEntry[], baseUrl: string | undefined) => void;

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-empty string, else null. */
export function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}
