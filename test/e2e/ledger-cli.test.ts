/**
 * `fhir-ledger verify` as a user runs it: its own process, on the DATA_DIR of a server that has
 * stopped, against the chain the server used (CHAIN_RPC_URL, or the embedded chain's state).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor } from '../../src/ledger/ethers-anchor-chain.js';
import { startTestServer, temporaryDataDir } from '../support/test-server.js';

const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function runVerify(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'verify'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function writeAndAnchor(dataDir: string, overrides: Parameters<typeof startTestServer>[0]): Promise<string[]> {
  const server = await startTestServer({ ...overrides, dataDir });
  const ids: string[] = [];
  try {
    for (let i = 0; i < 12; i++) {
      ids.push((await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', name: [{ family: `Fam${i}` }] } })).json.id);
    }
    await server.request('DELETE', `/fhir/Patient/${ids[3]}`);
    await server.ledger.anchorNow();
    expect((await server.ledger.status()).anchoredSize).to.equal(13);
  } finally {
    await server.close();
  }
  return ids;
}

describe('fhir-ledger verify (CLI, separate process)', function () {
  this.timeout(90_000);

  it('exits 0 on an intact store, 1 naming the tampered version, 2 when the chain is unreachable', async () => {
    const anvil = await AnvilNode.start();
    const dataDir = temporaryDataDir('fhir-ledger-cli-');
    try {
      const contractAddress = (await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY })).contractAddress;
      const ids = await writeAndAnchor(dataDir, {
        ledgerMode: 'rpc', chainRpcUrl: anvil.rpcUrl, chainPrivateKey: ANVIL_DEV_PRIVATE_KEY, ledgerContractAddress: contractAddress,
      });
      const env = { DATA_DIR: dataDir, CHAIN_RPC_URL: anvil.rpcUrl, CHAIN_PRIVATE_KEY: ANVIL_DEV_PRIVATE_KEY, LEDGER_CONTRACT_ADDRESS: contractAddress };

      const clean = await runVerify(env);
      expect(clean.code, clean.stdout + clean.stderr).to.equal(0);
      expect(clean.stdout).to.contain('13 leaves, 1 anchored roots recomputed, 1 compared with chain 31337');
      expect(clean.stdout).to.contain('verification OK');
      expect(clean.stderr).to.contain('verifying: 13/13 leaves (100%)');

      const db = new Database(path.join(dataDir, 'fhir.sqlite'));
      db.prepare(`UPDATE versions SET content = replace(content, '"Fam7"', '"Fam8"')
                  WHERE rid = (SELECT rid FROM resources WHERE id = ?)`).run(ids[7]);
      db.close();
      const tampered = await runVerify(env);
      expect(tampered.code).to.equal(1);
      const failures = tampered.stdout.split('\n').filter((l) => l.startsWith('FAILED'));
      expect(failures).to.deep.equal([
        `FAILED content: Patient/${ids[7]}/_history/1 (leaf 7): the stored content does not match its leaf hash`,
      ]);

      await anvil.stop();
      const db2 = new Database(path.join(dataDir, 'fhir.sqlite'));
      db2.prepare(`UPDATE versions SET content = replace(content, '"Fam8"', '"Fam7"')
                   WHERE rid = (SELECT rid FROM resources WHERE id = ?)`).run(ids[7]);
      db2.close();
      const unreachable = await runVerify(env);
      expect(unreachable.code).to.equal(2);
      expect(unreachable.stdout).to.contain('the chain could not be reached');
    } finally {
      await anvil.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('checks the embedded chain from its state file when no server runs', async () => {
    const dataDir = temporaryDataDir('fhir-ledger-cli-embedded-');
    try {
      await writeAndAnchor(dataDir, { ledgerMode: 'embedded' });
      const state = fs.statSync(path.join(dataDir, 'anvil-state.json')).mtimeMs;
      const result = await runVerify({ DATA_DIR: dataDir });
      expect(result.code, result.stdout + result.stderr).to.equal(0);
      expect(result.stdout).to.contain('1 compared with chain 31337');
      // The private node only read the state.
      expect(fs.statSync(path.join(dataDir, 'anvil-state.json')).mtimeMs).to.equal(state);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
