/**
 * The embedded chain of `npm start`: an anvil node started and stopped by the server, its state
 * kept in DATA_DIR (anvil --state: loaded at start, written every few seconds and at exit), the
 * LedgerAnchor contract deployed once and its address remembered in DATA_DIR.
 *
 *   DATA_DIR/anvil-state.json      the chain (blocks, accounts, the contract and its roots)
 *   DATA_DIR/ledger-chain.json     { chainId, contractAddress, deployBlock, deployTx, rpcUrl, anvilPid }
 *   DATA_DIR/anvil.pid             the guardian process of the running node
 *
 * A node that dies (killed, crashed) is started again by the next ready(), i.e. the anchorer's
 * next connection attempt, from the same state file and with the same contract. Killed hard, it
 * loses what it mined since its last state dump; the anchorer's reconciliation re-covers that.
 *
 * Anvil's first development account signs; its key is public, which is fine for a chain that
 * only this server can reach. Production uses CHAIN_RPC_URL instead (see config.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc, type AnvilOptions } from './anvil-node.js';
import type { LedgerLogger } from './anchorer.js';
import { deployLedgerAnchor, type ChainEndpoint, type ContractLocation } from './ethers-anchor-chain.js';

export interface EmbeddedChainInfo {
  chainId: string;
  contractAddress: string;
  deployBlock: number;
  deployTx: string;
  /** The RPC URL of the node while a server runs it (for `fhir-ledger verify`). */
  rpcUrl?: string;
  /** anvil's own process while a server runs it (not its guardian's: anvil.pid has that). */
  anvilPid?: number;
}

export interface EmbeddedChainOptions {
  dataDir: string;
  anvilBinary?: string;
  /** 0: a free loopback port. */
  port?: number;
  logger?: LedgerLogger;
}

const STATE_FILE = 'anvil-state.json';
const INFO_FILE = 'ledger-chain.json';
const PID_FILE = 'anvil.pid';
/** anvil also writes its state every few seconds, so a hard kill loses little. */
const STATE_INTERVAL_SECONDS = 5;

export function embeddedChainInfoFile(dataDir: string): string {
  return path.join(dataDir, INFO_FILE);
}

export function readEmbeddedChainInfo(dataDir: string): EmbeddedChainInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(embeddedChainInfoFile(dataDir), 'utf8')) as EmbeddedChainInfo;
  } catch {
    return undefined;
  }
}

/** Whether a process of this pid exists (signal 0 tests, sends nothing). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when DATA_DIR's anvil (started by a server) is still running. */
export function embeddedNodeRunning(dataDir: string): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && processAlive(pid);
  } catch {
    return false;
  }
}

/** Whether an anvil state file (JSON, written whole or being written) holds code at an address. */
function stateFileHoldsCode(stateFile: string, address: string): boolean {
  try {
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { accounts?: Record<string, { code?: string }> };
    const code = state.accounts?.[address.toLowerCase()]?.code;
    return code !== undefined && code !== '0x';
  } catch {
    return false; // not written yet, or caught mid-write
  }
}

/**
 * A node left by a server that was killed ends by itself (its guardian sees the pipe close);
 * wait for that, so that two nodes never write the same state file.
 */
