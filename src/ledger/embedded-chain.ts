/**
 * The embedded chain of `npm start`: an anvil node started and stopped by the server, its state
 * kept in DATA_DIR (anvil --state: loaded at start, written every few seconds and at exit), the
 * LedgerAnchor contract deployed once and its address remembered in DATA_DIR.
 *
 *   DATA_DIR/anvil-state.json      the chain (blocks, accounts, the contract and its roots)
 *   DATA_DIR/ledger-chain.json     { chainId, contractAddress, deployBlock, deployTx, rpcUrl }
 *   DATA_DIR/anvil.pid             the guardian process of the running node
 *
 * Anvil's first development account signs; its key is public, which is fine for a chain that
 * only this server can reach. Production uses CHAIN_RPC_URL instead (see config.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc } from './anvil-node.js';
import type { LedgerLogger } from './anchorer.js';
import { deployLedgerAnchor, type ChainEndpoint, type ContractLocation } from './ethers-anchor-chain.js';

export interface EmbeddedChainInfo {
  chainId: string;
  contractAddress: string;
  deployBlock: number;
  deployTx: string;
  /** The RPC URL of the node while a server runs it (for `fhir-ledger verify`). */
  rpcUrl?: string;
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

function processAlive(pid: number): boolean {
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
    const previousPort = this.node?.port;
    const node = await AnvilNode.start({
      ...(this.options.anvilBinary ? { binary: this.options.anvilBinary } : {}),
      port: previousPort ?? this.options.port ?? 0,
      stateFile: path.join(dataDir, STATE_FILE),
      stateIntervalSeconds: STATE_INTERVAL_SECONDS,
    });
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
    const endpoint: ChainEndpoint = { rpcUrl: node.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY };
    let info = readEmbeddedChainInfo(dataDir);
    const code = info ? await jsonRpc(node.rpcUrl, 'eth_getCode', [info.contractAddress, 'latest']) : '0x';
    if (!info || code === '0x') {
      if (info) this.options.logger?.warn({ contract: info.contractAddress }, 'the embedded chain lost its contract (state file gone?); deploying a new one');
      const deployed = await deployLedgerAnchor(endpoint);
      info = { chainId: deployed.chainId, contractAddress: deployed.contractAddress, deployBlock: deployed.deployBlock, deployTx: deployed.txHash };
      this.options.logger?.info({ contract: info.contractAddress, chainId: info.chainId }, 'LedgerAnchor deployed on the embedded chain');
    }
    fs.writeFileSync(embeddedChainInfoFile(dataDir), `${JSON.stringify({ ...info, rpcUrl: node.rpcUrl }, null, 2)}\n`);
    return { endpoint, contract: { contractAddress: info.contractAddress, deployBlock: info.deployBlock } };
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
    if (info?.rpcUrl) {
      delete info.rpcUrl;
      fs.writeFileSync(embeddedChainInfoFile(this.options.dataDir), `${JSON.stringify(info, null, 2)}\n`);
    }
  }
}
