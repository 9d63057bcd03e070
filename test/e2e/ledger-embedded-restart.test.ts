/**
 * The embedded chain of `npm start` dies under write load (issue 5, "Chain node down or slow"):
 * its anvil process is killed with SIGKILL, so it writes no state on the way out and loses what
 * it mined since its last periodic state dump. FHIR writes go on; the anchorer reconnects
 * through the connector, which starts a new anvil on the same state file and the same
 * contract; the anchorer reconciles (anchors the restarted chain lost are covered again,
 * pending ones settled) and every version ends up anchored, each tree size once on the chain.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ANVIL_DEV_ADDRESS, jsonRpc } from '../../src/ledger/anvil-node.js';
import { embeddedChainInfoFile, processAlive, readEmbeddedChainInfo, type EmbeddedChainInfo } from '../../src/ledger/embedded-chain.js';
import type { LedgerStatus } from '../../src/ledger/ledger-verifier.js';
import { rootsOnChain, writeLoad } from '../support/ledger-load.js';
import { startTestServer, temporaryDataDir, type TestServer } from '../support/test-server.js';
import { waitFor } from '../support/wait-for.js';


/** A probe's first defined value (support/wait-for.ts), polled every 50 ms. */
function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: () => string): Promise<NonNullable<T>> {
  return waitFor(probe, { timeoutMs, intervalMs: 50, what });
}

/** The running node as DATA_DIR/ledger-chain.json describes it. */
function runningNode(dataDir: string): (EmbeddedChainInfo & { rpcUrl: string; anvilPid: number }) | undefined {
  const info = readEmbeddedChainInfo(dataDir);
  return info?.rpcUrl && info.anvilPid && processAlive(info.anvilPid) ? info as EmbeddedChainInfo & { rpcUrl: string; anvilPid: number } : undefined;
}

describe('ledger end to end: the embedded anvil killed under write load', function () {
  // Generous: the CI machine is a loaded 2-core box, and anvil restarts from its state file.
  this.timeout(240_000);
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('restarts anvil on the same state and contract, and anchors every version, each tree size once', async () => {
    const dataDir = temporaryDataDir('fhir-ledger-embedded-restart-');
    server = await startTestServer({ ledgerMode: 'embedded', ledgerBatchLeaves: 20, ledgerBatchSeconds: 0.2, dataDir });
    const s = server;
    const load = writeLoad(s.baseUrl, 3);
    let stopped: { ok: number; failed: number } | undefined;
    try {
      await until(async () => ((await s.ledger.status()).anchoredSize > 0 ? true : undefined), 60_000,
        () => 'a first anchor on the embedded chain');
      const before = await until(() => runningNode(dataDir), 30_000, () => `the node in ${embeddedChainInfoFile(dataDir)}`);
      // The load runs against the first node for a while.
      const acknowledgedBefore = load.acknowledged();
      await until(() => load.acknowledged() >= acknowledgedBefore + 20 || undefined, 60_000, () => 'writes before the kill');

      // SIGKILL: no state written at exit, the anchorer's connection cut mid-cycle.
      process.kill(before.anvilPid, 'SIGKILL');
      let anchorer: LedgerStatus['anchorer'];
      const after = await until(async () => {
        anchorer = (await s.ledger.status()).anchorer;
        const node = runningNode(dataDir);
        return node && node.anvilPid !== before.anvilPid ? node : undefined;
      }, 90_000, () => `a new anvil after pid ${before.anvilPid} was killed; anchorer: ${JSON.stringify(anchorer)}`);
      expect(processAlive(before.anvilPid), 'the killed anvil is gone').to.equal(false);
      expect(after.contractAddress, 'the restarted node keeps the contract').to.equal(before.contractAddress);
      expect(after.deployTx).to.equal(before.deployTx);

      // Writes go on against the restarted node too.
      const acknowledgedAfter = load.acknowledged();
      await until(() => load.acknowledged() >= acknowledgedAfter + 20 || undefined, 60_000, () => 'writes after the restart');
      stopped = await load.stop();
      expect(stopped.failed, 'FHIR writes failed while the chain was down').to.equal(0);
      expect(stopped.ok).to.be.greaterThan(20);

      let last: LedgerStatus | undefined;
      const status = await until(async () => {
        last = await s.ledger.status();
        return last.anchoredSize === last.treeSize && last.pendingTransactions === 0 && last.anchorer?.healthy === true
          ? last : undefined;
      }, 120_000, () => `every version anchored: ${JSON.stringify(last)}`);
      expect(status.treeSize).to.equal(stopped.ok);
      expect(status.anchorer).to.include({ state: 'idle', healthy: true, consecutiveFailures: 0 });
      expect(status.anchorer?.contractAddress).to.equal(before.contractAddress);

      const node = runningNode(dataDir)!;
      const onChain = await rootsOnChain(node.rpcUrl, before.contractAddress);
      expect(Math.max(...onChain.keys())).to.equal(status.treeSize);
      expect(onChain.get(status.treeSize)).to.equal(status.lastAnchor?.root);
      // The surviving chain holds the deployment and one transaction per root: no anchor was
      // sent twice (a second one for a tree size would have been mined as a revert).
      const sent = Number(await jsonRpc(node.rpcUrl, 'eth_getTransactionCount', [ANVIL_DEV_ADDRESS, 'latest']));
      expect(sent).to.equal(onChain.size + 1);
      expect(fs.existsSync(path.join(dataDir, 'anvil-state.json'))).to.equal(true);

      // Spot checks: versions written before, during and after the outage verify against the chain.
      const history = (await s.request('GET', `/fhir/Observation/_history?_count=${Math.min(stopped.ok, 500)}`)).json;
      const entries = history.entry as { fullUrl: string; resource: { id: string; meta: { versionId: string } } }[];
      for (const entry of entries.filter((_, i) => i % Math.max(1, Math.floor(entries.length / 12)) === 0)) {
        const p = (await s.request('GET', `/fhir/Observation/${entry.resource.id}/_history/${entry.resource.meta.versionId}/$verify`))
          .json.parameter as { name: string; valueCode?: string }[];
        expect(p.find((x) => x.name === 'status')?.valueCode, entry.fullUrl).to.equal('verified');
      }
    } finally {
      if (!stopped) await load.stop();
    }
  });
});
