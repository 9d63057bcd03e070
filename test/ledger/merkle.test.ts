/**
 * RFC 9162 / RFC 6962 Merkle tree hashing and proofs against the test vectors that Certificate
 * Transparency implementations share (the 8 leaves below; roots of every prefix, inclusion
 * and consistency proofs), then property checks of every (index, size) pair up to 70 leaves.
 */
import { expect } from 'chai';
import {
  consistencyProofRanges, EMPTY_TREE_HASH, hashChildren, hashLeaf, InMemoryMerkleTree, inclusionProofRanges,
  largestPowerOfTwoBelow, MerkleFrontier, rootFromInclusionProof, rootOfLeafHashes, verifyConsistency, verifyInclusion,
} from '../../src/ledger/merkle.js';

const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
  .map((hex) => Buffer.from(hex, 'hex'));

const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

const INCLUSION: { leaf: number; size: number; path: string[] }[] = [
  { leaf: 0, size: 1, path: [] },
  { leaf: 0, size: 8, path: [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { leaf: 5, size: 8, path: [
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { leaf: 2, size: 3, path: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { leaf: 1, size: 5, path: [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];

const CONSISTENCY: { first: number; second: number; proof: string[] }[] = [
  { first: 1, second: 1, proof: [] },
  { first: 1, second: 8, proof: [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { first: 6, second: 8, proof: [
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { first: 2, second: 5, proof: [
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];

const hex = (b: Buffer) => b.toString('hex');
const fromHex = (h: string) => Buffer.from(h, 'hex');

function vectorTree(): InMemoryMerkleTree {
  const tree = new InMemoryMerkleTree();
  for (const leaf of LEAVES) tree.appendData(leaf);
  return tree;
}

/** Pseudo-random leaf data, deterministic, for trees beyond the vectors. */
function syntheticTree(n: number): InMemoryMerkleTree {
  const tree = new InMemoryMerkleTree();
  for (let i = 0; i < n; i++) tree.appendData(Buffer.from(`leaf-${i}`));
  return tree;
}

describe('ledger/merkle (RFC 9162 test vectors)', () => {
  it('hashes the empty tree as SHA-256 of nothing', () => {
    expect(hex(EMPTY_TREE_HASH)).to.equal(ROOTS[0]);
  });

  it('hashes a leaf with the 0x00 prefix and a node with the 0x01 prefix', () => {
    expect(hex(hashLeaf(LEAVES[0]!))).to.equal(ROOTS[1]);
    expect(hex(hashChildren(hashLeaf(LEAVES[0]!), hashLeaf(LEAVES[1]!)))).to.equal(ROOTS[2]);
  });

  for (let n = 0; n <= 8; n++) {
    it(`root of the first ${n} leaves is ${ROOTS[n]!.slice(0, 16)}…`, () => {
      const tree = vectorTree();
      expect(hex(tree.root(n))).to.equal(ROOTS[n]);
      expect(hex(rootOfLeafHashes(LEAVES.slice(0, n).map(hashLeaf)))).to.equal(ROOTS[n]);
      const frontier = new MerkleFrontier();
      for (const leaf of LEAVES.slice(0, n)) frontier.append(hashLeaf(leaf));
      expect(hex(frontier.root())).to.equal(ROOTS[n]);
    });
  }

  for (const v of INCLUSION) {
    it(`inclusion proof of leaf ${v.leaf} in tree ${v.size}`, () => {
      const tree = vectorTree();
      expect(tree.inclusionProof(v.leaf, v.size).map(hex)).to.deep.equal(v.path);
      const leafHash = hashLeaf(LEAVES[v.leaf]!);
      expect(verifyInclusion(leafHash, v.leaf, v.size, v.path.map(fromHex), fromHex(ROOTS[v.size]!))).to.equal(true);
    });
  }

  for (const v of CONSISTENCY) {
    it(`consistency proof between trees ${v.first} and ${v.second}`, () => {
      const tree = vectorTree();
      expect(tree.consistencyProof(v.first, v.second).map(hex)).to.deep.equal(v.proof);
      expect(verifyConsistency(v.first, v.second, fromHex(ROOTS[v.first]!), fromHex(ROOTS[v.second]!),
        v.proof.map(fromHex))).to.equal(true);
    });
  }

  it('rejects altered inclusion proofs: wrong leaf, index, size, root, sibling, extra or missing hash', () => {
    const v = INCLUSION[2]!;
    const path = v.path.map(fromHex);
    const root = fromHex(ROOTS[8]!);
    const leaf = hashLeaf(LEAVES[5]!);
    expect(verifyInclusion(hashLeaf(LEAVES[4]!), 5, 8, path, root)).to.equal(false);
    expect(verifyInclusion(leaf, 4, 8, path, root)).to.equal(false);
    // (5, 7) has the same path shape as (5, 8): the size is bound by the anchored (size, root) pair.
    expect(verifyInclusion(leaf, 5, 6, path, root)).to.equal(false);
    expect(verifyInclusion(leaf, 5, 8, path, fromHex(ROOTS[7]!))).to.equal(false);
    const flipped = path.map((p) => Buffer.from(p));
    flipped[1]![0]! ^= 1;
    expect(verifyInclusion(leaf, 5, 8, flipped, root)).to.equal(false);
    expect(verifyInclusion(leaf, 5, 8, [...path, path[0]!], root)).to.equal(false);
    expect(verifyInclusion(leaf, 5, 8, path.slice(0, 2), root)).to.equal(false);
    expect(verifyInclusion(leaf, 8, 8, path, root)).to.equal(false);
    expect(rootFromInclusionProof(leaf, -1, 8, path)).to.equal(undefined);
  });

  it('rejects altered consistency proofs', () => {
    const v = CONSISTENCY[2]!;
    const proof = v.proof.map(fromHex);
    const first = fromHex(ROOTS[6]!);
    const second = fromHex(ROOTS[8]!);
    expect(verifyConsistency(6, 8, first, second, proof)).to.equal(true);
    expect(verifyConsistency(6, 8, fromHex(ROOTS[5]!), second, proof)).to.equal(false);
    expect(verifyConsistency(6, 8, first, fromHex(ROOTS[7]!), proof)).to.equal(false);
    expect(verifyConsistency(5, 8, first, second, proof)).to.equal(false);
    expect(verifyConsistency(6, 8, first, second, proof.slice(1))).to.equal(false);
    expect(verifyConsistency(6, 8, first, second, [])).to.equal(false);
    expect(verifyConsistency(8, 6, second, first, proof)).to.equal(false);
    expect(verifyConsistency(3, 3, fromHex(ROOTS[3]!), fromHex(ROOTS[3]!), [])).to.equal(true);
    expect(verifyConsistency(3, 3, fromHex(ROOTS[3]!), fromHex(ROOTS[4]!), [])).to.equal(false);
  });
});

describe('ledger/merkle (properties up to 70 leaves)', () => {
  const tree = syntheticTree(70);

  it('every inclusion proof of every leaf in every tree size verifies, and only against its own root', () => {
    for (let n = 1; n <= 70; n++) {
      const root = tree.root(n);
      const otherRoot = tree.root(n === 1 ? 2 : n - 1);
      for (let m = 0; m < n; m++) {
        const proof = tree.inclusionProof(m, n);
        expect(verifyInclusion(tree.leafHash(m), m, n, proof, root), `leaf ${m} of ${n}`).to.equal(true);
        expect(verifyInclusion(tree.leafHash(m), m, n, proof, otherRoot)).to.equal(false);
      }
    }
  });

  it('every consistency proof between any two sizes verifies', () => {
    for (let n = 1; n <= 70; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = tree.consistencyProof(m, n);
        expect(verifyConsistency(m, n, tree.root(m), tree.root(n), proof), `${m} → ${n}`).to.equal(true);
        if (m < n) expect(verifyConsistency(m, n, tree.root(m), tree.root(n - 1), proof), `${m} → ${n} wrong root`).to.equal(false);
      }
    }
  });

  it('proof ranges are complete aligned subtrees or right edges, with the lengths the RFC implies', () => {
    for (let n = 1; n <= 70; n++) {
      for (let m = 0; m < n; m++) {
        for (const [s, e] of inclusionProofRanges(m, n)) {
          const size = e - s;
          expect(size).to.be.greaterThan(0);
          // Either a complete subtree at an aligned start, or a range that ends at n.
          const aligned = (size & (size - 1)) === 0 && s % size === 0;
          expect(aligned || e === n, `${s}-${e} in ${n}`).to.equal(true);
        }
      }
      for (let m = 1; m <= n; m++) expect(consistencyProofRanges(m, n).length).to.be.at.most(2 * Math.ceil(Math.log2(n)) + 1);
    }
  });

  it('largestPowerOfTwoBelow follows k < n <= 2k', () => {
    expect([2, 3, 4, 5, 8, 9, 1000].map(largestPowerOfTwoBelow)).to.deep.equal([1, 2, 2, 4, 4, 8, 512]);
    expect(() => largestPowerOfTwoBelow(1)).to.throw(RangeError);
  });
});
