/**
 * The whole-store audit (`fhir-ledger verify`'s engine) on a real store and a real anvil node:
 * a clean store passes; each kind of tampering is reported, by version where it can be.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { Anchorer } from '../../src/ledger/anchorer.js';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor, EthersAnchorChain } from '../../src/ledger/ethers-anchor-chain.js';
import { auditLedger } from '../../src/ledger/ledger-audit.js';
import { MerkleLog } from '../../src/ledger/merkle-log.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { newVersionLeaf } from '../../src/ledger/version-leaf.js';
import type { NewVersion } from '../../src/store/store.js';

function patientVersion(id: string, versionId = 1): NewVersion {
  const lastUpdated = new Date().toISOString();
  const json = JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: String(versionId), lastUpdated }, name: [{ family: `F-${id}` }] });
  return { resourceType: 'Patient', id, versionId, lastUpdated, json, indexEntries: [], leaf: newVersionLeaf({ resourceType: 'Patient', id, versionId, lastUpdated, json }) };
}

describe('ledger audit (real store, real anvil node)', function () {
  this.timeout(60_000);
  let anvil: AnvilNode;
  let dir: string;
  let file: string;
  let store: SqliteStore;
  let chain: EthersAnchorChain;
  let anchorer: Anchorer;

  before(async () => { anvil = await AnvilNode.start(); });
  after(async () => { await anvil?.stop(); });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-audit-'));
    file = path.join(dir, 'fhir.sqlite');
    store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries: 0 });
    const endpoint = { rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY };
    chain = await EthersAnchorChain.connect(endpoint, await deployLedgerAnchor(endpoint));
    anchorer = new Anchorer(new MerkleLog(store.ledger), store.ledger, async () => chain, { batchLeaves: 1e6, batchSeconds: 3600 });
    // 3 roots (sizes 20, 45, 70) and 5 leaves not anchored.
    let n = 0;
    for (const batch of [20, 25, 25, 5]) {
      await store.transaction(async (tx) => {
        for (let i = 0; i < batch; i++) await tx.writeVersion(patientVersion(`p${n++}`));
      });
      if (batch !== 5) await anchorer.anchorNow();
    }
  });
  afterEach(async () => {
    await anchorer.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function tamper(sql: string, ...params: unknown[]): void {
    const db = new Database(file);
    db.prepare(sql).run(...params);
    db.close();
  }

  it('passes a store that nobody touched, and reports its progress', async () => {
    const progress: number[] = [];
    const report = await auditLedger(store.ledger, { chain, pageSize: 16, onProgress: (done) => progress.push(done) });
    expect(report.failures).to.deep.equal([]);
    expect(report).to.include({ leaves: 75, rootsChecked: 3, rootsCheckedOnChain: 3, unanchoredLeaves: 5 });
    expect(progress[progress.length - 1]).to.equal(75);
    expect(progress.length).to.equal(5);
  });

  it('names exactly the version whose content was changed', async () => {
    tamper(`UPDATE versions SET content = replace(content, 'F-p33', 'F-p34') WHERE rid = (SELECT rid FROM resources WHERE id = 'p33')`);
    const report = await auditLedger(store.ledger, { chain });
    expect(report.failures.map((f) => [f.kind, f.reference])).to.deep.equal([['content', 'Patient/p33/_history/1']]);
  });

  it('a leaf hash changed with its content breaks the roots that cover it, bounded by the last good root', async () => {
    tamper('UPDATE ledger_leaves SET leaf_hash = ? WHERE leaf_index = 30', Buffer.alloc(32, 1));
    const report = await auditLedger(store.ledger, { chain });
    expect(report.failures.map((f) => [f.kind, f.reference ?? f.treeSize])).to.deep.equal([
      ['content', 'Patient/p30/_history/1'], ['root', 45], ['root', 70],
    ]);
    expect(report.failures[1]!.message).to.match(/between 20 and 44/);
  });

  it('reports a root that the chain does not hold', async () => {
    tamper('UPDATE ledger_anchors SET root = ? WHERE tree_size = 45', Buffer.alloc(32, 2));
    const report = await auditLedger(store.ledger, { chain });
    expect(report.failures.map((f) => [f.kind, f.treeSize])).to.deep.equal([['root', 45], ['chain', 45]]);
  });

  it('reports missing leaves, leaves without versions and versions without leaves', async () => {
    tamper('DELETE FROM ledger_leaves WHERE leaf_index = 72');
    tamper(`DELETE FROM versions WHERE rid = (SELECT rid FROM resources WHERE id = 'p5')`);
    const report = await auditLedger(store.ledger, { chain });
    expect(report.failures.map((f) => [f.kind, f.reference ?? f.leafIndex])).to.deep.equal([
      ['missing-version', 'Patient/p5/_history/1'], ['leaf-gap', 72], ['missing-leaf', 'Patient/p72/_history/1'],
    ]);
  });

  it('checks the store alone without a chain, and says so', async () => {
    const report = await auditLedger(store.ledger, { chain: undefined, chainUnchecked: 'LEDGER=off' });
    expect(report.failures).to.deep.equal([]);
    expect(report).to.include({ rootsChecked: 3, rootsCheckedOnChain: 0, chainUnchecked: 'LEDGER=off' });
  });
});
