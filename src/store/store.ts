/**
 * The Store port (DESIGN.md: the router knows a repository interface, not a database).
 * Adapters (store/sqlite, later store/postgres) implement it; nothing outside store/ sees SQL
 * or driver types. All methods are async so that a networked database fits the same seam.
 * test/store/contract/store-contract.ts checks every promise below against an adapter.
 *
 * The contract every adapter keeps:
 *
 * - Commit order. Committed transactions have one total order. A version's `versionId` grows
 *   by one per version of a resource; its ledger leaf gets the next leaf index in that order.
 * - Atomicity. `Store.transaction` is all-or-nothing: when its callback throws (or the commit
 *   fails) nothing it wrote is kept — no version, no index row, no ledger leaf, no interned
 *   search parameter. A version, its index rows and its ledger leaf commit together, or not.
 * - Isolation. Transactions are serializable: a transaction sees the data as if it ran alone
 *   after every transaction committed before it (conditional create/update rely on it, FHIR R4
 *   http.html#cond-update). Inside a transaction, reads see its own writes (read-your-writes).
 *   Reads on the Store itself (outside any transaction) see committed data only, never a
 *   transaction still running; once `transaction()` has resolved, its writes are visible to them.
 * - Ledger leaves. Leaf indexes are 0..n-1 without gaps, in commit order: leaf k+1 belongs to a
 *   version committed after (or in the same transaction as, written after) the version of leaf k.
 *   A rolled-back transaction leaves no gap. Every stored version has exactly one leaf.
 * - Orders. `history` is newest first (by commit order; FHIR R4 http.html#history). `search`
 *   returns matches in the query's `_sort` order, ties (and a query without `_sort`) by creation
 *   order of the resources, so that paging is stable. `readCurrentMany` keeps the order of its
 *   input. Ledger leaves are read in leaf order.
 * - Paging snapshots: see SearchPage.snapshot.
 */
import type { SearchIndexEntry } from '../fhir/search-index-entry.js';
import type { SearchQuery } from '../fhir/search-query.js';
import type { MigrationReport } from './schema-migrations.js';

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
  /**
   * The version's ledger leaf (ledger/version-leaf.ts), computed by the write path: the store
   * records it with the version, in the same transaction, under the next leaf index.
   */
  leaf: NewVersionLeaf;
}

/** Salt and leaf hash of a version (DESIGN.md: the ledger leaf is part of every commit). */
export interface NewVersionLeaf {
  salt: Buffer;
  leafHash: Buffer;
}