async function waitForPreviousNode(dataDir: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (embeddedNodeRunning(dataDir)) {
    if (Date.now() > deadline) throw new Error(`the anvil node of ${dataDir} (pid file ${PID_FILE}) is still running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class EmbeddedChain {
  private node: AnvilNode | undefined;
  private starting: Promise<{ endpoint: ChainEndpoint; contract: ContractLocation }> | undefined;
  private stopped = false;

  constructor(private readonly options: EmbeddedChainOptions) {}

  /** Starts the node and deploys the contract if needed; concurrent callers share one start. */
  ready(): Promise<{ endpoint: ChainEndpoint; contract: ContractLocation }> {
    if (this.stopped) return Promise.reject(new Error('the embedded chain is stopped'));
    if (this.node && !this.node.running) this.starting = undefined; // it died: start it again
    this.starting ??= this.start().catch((error: unknown) => {
      this.starting = undefined;
      throw error;
    });
    return this.starting;
  }

  private async start(): Promise<{ endpoint: ChainEndpoint; contract: ContractLocation }> {
    const { dataDir } = this.options;
    fs.mkdirSync(dataDir, { recursive: true });
    await waitForPreviousNode(dataDir);
    const node = await this.startNode();
    if (this.stopped) {
      await node.stop();
      throw new Error('the embedded chain is stopped');
    }
    this.node = node;
    fs.writeFileSync(path.join(dataDir, PID_FILE), String(node.pid));
    void node.exited.then(() => {
      if (!this.stopped) this.options.logger?.warn({ output: node.lastOutput() }, 'embedded anvil exited; it restarts on the next anchoring attempt');
      try {
        if (fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8') === String(node.pid)) fs.rmSync(path.join(dataDir, PID_FILE));
      } catch { /* already gone */ }
    });
    try {
      return await this.prepareContract(node);
    } catch (error) {
      // Left running, this node would make the next attempt wait for it to end (waitForPreviousNode), in vain.
      await node.stop();
      throw error;
    }
  }

  /**
   * A restart (the node died) takes the port of the node it replaces, from the same state file;
   * if that port was taken meanwhile, any free one does: the connector reads the new URL.
   */
  private async startNode(): Promise<AnvilNode> {
    const options: AnvilOptions = {
      ...(this.options.anvilBinary ? { binary: this.options.anvilBinary } : {}),
      stateFile: path.join(this.options.dataDir, STATE_FILE),
      stateIntervalSeconds: STATE_INTERVAL_SECONDS,
    };
    const previousPort = this.node?.port;
    if (previousPort !== undefined && !this.options.port) {
      try {
        return await AnvilNode.start({ ...options, port: previousPort });
      } catch (error) {
        this.options.logger?.warn({ port: previousPort, err: (error as Error).message }, 'embedded anvil cannot restart on its port; taking another');
      }
    }
    return AnvilNode.start({ ...options, port: this.options.port ?? 0 });
  }

  /** The contract remembered in DATA_DIR if the chain still holds it, else a new deployment. */
  private async prepareContract(node: AnvilNode): Promise<{ endpoint: ChainEndpoint; contract: ContractLocation }> {
    const { dataDir } = this.options;
    const endpoint: ChainEndpoint = { rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY };
    let info = readEmbeddedChainInfo(dataDir);
    const code = info ? await jsonRpc(node.rpcUrl, 'eth_getCode', [info.contractAddress, 'latest']) : '0x';
    if (!info || code === '0x') {
      if (info) this.options.logger?.warn({ contract: info.contractAddress }, 'the embedded chain lost its contract (state file gone?); deploying a new one');
      const deployed = await deployLedgerAnchor(endpoint);
      info = { chainId: deployed.chainId, contractAddress: deployed.contractAddress, deployBlock: deployed.deployBlock, deployTx: deployed.txHash };
      this.options.logger?.info({ contract: info.contractAddress, chainId: info.chainId }, 'LedgerAnchor deployed on the embedded chain');
      await this.waitForStateToHold(node, info.contractAddress);
    }
    fs.writeFileSync(embeddedChainInfoFile(dataDir), `${JSON.stringify({ ...info, rpcUrl: node.rpcUrl, anvilPid: node.anvilPid }, null, 2)}\n`);
    return { endpoint, contract: { contractAddress: info.contractAddress, deployBlock: info.deployBlock } };
  }

  /**
   * anvil writes its state file every STATE_INTERVAL_SECONDS and when it stops gracefully, not
   * when it is killed: a contract deployed just before a hard kill would be lost, and the node
   * restarted from the state file would get a new contract, leaving the roots anchored on the
   * first out of reach. So a new deployment is ready once a state dump holds it; if none comes
   * in time, this warns and goes on (a later dump will hold it).
   */
  private async waitForStateToHold(node: AnvilNode, contractAddress: string): Promise<void> {
    const stateFile = path.join(this.options.dataDir, STATE_FILE);
    const deadline = Date.now() + STATE_INTERVAL_SECONDS * 3000;
    while (node.running && Date.now() < deadline) {
      if (stateFileHoldsCode(stateFile, contractAddress)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    this.options.logger?.warn({ contract: contractAddress, stateFile }, 'no anvil state dump holds the new contract yet; a hard kill of the node now would lose it');
  }

  get rpcUrl(): string | undefined {
    return this.node?.running ? this.node.rpcUrl : undefined;
  }

  /** Stops the node; it writes its state file on the way out. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.starting?.catch(() => undefined);
    await this.node?.stop();
    const info = readEmbeddedChainInfo(this.options.dataDir);
    if (info?.rpcUrl || info?.anvilPid) {
      delete info.rpcUrl;
      delete info.anvilPid;
      fs.writeFileSync(embeddedChainInfoFile(this.options.dataDir), `${JSON.stringify(info, null, 2)}\n`);
    }
  }
}
