/**
 * The embedded node's lifecycle: anvil keeps its state across a graceful stop, and a server
 * killed with SIGKILL leaves no anvil behind (anvil-guardian ends it, and it writes its state).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { AnvilNode, jsonRpc, resolveAnvilBinary } from '../../src/ledger/anvil-node.js';
import { waitFor } from '../support/wait-for.js';

const fixture = fileURLToPath(new URL('./fixtures/anvil-parent.js', import.meta.url));

async function reachable(rpcUrl: string): Promise<boolean> {
  try {
    await jsonRpc(rpcUrl, 'eth_chainId', [], 300);
    return true;
  } catch {
    return false;
  }
}

describe('anvil node lifecycle', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-anvil-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('finds the anvil binary that npm installed for this platform', () => {
    expect(fs.existsSync(resolveAnvilBinary())).to.equal(true);
  });

  it('keeps its chain in the state file across a stop and a start', async () => {
    const stateFile = path.join(dir, 'state.json');
    const first = await AnvilNode.start({ stateFile });
    await jsonRpc(first.rpcUrl, 'evm_mine', []);
    await jsonRpc(first.rpcUrl, 'evm_mine', []);
    await first.stop();
    expect(fs.existsSync(stateFile)).to.equal(true);
    const second = await AnvilNode.start({ stateFile });
    try {
      expect(Number(await jsonRpc(second.rpcUrl, 'eth_blockNumber'))).to.equal(2);
    } finally {
      await second.stop();
    }
  });

  it('a parent killed with SIGKILL leaves no anvil behind, and the state is written', async () => {
    const stateFile = path.join(dir, 'state.json');
    const parent = spawn(process.execPath, [fixture, stateFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    const line = await new Promise<string>((resolve) => readline.createInterface({ input: parent.stdout! }).once('line', resolve));
    const { rpcUrl, guardianPid } = JSON.parse(line) as { rpcUrl: string; guardianPid: number };
    expect(await reachable(rpcUrl)).to.equal(true);
    parent.kill('SIGKILL');
    await exited;
    await waitFor(async () => !(await reachable(rpcUrl)), { what: 'anvil to stop after its parent was killed' });
    const guardianGone = () => { try { process.kill(guardianPid, 0); return false; } catch { return true; } };
    await waitFor(guardianGone, { what: `the guardian (pid ${guardianPid}) to exit` });
    expect(fs.existsSync(stateFile)).to.equal(true);
  });

  it('reports an anvil that cannot start', async () => {
    try {
      await AnvilNode.start({ binary: path.join(dir, 'no-such-anvil'), startTimeoutMs: 3000 });
      expect.fail('started');
    } catch (error) {
      expect((error as Error).message).to.match(/anvil/);
    }
  });
});
