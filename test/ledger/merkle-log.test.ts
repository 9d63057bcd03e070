/**
 * The ledger in the store (real SQLite file): leaves written in the version's transaction,
 * nothing of a rolled-back transaction, the backfill of a database from before the ledger, and
 * the store-backed Merkle log (cached subtree hashes) against the in-memory reference tree.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MerkleLog, STORED_SUBTREE_MIN_LEVEL } from '../../src/ledger/merkle-log.js';
import { InMemoryMerkleTree, MerkleFrontier, verifyConsistency, verifyInclusion } from '../../src/ledger/merkle.js';
import { newVersionLeaf, versionLeafHash } from '../../src/ledger/version-leaf.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/sqlite-schema.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { LedgerStore, NewVersion } from '../../src/store/store.js';

function patientVersion(id: string, versionId: number, family = 'Lee'): NewVersion {
  const lastUpdated = new Date(Date.UTC(2024, 0, 1, 0, 0, versionId)).toISOString();
  const json = JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated }, name: [{ family }] });
  return { resourceType: 'Patient', id, versionId, lastUpdated, json, indexEntries: [], leaf: newVersionLeaf({ resourceType: 'Patient', id, versionId, lastUpdated, json }) };
}

function deleteVersion(id: string, versionId: number): NewVersion {
  const lastUpdated = new Date(Date.UTC(2024, 0, 1, 0, 0, versionId)).toISOString();
  return { resourceType: 'Patient', id, versionId, lastUpdated, json: null, indexEntries: [], leaf: newVersionLeaf({ resourceType: 'Patient', id, versionId, lastUpdated, json: null }) };
}

describe('ledger leaves in the store (real SQLite file)', () => {
  let dir: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-leaves-'));
    store = new SqliteStore({ file: path.join(dir, 'fhir.sqlite'), synchronous: 'NORMAL', readCacheEntries: 100 });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes one leaf per version, in commit order from index 0, deletes included', async () => {
    const given = newVersionLeaf(patientVersion('a', 1));
    await store.transaction(async (tx) => {
      await tx.writeVersion({ ...patientVersion('a', 1), leaf: given });
      await tx.writeVersion(patientVersion('b', 1));
    });
    await store.transaction(async (tx) => {
      await tx.writeVersion(patientVersion('a', 2, 'Kim'));
      await tx.writeVersion(deleteVersion('b', 2));
    });
    expect(await store.ledger.treeSize()).to.equal(4);
    const leaves = await store.ledger.leavesWithVersions(0, 10);
    expect(leaves.map((l) => `${l.leafIndex}:${l.id}/${l.versionId}`)).to.deep.equal(['0:a/1', '1:b/1', '2:a/2', '3:b/2']);
    // The write path's own leaf is kept as given; the others were computed by the store.
    expect(leaves[0]!.salt.equals(given.salt)).to.equal(true);
    expect(leaves[0]!.leafHash.equals(given.leafHash)).to.equal(true);
    for (const leaf of leaves) {
      expect(leaf.salt).to.have.length(32);
      expect(versionLeafHash(leaf.salt, leaf.version!).equals(leaf.leafHash), `leaf ${leaf.leafIndex}`).to.equal(true);
    }
    expect(leaves[3]!.version!.deleted).to.equal(true);
    const byVersion = await store.ledger.leafOfVersion('Patient', 'a', 2);
    expect(byVersion?.leafIndex).to.equal(2);
    expect(await store.ledger.leafOfVersion('Patient', 'a', 3)).to.equal(undefined);
  });

  it('keeps no leaf of a transaction that fails, and no version of it either', async () => {
    await store.transaction(async (tx) => { await tx.writeVersion(patientVersion('kept', 1)); });
    await store.transaction(async (tx) => {
      await tx.writeVersion(patientVersion('lost', 1));
      throw new Error('abort');
    }).catch(() => undefined);
    await store.transaction(async (tx) => { await tx.writeVersion(patientVersion('kept2', 1)); });
    const leaves = await store.ledger.leavesWithVersions(0, 10);
    expect(leaves.map((l) => `${l.leafIndex}:${l.id}`)).to.deep.equal(['0:kept', '1:kept2']);
    expect(await store.readCurrent('Patient', 'lost')).to.equal(undefined);
  });

  it('gives concurrent transactions in one group commit distinct, gapless leaf indexes', async () => {
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.transaction(async (tx) => {
      await tx.writeVersion(patientVersion(`p${i}`, 1));
      if (i % 7 === 3) throw new Error('some fail');
    }).catch(() => undefined)));
    const leaves = await store.ledger.leavesWithVersions(0, 100);
    expect(leaves.map((l) => l.leafIndex)).to.deep.equal([...Array(leaves.length).keys()]);
    expect(leaves.length).to.equal(50 - 7);
    expect(leaves.every((l) => l.version !== undefined)).to.equal(true);
  });
});

describe('ledger backfill of a database written before the ledger', () => {
  it('migration 2 turns every existing version into a leaf, in commit order', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-backfill-'));
    const file = path.join(dir, 'fhir.sqlite');
    try {
      // A schema-1 database, as the REST core wrote it.
      const db = new Database(file);
      db.exec(SQLITE_MIGRATIONS[0]!);
      db.pragma('user_version = 1');
      db.prepare('INSERT INTO resources (rid, type, id, version_id, last_updated, deleted) VALUES (1, ?, ?, 2, ?, 1)')
        .run('Patient', 'old', Date.UTC(2023, 0, 2));
      const v1 = patientVersion('old', 1);
      db.prepare('INSERT INTO versions (rid, version_id, last_updated, deleted, content) VALUES (1, 1, ?, 0, ?)')
        .run(Date.parse(v1.lastUpdated), v1.json);
      db.prepare('INSERT INTO versions (rid, version_id, last_updated, deleted, content) VALUES (1, 2, ?, 1, NULL)')
        .run(Date.UTC(2023, 0, 2));
      db.close();

      const store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 });
      try {
        await store.transaction(async (tx) => { await tx.writeVersion(patientVersion('new', 1)); });
        const leaves = await store.ledger.leavesWithVersions(0, 10);
        expect(leaves.map((l) => `${l.leafIndex}:${l.id}/${l.versionId}`)).to.deep.equal(['0:old/1', '1:old/2', '2:new/1']);
        for (const leaf of leaves) expect(versionLeafHash(leaf.salt, leaf.version!).equals(leaf.leafHash)).to.equal(true);
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MerkleLog over the store (cached subtree hashes) vs the in-memory reference', function () {
  this.timeout(60_000);
  let dir: string;
  let store: SqliteStore;
  const reference = new InMemoryMerkleTree();
  const N = 300;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-log-'));
    store = new SqliteStore({ file: path.join(dir, 'fhir.sqlite'), synchronous: 'NORMAL', readCacheEntries: 0 });
    for (let i = 0; i < N; i += 25) {
      await store.transaction(async (tx) => {
        for (let j = i; j < i + 25; j++) await tx.writeVersion(patientVersion(`p${j}`, 1, `F${j}`));
      });
    }
    for (const leaf of await store.ledger.leavesWithVersions(0, N)) reference.appendLeafHash(leaf.leafHash);
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('computes the same roots with no cache, a partial cache and a full cache', async () => {
    const log = new MerkleLog(store.ledger);
    const sizes = [1, 2, 15, 16, 17, 31, 32, 33, 100, 128, 129, 255, 256, 257, 299, 300];
    for (const n of sizes) expect((await log.root(n)).equals(reference.root(n)), `no cache, ${n}`).to.equal(true);
    await log.materialize(137);
    expect(await store.ledger.subtreeHashCount(STORED_SUBTREE_MIN_LEVEL)).to.equal(8);
    expect(await store.ledger.subtreeHashCount(7)).to.equal(1);
    for (const n of sizes) expect((await log.root(n)).equals(reference.root(n)), `partial cache, ${n}`).to.equal(true);
    await log.materialize(N);
    expect(await store.ledger.subtreeHashCount(STORED_SUBTREE_MIN_LEVEL)).to.equal(Math.floor(N / 16));
    expect(await store.ledger.subtreeHashCount(8)).to.equal(1);
    expect(await store.ledger.subtreeHashCount(9)).to.equal(0);
    for (const n of sizes) expect((await log.root(n)).equals(reference.root(n)), `full cache, ${n}`).to.equal(true);
    // Materializing again changes nothing.
    await log.materialize(N);
    expect((await log.root(N)).equals(reference.root(N))).to.equal(true);
  });

  it('gives the reference inclusion and consistency proofs, which verify', async () => {
    const log = new MerkleLog(store.ledger);
    await log.materialize(N);
    for (const n of [1, 16, 17, 100, 256, 300]) {
      const root = reference.root(n);
      for (let m = 0; m < n; m += Math.max(1, Math.floor(n / 23))) {
        const proof = await log.inclusionProof(m, n);
        expect(proof.map((p) => p.toString('hex'))).to.deep.equal(reference.inclusionProof(m, n).map((p) => p.toString('hex')));
        expect(verifyInclusion(reference.leafHash(m), m, n, proof, root)).to.equal(true);
      }
      for (const m of [1, 7, 16, 64, 99, 255]) {
        if (m > n) continue;
        const proof = await log.consistencyProof(m, n);
        expect(verifyConsistency(m, n, reference.root(m), root, proof), `${m} → ${n}`).to.equal(true);
      }
    }
  });
});

describe('MerkleLog at a million leaves (real SQLite file)', function () {
  this.timeout(120_000);
  const N = 1_000_003;
  let dir: string;
  let store: SqliteStore;
  const frontier = new MerkleFrontier();
  const prefixRoots = new Map<number, Buffer>();
  let reads = 0;
  /** The real ledger store, counting the reads a root or proof costs. */
  let counted: LedgerStore;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-million-'));
    const file = path.join(dir, 'fhir.sqlite');
    // Open once to create the schema, then load leaves in bulk (the write path is tested above).
    await new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 }).close();
    const db = new Database(file);
    const insert = db.prepare('INSERT INTO ledger_leaves (leaf_index, rid, version_id, salt, leaf_hash) VALUES (?, ?, 1, ?, ?)');
    const salt = Buffer.alloc(32);
    db.transaction(() => {
      for (let i = 0; i < N; i++) {
        const leafHash = Buffer.alloc(32);
        leafHash.writeUInt32BE(i, 0);
        leafHash.writeUInt32BE((0x9e3779b9 ^ i) >>> 0, 28);
        insert.run(i, i + 1, salt, leafHash);
        frontier.append(leafHash);
        if (i + 1 === 777_777 || i + 1 === N) prefixRoots.set(i + 1, frontier.root());
      }
    })();
    db.close();
    store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 });
    const inner = store.ledger;
    counted = new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (prop === 'leafHashes' || prop === 'subtreeHash') reads++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  });
  after(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('caches about n/8 subtree hashes, then answers roots and proofs in O(log n) reads', async () => {
    const log = new MerkleLog(counted);
    const started = Date.now();
    await log.materialize(N);
    const materializeMs = Date.now() - started;
    let cached = 0;
    for (let level = STORED_SUBTREE_MIN_LEVEL; level <= 20; level++) cached += await store.ledger.subtreeHashCount(level);
    expect(cached).to.be.within(N / 8 - 20, N / 8);

    reads = 0;
    expect((await log.root(N)).equals(prefixRoots.get(N)!)).to.equal(true);
    expect((await log.root(777_777)).equals(prefixRoots.get(777_777)!)).to.equal(true);
    expect(reads).to.be.below(2 * 2 * 20);

    for (const leaf of [0, 1, 524_287, 524_288, 777_776, 999_999, N - 1]) {
      reads = 0;
      const proof = await log.inclusionProof(leaf, N);
      expect(reads, `reads for the proof of leaf ${leaf}`).to.be.below(2 * 20 + 8);
      const [leafHash] = await store.ledger.leafHashes(leaf, leaf + 1);
      expect(verifyInclusion(leafHash!, leaf, N, proof, prefixRoots.get(N)!)).to.equal(true);
    }
    reads = 0;
    const consistency = await log.consistencyProof(777_777, N);
    expect(reads).to.be.below(4 * 20);
    expect(verifyConsistency(777_777, N, prefixRoots.get(777_777)!, prefixRoots.get(N)!, consistency)).to.equal(true);
    // eslint-disable-next-line no-console
    console.log(`        ${N} leaves: subtree cache of ${cached} hashes built in ${materializeMs} ms`);
  });
});
