/**
 * The anchorer on a real SQLite store and a real anvil node (one per file, ephemeral port,
 * state file so it can be stopped and restarted): batching by count and by time, a chain
 * outage under write load (nothing lost, nothing twice), a crash around the broadcast, a root
 * already on-chain, and a chain that disagrees with the log.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { AnchorChain } from '../../src/ledger/anchor-chain.js';
import { Anchorer, type ChainConnector } from '../../src/ledger/anchorer.js';
import { ANVIL_DEV_ADDRESS, ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor, EthersAnchorChain } from '../../src/ledger/ethers-anchor-chain.js';
import { MerkleLog } from '../../src/ledger/merkle-log.js';
import { verifyInclusion } from '../../src/ledger/merkle.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { newVersionLeaf } from '../../src/ledger/version-leaf.js';
import { rootsOnChain as rootsOnContract } from '../support/ledger-load.js';
import type { NewVersion } from '../../src/store/store.js';
import { waitFor } from '../support/wait-for.js';

let written = 0;
function patientVersion(): NewVersion {
  const id = `p${written++}`;
  const lastUpdated = new Date().toISOString();
  const json = JSON.stringify({ resourceType: 'Patient', id, meta: { versionId: '1', lastUpdated }, gender: 'female' });
  return { resourceType: 'Patient', id, versionId: 1, lastUpdated, json, indexEntries: [], leaf: newVersionLeaf({ resourceType: 'Patient', id, versionId: 1, lastUpdated, json }) };
}

async function write(store: SqliteStore, n: number): Promise<void> {
  await store.transaction(async (tx) => {
    for (let i = 0; i < n; i++) await tx.writeVersion(patientVersion());
  });
}

/** Fails like a server killed at a given point of the anchoring, leaving what that would leave. */
class CrashingChain implements AnchorChain {
  constructor(private readonly inner: AnchorChain, private readonly crash: 'before-broadcast' | 'after-broadcast') {}
  get chainId() { return this.inner.chainId; }
  get contractAddress() { return this.inner.contractAddress; }
  get account() { return this.inner.account; }
  rootOf(treeSize: number) { return this.inner.rootOf(treeSize); }
  signAnchor(treeSize: number, root: Buffer) { return this.inner.signAnchor(treeSize, root); }
  async broadcast(raw: string) {
    if (this.crash === 'after-broadcast') await this.inner.broadcast(raw);
    throw new Error(`simulated crash ${this.crash}`);
  }
  receipt(txHash: string) { return this.inner.receipt(txHash); }
  findAnchor(treeSize: number) { return this.inner.findAnchor(treeSize); }
  close() { /* the inner chain is closed by its owner */ }
}

