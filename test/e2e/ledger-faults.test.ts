/**
 * Faults end to end (issue: tamper-evident history, "Faults"):
 *  - the chain node stops and restarts under an HTTP write load: every write succeeds, and once
 *    the node is back every version is anchored, each tree size once;
 *  - the server is killed (SIGKILL) while it anchors under load, and restarted: it reconciles
 *    with the chain, and no root is sent twice (the account sent exactly one transaction per root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ANVIL_DEV_ADDRESS, ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor } from '../../src/ledger/ethers-anchor-chain.js';
import { rootsOnChain, writeLoad } from '../support/ledger-load.js';
import { startTestServer, temporaryDataDir } from '../support/test-server.js';
import { waitFor } from '../support/wait-for.js';

const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

async function transactionsSent(rpcUrl: string): Promise<number> {
  return Number(await jsonRpc(rpcUrl, 'eth_getTransactionCount', [ANVIL_DEV_ADDRESS, 'latest']));
}

describe('ledger faults (e2e)', function () {
  this.timeout(120_000);

  it('anvil stopped and restarted under write load: writes go on, then every version is anchored, none twice', async () => {
    const chainDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-fault-chain-'));
    const stateFile = path.join(chainDir, 'state.json');
    let anvil = await AnvilNode.start({ stateFile });
    const { contractAddress } = await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    const server = await startTestServer({
      ledgerMode: 'rpc', chainRpcUrl: anvil.rpcUrl, chainPrivateKey: ANVIL_DEV_PRIVATE_KEY, ledgerContractAddress: contractAddress,
      ledgerBatchLeaves: 50, ledgerBatchSeconds: 0.2,
    });
    try {
      const load = writeLoad(server.baseUrl, 4);
      await waitFor(() => load.acknowledged() >= 20, { what: 'writes before the chain goes down' });
      const port = anvil.port;
      await anvil.stop();
      await waitFor(async () => (await server.ledger.status()).anchorer?.healthy === false, { what: 'the anchorer to notice the chain is down' });
      // Writes go on while the chain is down, and their leaves wait.
      const acknowledgedWhileDown = load.acknowledged();
      await waitFor(() => load.acknowledged() >= acknowledgedWhileDown + 20, { what: 'writes while the chain is down' });
      const during = await server.ledger.status();
      expect(during.anchorer?.healthy).to.equal(false);
      expect(during.pendingLeaves).to.be.greaterThan(0);
      anvil = await AnvilNode.start({ port, stateFile });
      const acknowledgedAtRestart = load.acknowledged();
      await waitFor(() => load.acknowledged() >= acknowledgedAtRestart + 10, { what: 'writes after the chain is back' });
      const { ok, failed } = await load.stop();
      expect(failed, 'FHIR writes failed while the chain was down').to.equal(0);
      expect(ok).to.be.greaterThan(50);

      let status = await server.ledger.status();
      await waitFor(async () => {
        status = await server.ledger.status();
        return status.anchoredSize === status.treeSize && status.anchorer?.healthy === true;
      }, { timeoutMs: 60_000, what: () => `caught up: ${JSON.stringify(status)}` });
      expect(status.treeSize).to.equal(ok);
      const onChain = await rootsOnChain(anvil.rpcUrl, contractAddress);
      expect(Math.max(...onChain.keys())).to.equal(ok);
      // One transaction per root, plus the deployment: nothing was sent twice.
      expect(await transactionsSent(anvil.rpcUrl)).to.equal(onChain.size + 1);
      // Spot checks of versions written while the chain was down.
      const history = (await server.request('GET', '/fhir/Observation/_history?_count=200')).json;
      for (const entry of history.entry.slice(0, 200).filter((_: unknown, i: number) => i % 20 === 0)) {
        const [type, id, , vid] = new URL(entry.fullUrl + '/_history/1').pathname.split('/').slice(-4);
        const p = (await server.request('GET', `/fhir/${type}/${id}/_history/${vid}/$verify`)).json.parameter as { name: string; valueCode?: string }[];
        expect(p.find((x) => x.name === 'status')?.valueCode).to.equal('verified');
      }
    } finally {
      await server.stop();
      await anvil.stop();
      fs.rmSync(chainDir, { recursive: true, force: true });
    }
  });

  it('server killed while anchoring under load: at restart it reconciles, and no root is sent twice', async () => {
    const anvil = await AnvilNode.start();
    const dataDir = temporaryDataDir('fhir-ledger-fault-kill-');
    const { contractAddress } = await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    const env = {
      ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info',
      CHAIN_RPC_URL: anvil.rpcUrl, CHAIN_PRIVATE_KEY: ANVIL_DEV_PRIVATE_KEY, LEDGER_CONTRACT_ADDRESS: contractAddress,
      LEDGER_BATCH_LEAVES: '10', LEDGER_BATCH_SECONDS: '0.05',
    };
    const start = async (): Promise<{ child: ChildProcess; baseUrl: string; exited: Promise<unknown> }> => {
      const child = spawn(process.execPath, [cli, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const lines = readline.createInterface({ input: child.stdout! });
      const baseUrl = await new Promise<string>((resolve, reject) => {
        void exited.then((code) => reject(new Error(`server exited early with ${String(code)}`)));
        lines.on('line', (line) => {
          try {
            const record = JSON.parse(line) as { baseUrl?: string };
            if (record.baseUrl) resolve(record.baseUrl);
          } catch { /* not a log line */ }
        });
      });
      child.stdout!.resume();
      return { child, baseUrl, exited };
    };
    try {
      const first = await start();
      const load = writeLoad(first.baseUrl, 4);
      // Killed while it anchors: once a few roots are on the chain, more are on their way.
      await waitFor(async () => (await rootsOnChain(anvil.rpcUrl, contractAddress)).size > 3, { intervalMs: 100, what: 'a few roots anchored under load' });
      first.child.kill('SIGKILL');
      await load.stop();
      await first.exited;
      const rootsBefore = await rootsOnChain(anvil.rpcUrl, contractAddress);
      expect(rootsBefore.size).to.be.greaterThan(3);

      const second = await start();
      try {
        let p: { name: string; valueInteger?: number }[] = [];
        const get = (n: string) => p.find((x) => x.name === n)?.valueInteger;
        await waitFor(async () => {
          p = (await (await fetch(`${second.baseUrl}/$ledger`)).json() as { parameter: typeof p }).parameter;
          return get('treeSize') === get('anchoredSize') && get('pendingTransactions') === 0;
        }, { timeoutMs: 60_000, intervalMs: 50, what: () => `reconciled: ${JSON.stringify(p)}` });
        const status = { treeSize: { valueInteger: get('treeSize')! } };
        const onChain = await rootsOnChain(anvil.rpcUrl, contractAddress);
        expect(Math.max(...onChain.keys())).to.equal(status.treeSize.valueInteger);
        expect(await transactionsSent(anvil.rpcUrl)).to.equal(onChain.size + 1);
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
      // The whole store, re-checked offline against the chain.
      const verify = spawn(process.execPath, [cli, 'verify'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      verify.stdout!.on('data', (c) => { out += c; });
      const code = await new Promise((resolve) => verify.once('exit', resolve));
      expect(code, out).to.equal(0);
    } finally {
      await anvil.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
