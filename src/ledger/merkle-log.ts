/**
 * The Merkle log over the store's ledger tables: roots, inclusion proofs and consistency proofs
 * (RFC 9162 §2.1) for any tree size, in O(log n) reads and hashes.
 *
 * Storage choice (see store/sqlite/sqlite-schema.ts, migration 2): the leaves are the only
 * data of record. The hash of every complete subtree of 2^level leaves with level >=
 * STORED_SUBTREE_MIN_LEVEL (16 leaves and up) is cached in the store, as (level, index) →
 * hash. That is about n/8 rows for n leaves (n/16 + n/32 + …), against n rows for a cache of
 * every interior node, and any range below 16 leaves is one indexed read of at most 16 leaf
 * hashes. The cache is derived from the leaves, so it is filled after commit (by the anchorer,
 * `materialize`), never in the write path; a range it does not cover yet is computed from
 * lower levels or leaves, which is slower but gives the same hash.
 */
import type { LedgerStore, SubtreeHash } from '../store/store.js';
import {
  consistencyProofRanges, EMPTY_TREE_HASH, hashChildren, hashesOfRanges, inclusionProofRanges, isPowerOfTwo,
  largestPowerOfTwoBelow, rootOfLeafHashes,
} from './merkle.js';

/** Subtrees of 2^4 = 16 leaves and larger are cached; smaller ranges are read from the leaves. */
export const STORED_SUBTREE_MIN_LEVEL = 4;
const BLOCK = 2 ** STORED_SUBTREE_MIN_LEVEL;
/** Leaves materialized per step, so a large backlog never sits in memory at once. */
const MATERIALIZE_WINDOW = 2 ** 16;

export class MerkleLog {
  constructor(private readonly ledger: LedgerStore) {}

  treeSize(): Promise<number> {
    return this.ledger.treeSize();
  }

  /** Caches the hash of every complete subtree (level >= 4) within the first `treeSize` leaves. */
  async materialize(treeSize: number): Promise<void> {
    for (;;) {
      const done = (await this.ledger.subtreeHashCount(STORED_SUBTREE_MIN_LEVEL)) * BLOCK;
      if (done + BLOCK > treeSize) {
        // No new block, but a higher level may still be missing (e.g. after an interrupted run).
        await this.materializeUpTo(treeSize);
        return;
      }
      await this.materializeUpTo(Math.min(treeSize, done + MATERIALIZE_WINDOW));
    }
  }

  private async materializeUpTo(target: number): Promise<void> {
    const computed: SubtreeHash[] = [];
    let lower = new Map<number, Buffer>();
    let level = STORED_SUBTREE_MIN_LEVEL;
    {
      const have = await this.ledger.subtreeHashCount(level);
      const want = Math.floor(target / BLOCK);
      if (want > have) {
        const leaves = await this.ledger.leafHashes(have * BLOCK, want * BLOCK);
        for (let i = have; i < want; i++) {
          const offset = (i - have) * BLOCK;
          const hash = rootOfLeafHashes(leaves.slice(offset, offset + BLOCK));
          lower.set(i, hash);
          computed.push({ level, index: i, hash });
        }
      }
    }
    for (level = STORED_SUBTREE_MIN_LEVEL + 1; 2 ** level <= target; level++) {
      const have = await this.ledger.subtreeHashCount(level);
      const want = Math.floor(target / 2 ** level);
      const current = new Map<number, Buffer>();
      for (let i = have; i < want; i++) {
        const left = lower.get(2 * i) ?? await this.ledger.subtreeHash(level - 1, 2 * i);
        const right = lower.get(2 * i + 1) ?? await this.ledger.subtreeHash(level - 1, 2 * i + 1);
        if (!left || !right) throw new Error(`ledger subtree cache has a gap below level ${level} index ${i}`);
        const hash = hashChildren(left, right);
        current.set(i, hash);
        computed.push({ level, index: i, hash });
      }
      lower = current;
    }
    await this.ledger.saveSubtreeHashes(computed);
  }

  /** MTH(D[start:end]) for a range of the RFC's decomposition. */
  hashRange = async (start: number, end: number): Promise<Buffer> => {
    const size = end - start;
    if (size <= 0) return Buffer.from(EMPTY_TREE_HASH);
    if (size >= BLOCK && isPowerOfTwo(size) && start % size === 0) {
      const cached = await this.ledger.subtreeHash(Math.log2(size), start / size);
      if (cached) return cached;
    }
    if (size <= BLOCK) return rootOfLeafHashes(await this.ledger.leafHashes(start, end));
    const k = largestPowerOfTwoBelow(size);
    return hashChildren(await this.hashRange(start, start + k), await this.hashRange(start + k, end));
  };

  /** MTH of the first `treeSize` leaves. */
  root(treeSize: number): Promise<Buffer> {
    return this.hashRange(0, treeSize);
  }

  /** RFC 9162 §2.1.3.1 inclusion path of a leaf in the tree of `treeSize` leaves. */
  inclusionProof(leafIndex: number, treeSize: number): Promise<Buffer[]> {
    return hashesOfRanges(inclusionProofRanges(leafIndex, treeSize), this.hashRange);
  }

  /** RFC 9162 §2.1.4.1 consistency proof between two tree sizes. */
  consistencyProof(firstSize: number, secondSize: number): Promise<Buffer[]> {
    return hashesOfRanges(consistencyProofRanges(firstSize, secondSize), this.hashRange);
  }
}