describe('Anchorer (real SQLite store, real anvil node)', function () {
  this.timeout(60_000);
  const chainDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-anchorer-chain-'));
  const stateFile = path.join(chainDir, 'anvil-state.json');
  let anvil: AnvilNode;
  let dir: string;
  let store: SqliteStore;
  let log: MerkleLog;
  let contract: { contractAddress: string; deployBlock: number };
  const anchorers: Anchorer[] = [];
  const chains: AnchorChain[] = [];

  const endpoint = () => ({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY, requestTimeoutMs: 2000 });
  const connector: ChainConnector = async () => {
    const chain = await EthersAnchorChain.connect(endpoint(), contract);
    chains.push(chain);
    return chain;
  };
  function anchorer(options: Partial<ConstructorParameters<typeof Anchorer>[3]> = {}, connect = connector): Anchorer {
    const a = new Anchorer(log, store.ledger, connect, {
      batchLeaves: 1_000_000, batchSeconds: 3600, retryMinMs: 50, retryMaxMs: 400, ...options,
    });
    anchorers.push(a);
    return a;
  }
  // 'pending' counts transactions broadcast but not yet mined too, so a send cannot hide behind block timing.
  const nonce = async () => Number(await jsonRpc(anvil.rpcUrl, 'eth_getTransactionCount', [ANVIL_DEV_ADDRESS, 'pending']));

  /** Every RootAnchored event of the test's contract: tree size → root. */
  const rootsOnChain = () => rootsOnContract(anvil.rpcUrl, contract.contractAddress);


  before(async () => {
    anvil = await AnvilNode.start({ stateFile });
  });
  after(async () => {
    await anvil?.stop();
    fs.rmSync(chainDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-anchorer-'));
    store = new SqliteStore({ file: path.join(dir, 'fhir.sqlite'), synchronous: 'NORMAL', readCacheEntries: 0 });
    log = new MerkleLog(store.ledger);
    // A contract per test: tree sizes start from 0 in every test.
    contract = await deployLedgerAnchor(endpoint());
  });
  afterEach(async () => {
    for (const a of anchorers.splice(0)) await a.stop();
    for (const c of chains.splice(0)) c.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('anchors one root per batch of LEDGER_BATCH_LEAVES leaves, with its receipt', async () => {
    // The anchorer reads the tree size once per cycle that anchors nothing, and a cycle starts
    // after the previous one ended: at the third read, two whole cycles saw 9 leaves and did not anchor.
    let treeSizeReads = 0;
    const readTreeSize = log.treeSize.bind(log);
    log.treeSize = async () => { treeSizeReads++; return readTreeSize(); };
    const a = anchorer({ batchLeaves: 10, pollMs: 10 });
    await write(store, 9);
    a.start();
    await waitFor(() => treeSizeReads >= 3, { what: 'two anchorer cycles over 9 leaves' });
    expect(await store.ledger.anchors()).to.deep.equal([]);
    await write(store, 1);
    await waitFor(async () => (await store.ledger.latestAnchored())?.treeSize === 10, { what: 'the anchor of 10 leaves' });
    const anchor = (await store.ledger.latestAnchored())!;
    expect(anchor.root.equals(await log.root(10))).to.equal(true);
    expect(anchor.txHash).to.match(/^0x[0-9a-f]{64}$/);
    expect(anchor.blockNumber).to.be.a('number');
    expect(anchor.chainId).to.equal('31337');
    expect(anchor.contractAddress).to.equal(contract.contractAddress);
    expect(anchor.gasUsed).to.be.below(50_000);
    expect(anchor.rawTx).to.equal(null);
    expect([...(await rootsOnChain()).entries()]).to.deep.equal([[10, anchor.root.toString('hex')]]);
    // Every leaf's inclusion proof leads to the anchored root.
    for (let i = 0; i < 10; i++) {
      const [leafHash] = await store.ledger.leafHashes(i, i + 1);
      expect(verifyInclusion(leafHash!, i, 10, await log.inclusionProof(i, 10), anchor.root)).to.equal(true);
    }
    expect(a.status()).to.include({ state: 'idle', healthy: true, consecutiveFailures: 0, chainId: '31337' });
  });

  it('anchors fewer leaves once the oldest has waited LEDGER_BATCH_SECONDS', async () => {
    const a = anchorer({ batchLeaves: 1000, batchSeconds: 0.3, pollMs: 20 });
    a.start();
    await write(store, 3);
    // 3 of a batch of 1000: only the age of the oldest leaf can make this anchor.
    await waitFor(async () => (await store.ledger.latestAnchored())?.treeSize === 3, { what: 'the timed anchor' });
    expect((await store.ledger.anchors()).map((x) => x.treeSize)).to.deep.equal([3]);
  });

  it('chain down under write load: writes go on, leaves queue, then all are anchored, no tree size twice', async () => {
    const a = anchorer({ batchLeaves: 20, batchSeconds: 0.2, pollMs: 20 });
    a.start();
    let writing = true;
    let commits = 0;
    const writer = (async () => {
      while (writing) {
        await write(store, 3);
        commits++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await waitFor(async () => ((await store.ledger.latestAnchored())?.treeSize ?? 0) > 0, { what: 'a first anchor' });
    const port = anvil.port;
    await anvil.stop();
    const commitsAtStop = commits;
    await waitFor(() => a.status().consecutiveFailures >= 2, { what: 'failed attempts while the chain is down' });
    expect(a.status().state).to.equal('retrying');
    expect(a.status().healthy).to.equal(false);
    expect(a.status().lastError).to.be.a('string');
    // Writes never waited for the chain: they go on while it is down.
    await waitFor(() => commits - commitsAtStop > 10, { what: 'commits while the chain is down' });
    expect(a.status().healthy).to.equal(false);
    anvil = await AnvilNode.start({ port, stateFile });
    // …and while the anchorer reconnects.
    const commitsAtRestart = commits;
    await waitFor(() => commits - commitsAtRestart > 10, { what: 'commits after the chain is back' });
    writing = false;
    await writer;
    const total = await store.ledger.treeSize();
    await waitFor(async () => (await store.ledger.latestAnchored())?.treeSize === total, { what: 'everything anchored' });
    expect(a.status().healthy).to.equal(true);
    const onChain = await rootsOnChain();
    const recorded = (await store.ledger.anchors()).filter((x) => x.status === 'anchored');
    expect(recorded.map((x) => x.treeSize)).to.deep.equal([...onChain.keys()].sort((x, y) => x - y));
    for (const anchor of recorded) {
      expect(onChain.get(anchor.treeSize)).to.equal(anchor.root.toString('hex'));
      expect(anchor.root.equals(await log.root(anchor.treeSize))).to.equal(true);
    }
    expect((await store.ledger.anchors()).filter((x) => x.status === 'pending')).to.deep.equal([]);
  });

  it('killed after broadcasting: at restart the receipt is recorded and nothing is sent again', async () => {
    await write(store, 5);
    const inner = await connector();
    const crashing = anchorer({}, async () => new CrashingChain(inner, 'after-broadcast'));
    await crashing.anchorNow();
    await crashing.stop();
    const [pending] = await store.ledger.anchors();
    expect(pending).to.include({ treeSize: 5, status: 'pending' });
    // The crashed anchorer did broadcast: wait for it to be mined before counting what was sent.
    await waitFor(async () => (await inner.receipt(pending!.txHash!)) !== undefined, { what: 'the broadcast receipt' });
    const sent = await nonce();
    const restarted = anchorer();
    await restarted.anchorNow();
    const anchors = await store.ledger.anchors();
    expect(anchors).to.have.length(1);
    expect(anchors[0]).to.include({ treeSize: 5, status: 'anchored', txHash: pending!.txHash });
    expect(await nonce()).to.equal(sent);
    expect([...(await rootsOnChain()).keys()]).to.deep.equal([5]);
  });

  it('killed before broadcasting: at restart the recorded transaction is sent, once', async () => {
    await write(store, 4);
    const inner = await connector();
    const crashing = anchorer({}, async () => new CrashingChain(inner, 'before-broadcast'));
    await crashing.anchorNow();
    await crashing.stop();
    const [pending] = await store.ledger.anchors();
    expect(pending).to.include({ treeSize: 4, status: 'pending' });
    const before = await nonce();
    await write(store, 2);
    const restarted = anchorer();
    await restarted.anchorNow();
    const anchors = await store.ledger.anchors();
    expect(anchors.map((x) => [x.treeSize, x.status])).to.deep.equal([[4, 'anchored'], [6, 'anchored']]);
    expect(anchors[0]!.txHash).to.equal(pending!.txHash);
    expect(await nonce()).to.equal(before + 2);
    expect([...(await rootsOnChain()).keys()]).to.deep.equal([4, 6]);
  });

  it('a root already on-chain for the tree size is recorded, not sent again', async () => {
    await write(store, 7);
    const chain = await connector();
    await log.materialize(7);
    const signed = await chain.signAnchor(7, await log.root(7));
    await chain.broadcast(signed.raw);
    await waitFor(async () => (await chain.receipt(signed.hash)) !== undefined, { what: 'the receipt' });
    const before = await nonce();
    const a = anchorer();
    await a.anchorNow();
    expect(await nonce()).to.equal(before);
    expect(await store.ledger.anchors()).to.have.length(1);
    expect(await store.ledger.latestAnchored()).to.include({ treeSize: 7, status: 'anchored', txHash: signed.hash });
  });

  it('stops anchoring when the chain holds another root for a recorded tree size', async () => {
    await write(store, 3);
    const chain = await connector();
    const signed = await chain.signAnchor(3, randomBytes(32));
    await chain.broadcast(signed.raw);
    await waitFor(async () => (await chain.receipt(signed.hash)) !== undefined, { what: 'the receipt' });
    const a = anchorer();
    await a.anchorNow();
    expect(a.status().state).to.equal('diverged');
    expect(a.status().lastError).to.match(/tree size 3/);
    expect(await store.ledger.latestAnchored()).to.equal(undefined);
  });

  it('an anchor the chain no longer has (chain reset) is re-covered by the next root', async () => {
    await write(store, 2);
    const a = anchorer();
    await a.anchorNow();
    expect((await store.ledger.latestAnchored())?.treeSize).to.equal(2);
    await a.stop();
    // A fresh contract stands for a chain that lost its state.
    contract = await deployLedgerAnchor(endpoint());
    const b = anchorer();
    await b.anchorNow();
    const anchors = await store.ledger.anchors();
    expect(anchors.map((x) => [x.treeSize, x.status, x.contractAddress])).to.deep.equal([[2, 'anchored', contract.contractAddress]]);
  });
});
