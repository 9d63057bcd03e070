/**
 * The anchorer after its chain node died (issue 5, "Chain node down or slow"), on a real SQLite
 * store and real anvil nodes:
 *  - a failed cycle drops the connection, so the next attempt goes through the connector again
 *    (which is how the embedded node gets restarted, here: on another port) and recovers;
 *  - a chain that lost recent transactions (a node restarted from an older state dump; here an
 *    evm_revert): recorded anchors it no longer holds, and a pending one signed after them whose
 *    nonce the account no longer reaches, are abandoned, not sent, and re-covered by one new root.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { AnchorChain } from '../../src/ledger/anchor-chain.js';
import { Anchorer, type ChainConnector } from '../../src/ledger/anchorer.js';
import { ANVIL_DEV_ADDRESS, ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor, EthersAnchorChain } from '../../src/ledger/ethers-anchor-chain.js';
import { MerkleLog } from '../../src/ledger/merkle-log.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { newVersionLeaf } from '../../src/ledger/version-leaf.js';

let written = 0;
async function write(store: SqliteStore, n: number): Promise<void> {
  await store.transaction(async (tx) => {
    for (let i = 0; i < n; i++) {
      const id = `r${written++}`;
      const lastUpdated = new Date().toISOString();
      const json = JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: '1', lastUpdated } });
      const leaf = newVersionLeaf({ resourceType: 'Patient', id, versionId: 1, lastUpdated, json });
      await tx.writeVersion({ resourceType: 'Patient', id, versionId: 1, lastUpdated, json, indexEntries: [], leaf });
    }
  });
}

/** Fails at the broadcast like a node that died right after the anchor was signed and recorded. */
class DiesAtBroadcast implements AnchorChain {
  constructor(private readonly inner: AnchorChain) {}
  get chainId() { return this.inner.chainId; }
  get contractAddress() { return this.inner.contractAddress; }
  get account() { return this.inner.account; }
  rootOf(treeSize: number) { return this.inner.rootOf(treeSize); }
  signAnchor(treeSize: number, root: Buffer) { return this.inner.signAnchor(treeSize, root); }
  broadcast(): Promise<void> { return Promise.reject(new Error('connect ECONNREFUSED (simulated)')); }
  receipt(txHash: string) { return this.inner.receipt(txHash); }
  findAnchor(treeSize: number) { return this.inner.findAnchor(treeSize); }
  close() { this.inner.close(); }
}

describe('Anchorer after its chain node died (real SQLite store, real anvil)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: SqliteStore;
  let log: MerkleLog;
  const nodes: AnvilNode[] = [];
  const anchorers: Anchorer[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-anchorer-reconnect-'));
    store = new SqliteStore({ file: path.join(dir, 'fhir.sqlite'), synchronous: 'NORMAL', readCacheEntries: 0 });
    log = new MerkleLog(store.ledger);
  });
  afterEach(async () => {
    for (const a of anchorers.splice(0)) await a.stop();
    for (const n of nodes.splice(0)) await n.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function anchorer(connect: ChainConnector): Anchorer {
    const a = new Anchorer(log, store.ledger, connect, {
      batchLeaves: 1_000_000, batchSeconds: 3600, retryMinMs: 50, retryMaxMs: 400, receiptTimeoutMs: 10_000,
    });
    anchorers.push(a);
    return a;
  }

  it('a failed cycle drops the connection: the next one reconnects through the connector and recovers', async () => {
    const stateFile = path.join(dir, 'anvil-state.json');
    let node = await AnvilNode.start({ stateFile });
    nodes.push(node);
    const contract = await deployLedgerAnchor({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    let connections = 0;
    // Like the embedded connector: always the node that runs now, wherever it listens.
    const a = anchorer(async () => {
      connections++;
      return EthersAnchorChain.connect({ rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, requestTimeoutMs: 5000 }, contract);
    });
    await write(store, 3);
    await a.anchorNow();
    expect((await store.ledger.latestAnchored())?.treeSize).to.equal(3);
    expect(connections).to.equal(1);

    await node.stop(); // graceful: the state file holds the contract and the root of 3
    await write(store, 2);
    await a.anchorNow();
    expect(a.status()).to.include({ state: 'retrying', healthy: false, consecutiveFailures: 1 });
    expect(a.connectedChain(), 'the failed connection is dropped').to.equal(undefined);

    // The node comes back elsewhere, from its state: only a new connection can reach it.
    node = await AnvilNode.start({ stateFile });
    nodes.push(node);
    await a.anchorNow();
    expect(a.status()).to.include({ state: 'idle', healthy: true, consecutiveFailures: 0 });
    expect(connections).to.be.greaterThan(1);
    expect((await store.ledger.latestAnchored())?.treeSize).to.equal(5);
    expect(a.connectedChain()).to.not.equal(undefined);
  });

  it('a chain that lost recent transactions: lost anchors and a pending one beyond its nonce are re-covered, none sent twice', async () => {
    const node = await AnvilNode.start();
    nodes.push(node);
    const endpoint = { rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, requestTimeoutMs: 5000 };
    const contract = await deployLedgerAnchor(endpoint);
    const nonce = async () => Number(await jsonRpc(node.rpcUrl, 'eth_getTransactionCount', [ANVIL_DEV_ADDRESS, 'pending']));
    const connector: ChainConnector = () => EthersAnchorChain.connect(endpoint, contract);

    const first = anchorer(connector);
    await write(store, 2);
    await first.anchorNow();
    const dump = await jsonRpc(node.rpcUrl, 'evm_snapshot'); // the node's "last state dump"
    const nonceAtDump = await nonce();
    await write(store, 2);
    await first.anchorNow();
    await write(store, 2);
    await first.anchorNow();
    expect((await store.ledger.anchors()).map((x) => [x.treeSize, x.status])).to.deep.equal([[2, 'anchored'], [4, 'anchored'], [6, 'anchored']]);
    // The node dies as the next anchor is sent: recorded pending, with the next nonce.
    await first.stop();
    await write(store, 1);
    const dying = anchorer(async () => new DiesAtBroadcast(await connector()));
    await dying.anchorNow();
    await dying.stop();
    expect((await store.ledger.anchors()).at(-1)).to.include({ treeSize: 7, status: 'pending' });

    // It comes back from the dump: the anchors of 4 and 6 and their nonces are gone.
    expect(await jsonRpc(node.rpcUrl, 'evm_revert', [dump])).to.equal(true);
    expect(await nonce()).to.equal(nonceAtDump);
    await write(store, 1);
    const restarted = anchorer(connector);
    await restarted.anchorNow();
    expect(restarted.status()).to.include({ state: 'idle', healthy: true });
    expect((await store.ledger.anchors()).map((x) => [x.treeSize, x.status])).to.deep.equal([
      [2, 'anchored'], [4, 'abandoned'], [6, 'abandoned'], [7, 'abandoned'], [8, 'anchored'],
    ]);
    // One transaction since the dump: the root of 8, which covers every leaf; nothing else sent.
    expect(await nonce()).to.equal(nonceAtDump + 1);
    const chain = await connector();
    try {
      expect((await chain.rootOf(8))?.equals(await log.root(8))).to.equal(true);
      for (const size of [4, 6, 7]) expect(await chain.rootOf(size), `root of ${size}`).to.equal(undefined);
    } finally {
      chain.close();
    }
  });
});
