/**
 * The Store port (DESIGN.md: the router knows a repository interface, not a database).
 * Adapters (store/sqlite, later store/postgres) implement it; nothing outside store/ sees SQL
 * or driver types. All methods are async so that a networked database fits the same seam.
 */
import type { SearchIndexEntry } from '../fhir/search-index-entry.js';
import type { SearchQuery } from '../fhir/search-query.js';

/** One stored version of a resource, as the store hands it out. */
export interface StoredVersion {
  resourceType: string;
  id: string;
  versionId: number;
  /** ISO 8601 instant with milliseconds, UTC. */
  lastUpdated: string;
  deleted: boolean;
  /** The resource JSON text exactly as stored (meta included); null for a delete version. */
  json: string | null;
}

/** A version to append, prepared by the service layer. */
export interface NewVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  /** null for a delete version. */
  json: string | null;
  /** Index entries of this version; empty for a delete. Replace the previous version's rows. */
  indexEntries: SearchIndexEntry[];
}

export interface SearchPage {
  versions: StoredVersion[];
  /** Present when the query asked for a total (accurate or estimate). */
  total: number | undefined;
  /** The paging snapshot to carry in paging links (the query's own, or a new one). */
  snapshot: string;
  /** Whether matches follow this page. */
  hasMore: boolean;
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  /** Only versions with lastUpdated >= since (epoch ms). */
  since?: number;
  /** Only versions with lastUpdated <= at (epoch ms): `_at` is not supported yet. */
  count: number;
  offset: number;
}

export interface HistoryPage {
  /** Newest first (FHIR R4 http.html#history). */
  versions: StoredVersion[];
  total: number;
}

/** The reads every store offers, inside or outside a transaction. */
export interface StoreReader {
  readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined>;
  readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined>;
  search(query: SearchQuery): Promise<SearchPage>;
  history(query: HistoryQuery): Promise<HistoryPage>;
}

/** Writes happen only inside a transaction: all of them commit, or none. */
export interface StoreTransaction extends StoreReader {
  writeVersion(version: NewVersion): Promise<void>;
}

export interface Store extends StoreReader {
  /**
   * Runs `work` in one serializable transaction. Conditional operations read and write inside
   * it, which is what makes them race-free (FHIR R4 http.html#cond-update). If `work` throws,
   * nothing it wrote is kept.
   */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