export interface SearchPage {
  versions: StoredVersion[];
  /** Present when the query asked for a total (accurate or estimate). */
  total: number | undefined;
  /**
   * The paging snapshot to carry in paging links (the query's own, or a new one): an opaque
   * token that only the adapter that issued it reads. It names the store's position when the
   * first page was served and the query it was served for. Later pages of the same query with
   * the token (SearchQuery.snapshot) leave out resources created after that position, and an
   * adapter may keep the first page's ordered matches so that later pages show each resource as
   * it was then (README "paging"). Once such kept matches are gone (evicted, expired, a restart)
   * later pages still answer, from the live data limited to the resources of the snapshot.
   *
   * `search` throws FhirError 400 (never a server error) for a token it cannot have issued for
   * this query: malformed, forged (a position the store has not reached), or issued for
   * another query (other type, criteria, sort or compartment; `_count`, `_offset`, `_total`,
   * `_summary`, `_include` do not count). The error says nothing about any data.
   */
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

/** A resource named by type and id. */
export interface ResourceKey {
  resourceType: string;
  id: string;
}

/**
 * The reads every store offers, inside or outside a transaction. Outside, they see committed
 * data only; inside, they also see the transaction's own writes.
 */
export interface StoreReader {
  /** The current version (a delete version included), or undefined for an unknown resource. */
  readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined>;
  /**
   * The current versions of many resources at once, as readCurrent would return them each
   * (delete versions included), in the order of `keys`; unknown resources are left out and a
   * key given twice is answered once. Adapters read them in a few batched queries, not one per
   * key (`_include`, search.html#include).
   */
  readCurrentMany(keys: ResourceKey[]): Promise<StoredVersion[]>;
  readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined>;
  search(query: SearchQuery): Promise<SearchPage>;
  history(query: HistoryQuery): Promise<HistoryPage>;
}

/** Writes happen only inside a transaction: all of them commit, or none. */
export interface StoreTransaction extends StoreReader {
  /**
   * Appends a version, replaces the resource's index rows with the version's, and records the
   * version's ledger leaf under the next leaf index. The service layer chooses versionId (the
   * previous one + 1) and lastUpdated.
   */
  writeVersion(version: NewVersion): Promise<void>;
}

// ---------------------------------------------------------------- the ledger's tables

/** One leaf of the Merkle log: the version it stands for, its salt and its hash. */
export interface LedgerLeafRecord {
  /** Position in the log, from 0, in commit order, without gaps. */
  leafIndex: number;
  resourceType: string;
  id: string;
  versionId: number;
  salt: Buffer;
  leafHash: Buffer;
}

/** A leaf with the version it stands for (undefined when that version row is gone). */
export interface LedgerLeafWithVersion extends LedgerLeafRecord {
  version: StoredVersion | undefined;
}

/** The hash of the complete subtree of 2^level leaves starting at leaf index * 2^level. */
export interface SubtreeHash {
  level: number;
  index: number;
  hash: Buffer;
}

/**
 * pending: signed and recorded, maybe broadcast, receipt not seen yet;
 * anchored: the root is on-chain for this tree size; abandoned: never made it, superseded.
 */
export type LedgerAnchorStatus = 'pending' | 'anchored' | 'abandoned';

/** One root of the log sent to (or found on) the chain. */
export interface LedgerAnchor {
  treeSize: number;
  root: Buffer;
  status: LedgerAnchorStatus;
  /** 0x-prefixed hex; null when the root was found on-chain without its transaction. */
  txHash: string | null;
  /** The signed transaction (0x hex), kept while pending so it can be broadcast again. */
  rawTx: string | null;
  blockNumber: number | null;
  /** Decimal string (chain ids can exceed 2^53). */
  chainId: string | null;
  contractAddress: string | null;
  gasUsed: number | null;
  /** Epoch ms. */
  createdAt: number;
  anchoredAt: number | null;
}

/**
 * The ledger's view of the store: leaves (written by writeVersion, in the same transaction as
 * their version), cached subtree hashes and anchors. Reads see committed data only.
 */
export interface LedgerStore {
  /** Number of committed leaves. */
  treeSize(): Promise<number>;
  /** Leaf hashes of leaves [start, end), in order. */
  leafHashes(start: number, end: number): Promise<Buffer[]>;
  leafOfVersion(resourceType: string, id: string, versionId: number): Promise<LedgerLeafRecord | undefined>;
  /** Up to `limit` leaves from `start`, each with its version, in leaf order. */
  leavesWithVersions(start: number, limit: number): Promise<LedgerLeafWithVersion[]>;
  /** Versions that have no leaf (only tampering makes one): up to `limit` of them. */
  versionsWithoutLeaves(limit: number): Promise<StoredVersion[]>;
  subtreeHash(level: number, index: number): Promise<Buffer | undefined>;
  /** How many subtree hashes of a level are stored (they are stored from index 0 on, without gaps). */
  subtreeHashCount(level: number): Promise<number>;
  saveSubtreeHashes(hashes: SubtreeHash[]): Promise<void>;
  /** Every anchor, by increasing tree size. */
  anchors(): Promise<LedgerAnchor[]>;
  anchor(treeSize: number): Promise<LedgerAnchor | undefined>;
  /** The anchored anchor with the largest tree size. */
  latestAnchored(): Promise<LedgerAnchor | undefined>;
  /** The first anchored root whose tree contains the leaf (smallest tree size > leafIndex). */
  firstAnchoredCovering(leafIndex: number): Promise<LedgerAnchor | undefined>;
  /** Inserts or replaces the anchor of its tree size. */
  saveAnchor(anchor: LedgerAnchor): Promise<void>;
}

export interface Store extends StoreReader {
  /** The Merkle log's tables (ledger/merkle-log.ts and the anchorer use them). */
  readonly ledger: LedgerStore;
  /** The schema migrations applied when the store was opened (schema-migrations.ts). */
  readonly migration: MigrationReport;
  /**
   * Runs `work` in one serializable transaction. Conditional operations read and write inside
   * it, which is what makes them race-free (FHIR R4 http.html#cond-update). If `work` throws,
   * nothing it wrote is kept.
   */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
