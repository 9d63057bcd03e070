/**
 * RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, inclusion proofs and
 * consistency proofs, with SHA-256. Pure functions: no I/O.
 *
 * The proof generators are written over ranges of leaves: a proof is the list of subtree
 * ranges [start, end) whose Merkle Tree Hashes (MTH) form the proof, in RFC order. Whoever
 * holds the hashes (an in-memory array, or the store with its cached subtree hashes; see
 * merkle-log.ts) turns ranges into hashes. Every range the RFC algorithms produce is either a
 * complete, aligned subtree (a power of two of leaves starting at a multiple of its size) or
 * the right edge of such a subtree, so a cache of complete subtrees answers any of them in
 * O(log n) hashes.
 *
 * Tree sizes and indexes are JavaScript numbers (exact below 2^53), so the bit operations of
 * the RFC are written as arithmetic rather than with 32-bit operators.
 */
import { createHash } from 'node:crypto';

export const HASH_SIZE = 32;

/** A half-open range [start, end) of leaf indexes. */
export type LeafRange = readonly [start: number, end: number];

/** RFC 9162 §2.1.1: MTH({}) = SHA-256() — the hash of the empty tree. */
export const EMPTY_TREE_HASH: Buffer = createHash('sha256').digest();

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0)). */
export function hashLeaf(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

/** RFC 9162 §2.1.1: SHA-256(0x01 || MTH(left) || MTH(right)). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

function assertSize(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`);
}

/** The largest power of two smaller than n (RFC 9162 §2.1.1: "k < n <= 2k"); n must be > 1. */
export function largestPowerOfTwoBelow(n: number): number {
  if (n < 2) throw new RangeError(`no power of two below ${n} splits a tree`);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/** MTH over leaf hashes already computed (RFC 9162 §2.1.1), in memory. */
export function rootOfLeafHashes(leafHashes: readonly Uint8Array[]): Buffer {
  const frontier = new MerkleFrontier();
  for (const h of leafHashes) frontier.append(h);
  return frontier.root();
}

// ---------------------------------------------------------------- proofs as ranges

/**
 * RFC 9162 §2.1.3.1: the inclusion path of leaf m in the tree of the first n leaves, as the
 * ranges whose MTH make up the path, leaf side first.
 *   PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])     for m < k
 *   PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k
 */
export function inclusionProofRanges(leafIndex: number, treeSize: number): LeafRange[] {
  assertSize('treeSize', treeSize);
  assertSize('leafIndex', leafIndex);
  if (leafIndex >= treeSize) throw new RangeError(`leaf ${leafIndex} is not in a tree of ${treeSize} leaves`);
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = treeSize;
  let m = leafIndex;
  // Walk from the root down, collecting siblings; the RFC lists them bottom-up.
  while (end - start > 1) {
    const k = largestPowerOfTwoBelow(end - start);
    if (m < k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
      m -= k;
    }
  }
  return ranges.reverse();
}

/**
 * RFC 9162 §2.1.4.1: the consistency proof between the tree of the first m leaves and the
 * tree of the first n leaves (0 < m <= n), as ranges, in RFC order.
 *   PROOF(m, D[n]) = SUBPROOF(m, D[n], true)
 *   SUBPROOF(m, D[m], true) = {};  SUBPROOF(m, D[m], false) = {MTH(D[m])}
 *   m <= k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]);  m > k: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
 */
export function consistencyProofRanges(firstSize: number, secondSize: number): LeafRange[] {
  assertSize('firstSize', firstSize);
  assertSize('secondSize', secondSize);
  if (firstSize > secondSize) throw new RangeError(`tree size ${firstSize} is larger than ${secondSize}`);
  if (firstSize === 0 || firstSize === secondSize) return [];
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = secondSize;
  let m = firstSize;
  let startFromOldRoot = true;
  while (m !== end - start) {
    const k = largestPowerOfTwoBelow(end - start);
    if (m <= k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
      m -= k;
      startFromOldRoot = false;
    }
  }
  if (!startFromOldRoot) ranges.push([start, end]);
  return ranges.reverse();
}

/** The MTH of a range, from whatever holds the hashes; used to turn proof ranges into hashes. */
export type RangeHasher = (start: number, end: number) => Promise<Buffer>;

export async function hashesOfRanges(ranges: readonly LeafRange[], hashRange: RangeHasher): Promise<Buffer[]> {
  const hashes: Buffer[] = [];
  for (const [start, end] of ranges) hashes.push(await hashRange(start, end));
  return hashes;
}

// ---------------------------------------------------------------- verification

/**
 * RFC 9162 §2.1.3.2: the root that an inclusion path leads to, or undefined when the path has
 * the wrong length for (leafIndex, treeSize).
 */
export function rootFromInclusionProof(leafHash: Uint8Array, leafIndex: number, treeSize: number,
  proof: readonly Uint8Array[]): Buffer | undefined {
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) {
    return undefined;
  }
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** RFC 9162 §2.1.3.2: true when the path proves leafHash is leaf `leafIndex` of the tree with `root`. */
export function verifyInclusion(leafHash: Uint8Array, leafIndex: number, treeSize: number,
  proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const computed = rootFromInclusionProof(leafHash, leafIndex, treeSize, proof);
  return computed !== undefined && computed.equals(root);
}

/**
 * RFC 9162 §2.1.4.2: true when `proof` shows that the tree of `firstSize` leaves with root
 * `firstRoot` is a prefix of the tree of `secondSize` leaves with root `secondRoot`.
 * Equal sizes need an empty proof and equal roots; the empty tree is a prefix of every tree.
 */
export function verifyConsistency(firstSize: number, secondSize: number, firstRoot: Uint8Array,
  secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(firstSize) || !Number.isSafeInteger(secondSize) || firstSize < 0 || firstSize > secondSize) {
    return false;
  }
  if (firstSize === secondSize) return proof.length === 0 && Buffer.from(firstRoot).equals(secondRoot);
  if (firstSize === 0) return proof.length === 0;
  // 1. An empty path cannot prove anything between different sizes.
  if (proof.length === 0) return false;
  // 2. If first is an exact power of 2, prepend first_hash to the path.
  const path: Uint8Array[] = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : [...proof];
  // 3./4. fn = first - 1, sn = second - 1; shift both right while LSB(fn) is set.
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. fr = sr = first value of the path.
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  // 6. For each subsequent value c.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7. fr must be first_hash, sr second_hash, and sn 0.
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

// ---------------------------------------------------------------- streaming and in-memory trees

/**
 * The right frontier of a growing tree: the roots of its complete subtrees, largest first
 * (one per set bit of the size). Appending is amortized O(1); the root of the current size
 * is O(log n). Used to recompute roots while streaming the whole log (CLI verify).
 */
export class MerkleFrontier {
  /** Complete subtree roots with their sizes, left to right (decreasing sizes). */
  private readonly stack: { size: number; hash: Buffer }[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  append(leafHash: Uint8Array): void {
    let node: { size: number; hash: Buffer } = { size: 1, hash: Buffer.from(leafHash) };
    // Merge equal-sized neighbours, as in a binary counter.
    while (this.stack.length > 0 && this.stack[this.stack.length - 1]!.size === node.size) {
      const left = this.stack.pop()!;
      node = { size: left.size * 2, hash: hashChildren(left.hash, node.hash) };
    }
    this.stack.push(node);
    this.count++;
  }

  /** MTH of the leaves appended so far: the subtree roots folded right to left. */
  root(): Buffer {
    if (this.stack.length === 0) return Buffer.from(EMPTY_TREE_HASH);
    let acc: Buffer = this.stack[this.stack.length - 1]!.hash;
    for (let i = this.stack.length - 2; i >= 0; i--) acc = hashChildren(this.stack[i]!.hash, acc);
    return acc;
  }
}

/** MTH of leaves [start, end) of an in-memory list of leaf hashes, by the RFC's recursion. */
function rangeHash(leafHashes: readonly Uint8Array[], start: number, end: number): Buffer {
  if (end - start === 0) return Buffer.from(EMPTY_TREE_HASH);
  if (end - start === 1) return Buffer.from(leafHashes[start]!);
  const k = largestPowerOfTwoBelow(end - start);
  return hashChildren(rangeHash(leafHashes, start, start + k), rangeHash(leafHashes, start + k, end));
}

/**
 * A Merkle tree held in memory (leaf hashes in an array): the reference implementation that
 * the store-backed log is tested against, and a convenience for small trees.
 */
export class InMemoryMerkleTree {
  private readonly leafHashes: Buffer[] = [];

  get size(): number {
    return this.leafHashes.length;
  }

  appendData(data: Uint8Array): void {
    this.leafHashes.push(hashLeaf(data));
  }

  appendLeafHash(leafHash: Uint8Array): void {
    this.leafHashes.push(Buffer.from(leafHash));
  }

  leafHash(index: number): Buffer {
    const hash = this.leafHashes[index];
    if (!hash) throw new RangeError(`no leaf ${index}`);
    return hash;
  }

  root(treeSize = this.size): Buffer {
    this.assertSize(treeSize);
    return rangeHash(this.leafHashes, 0, treeSize);
  }

  inclusionProof(leafIndex: number, treeSize = this.size): Buffer[] {
    this.assertSize(treeSize);
    return inclusionProofRanges(leafIndex, treeSize).map(([s, e]) => rangeHash(this.leafHashes, s, e));
  }

  consistencyProof(firstSize: number, secondSize = this.size): Buffer[] {
    this.assertSize(secondSize);
    return consistencyProofRanges(firstSize, secondSize).map(([s, e]) => rangeHash(this.leafHashes, s, e));
  }

  private assertSize(treeSize: number): void {
    if (treeSize > this.leafHashes.length) throw new RangeError(`the tree has ${this.leafHashes.length} leaves, not ${treeSize}`);
  }
}
