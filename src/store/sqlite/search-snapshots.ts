/**
 * The result sets of paged searches, so that every page of a search is cut from the one ordered
 * list of matches its first page came from (issue: search, "a result page stays consistent
 * while writes continue"; FHIR R4 http.html#paging leaves how to the server).
 *
 * A paging token (`_snapshot`) names the store's position when the first page was served: the
 * last version written (`seq`) and the last resource created (`rid`), and the query it was
 * served for (a digest of what decides the matches and their order), as `seq-rid-digest`. When
 * the first page has a next page, the rids of up to MAX_SNAPSHOT_RIDS matches are kept here, in
 * result order, under the token; later pages take their slice of that list and show each resource as
 * it was at the token's `seq`. So a resource updated or deleted after the first page keeps its
 * place and its content, and nothing created later joins in. Beyond the list, or once a list
 * has been evicted (capacity, age, a restart), pages fall back to the live query limited to
 * resources that existed at the token: new resources still stay out, but updated ones may move.
 */
import { createHash } from 'node:crypto';
import type { SearchParameterDefinition } from '../../fhir/search-parameter-registry.js';
import type { SearchQuery } from '../../fhir/search-query.js';

/** How many matches of one search are kept (500 pages of 20). */
export const MAX_SNAPSHOT_RIDS = 10_000;

export interface SearchSnapshot {
  /** The matching rids, in result order, as the first page saw them. */
  rids: number[];
  /** False when the matches went on beyond MAX_SNAPSHOT_RIDS. */
  complete: boolean;
}

/** The store position a paging token names. */
export interface SnapshotPosition {
  seq: number;
  rid: number;
}

/** What a paging token carries: a position and the digest of the query it was issued for. */
export interface SnapshotToken extends SnapshotPosition {
  queryDigest: string;
}

export function snapshotToken(token: SnapshotToken): string {
  return `${token.seq}-${token.rid}-${token.queryDigest}`;
}

/** The parts of a token from a paging link; undefined for anything else. */
export function parseSnapshotToken(token: string): SnapshotToken | undefined {
  const match = /^(\d{1,15})-(\d{1,15})-([0-9a-f]{16})$/.exec(token);
  return match ? { seq: Number(match[1]), rid: Number(match[2]), queryDigest: match[3]! } : undefined;
}

/**
 * A digest of what decides a search's matches and their order: type(s), criteria, sort and
 * compartments (the access policy's too: a token never crosses principals), not its page (`_count`, `_offset`), `_total` or `_summary`. Search parameter
 * definitions count by their type and code. Not secret: a client that forges a digest only
 * gets its own query's results.
 */
export function searchQueryDigest(query: SearchQuery): string {
  const identity = {
    resourceType: query.resourceType, types: query.types, criteria: query.criteria,
    sort: query.sort, compartment: query.compartment, accessCompartment: query.accessCompartment,
  };
  const text = JSON.stringify(identity, (key, value: unknown) =>
    (isSearchParameterDefinition(value) ? `${value.resourceType}.${value.code}` : value));
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function isSearchParameterDefinition(value: unknown): value is SearchParameterDefinition {
  return typeof value === 'object' && value !== null && 'code' in value && 'expression' in value && 'url' in value;
}

/** A bounded, time-limited LRU of result lists, keyed by token. */
export class SearchSnapshots {
  private readonly entries = new Map<string, { snapshot: SearchSnapshot; expiresAt: number }>();

  constructor(private readonly capacity = 200, private readonly ttlMs = 30 * 60_000, private readonly now = () => Date.now()) {}

  remember(key: string, snapshot: SearchSnapshot): void {
    this.entries.delete(key);
    this.entries.set(key, { snapshot, expiresAt: this.now() + this.ttlMs });
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  get(key: string): SearchSnapshot | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt < this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Re-inserted: most recently used last; its age counts from the latest page read.
    this.remember(key, entry.snapshot);
    return entry.snapshot;
  }
}
