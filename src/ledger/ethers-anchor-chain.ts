/**
 * The AnchorChain adapter on ethers v6: any Ethereum JSON-RPC endpoint (anvil, Besu, Geth, a
 * public testnet) and the LedgerAnchor contract (contracts/LedgerAnchor.sol).
 *
 * The provider is built with a static network (the chain id is asked once, with a plain
 * JSON-RPC call), so that a node that is down makes calls fail fast instead of putting
 * ethers into its background network-detection loop; every request has a timeout.
 */
import {
  ContractFactory, FetchRequest, Interface, JsonRpcProvider, Network, Transaction, Wallet, getBigInt, toBeHex,
  zeroPadValue, type FeeData, type TransactionRequest,
} from 'ethers';
import {
  NonceAheadOfChainError, NonceAlreadyUsedError, type AnchorChain, type AnchorLocation, type AnchorReceipt, type SignedAnchorTransaction,
} from './anchor-chain.js';
import { loadLedgerAnchorArtifact } from './ledger-anchor-artifact.js';

export interface ChainEndpoint {
  rpcUrl: string;
  /** 0x-prefixed hex private key of the anchoring account. */
  privateKey: string;
  /** Per-request timeout. */
  requestTimeoutMs?: number;
}

export interface ContractLocation {
  contractAddress: string;
  /** Block of the contract's deployment: where event searches start (0 when unknown). */
  deployBlock?: number;
}

const ZERO_ROOT = `0x${'00'.repeat(32)}`;
const FEE_DATA_TTL_MS = 30_000;

function ledgerAnchorInterface(): Interface {
  return new Interface(loadLedgerAnchorArtifact().abi as string[]);
}

/** eth_chainId with a plain request (no provider yet). */
async function askChainId(rpcUrl: string, timeoutMs: number): Promise<bigint> {
  const request = new FetchRequest(rpcUrl);
  request.timeout = timeoutMs;
  request.setHeader('content-type', 'application/json');
  request.body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] });
  const response = await request.send();
  response.assertOk();
  const body = response.bodyJson as { result?: string; error?: { message: string } };
  if (!body.result) throw new Error(`eth_chainId failed: ${body.error?.message ?? 'no result'}`);
  return getBigInt(body.result);
}

async function connectProvider(rpcUrl: string, timeoutMs: number): Promise<{ provider: JsonRpcProvider; chainId: bigint }> {
  const chainId = await askChainId(rpcUrl, timeoutMs);
  const request = new FetchRequest(rpcUrl);
  request.timeout = timeoutMs;
  const network = Network.from(chainId);
  const provider = new JsonRpcProvider(request, network, { staticNetwork: network, batchMaxCount: 1, polling: false, cacheTimeout: -1 });
  return { provider, chainId };
}

/** Polls for a receipt (no subscriptions, so nothing lingers when the node goes away). */
async function waitForReceipt(provider: JsonRpcProvider, hash: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const receipt = await provider.getTransactionReceipt(hash);
    if (receipt) return receipt;
    if (Date.now() > deadline) throw new Error(`transaction ${hash} not mined within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Deploys LedgerAnchor from the given account (which becomes its owner and first anchorer). */
export async function deployLedgerAnchor(endpoint: ChainEndpoint, timeoutMs = 60_000):
Promise<{ contractAddress: string; deployBlock: number; txHash: string; chainId: string }> {
  const { provider, chainId } = await connectProvider(endpoint.rpcUrl, endpoint.requestTimeoutMs ?? 10_000);
  try {
    const artifact = loadLedgerAnchorArtifact();
    const wallet = new Wallet(endpoint.privateKey, provider);
    const factory = new ContractFactory(artifact.abi as string[], artifact.bytecode, wallet);
    const deployTx = await factory.getDeployTransaction();
    const sent = await wallet.sendTransaction(deployTx);
    const receipt = await waitForReceipt(provider, sent.hash, timeoutMs);
    if (receipt.status !== 1 || !receipt.contractAddress) throw new Error(`LedgerAnchor deployment ${sent.hash} failed`);
    return { contractAddress: receipt.contractAddress, deployBlock: receipt.blockNumber, txHash: sent.hash, chainId: chainId.toString() };
  } finally {
    provider.destroy();
  }
}

/** A contract-level explanation of a failed call, e.g. "TreeSizeAlreadyAnchored(12, 0x…)". */
function describeRevert(iface: Interface, error: unknown): string {
  const data = (error as { data?: string }).data ?? (error as { info?: { error?: { data?: string } } }).info?.error?.data;
  if (typeof data === 'string' && data.length >= 10) {
    try {
      const parsed = iface.parseError(data);
      if (parsed) return `${parsed.name}(${parsed.args.map(String).join(', ')})`;
    } catch { /* not one of ours */ }
  }
  return (error as Error).message ?? String(error);
}

export class EthersAnchorChain implements AnchorChain {
  private gasLimit: bigint | undefined;
  private nextNonce: number | undefined;
  private fees: { data: FeeData; at: number } | undefined;

  private constructor(
    private readonly provider: JsonRpcProvider,
    private readonly wallet: Wallet,
    private readonly iface: Interface,
    readonly chainId: string,
    readonly contractAddress: string,
    private readonly deployBlock: number,
  ) {}

  get account(): string {
    return this.wallet.address;
  }

  /** Connects and checks that the contract exists; throws while the node is unreachable. */
  static async connect(endpoint: ChainEndpoint, contract: ContractLocation): Promise<EthersAnchorChain> {
    const { provider, chainId } = await connectProvider(endpoint.rpcUrl, endpoint.requestTimeoutMs ?? 10_000);
    try {
      const code = await provider.getCode(contract.contractAddress);
      if (code === '0x') throw new Error(`no contract at ${contract.contractAddress} on chain ${chainId}`);
      const wallet = new Wallet(endpoint.privateKey, provider);
      return new EthersAnchorChain(provider, wallet, ledgerAnchorInterface(), chainId.toString(),
        contract.contractAddress, contract.deployBlock ?? 0);
    } catch (error) {
      provider.destroy();
      throw error;
    }
  }

  async rootOf(treeSize: number): Promise<Buffer | undefined> {
    const result = await this.provider.call({
      to: this.contractAddress, data: this.iface.encodeFunctionData('rootOf', [treeSize]),
    });
    const [root] = this.iface.decodeFunctionResult('rootOf', result) as unknown as [string];
    return root === ZERO_ROOT ? undefined : Buffer.from(root.slice(2), 'hex');
  }

  async signAnchor(treeSize: number, root: Buffer): Promise<SignedAnchorTransaction> {
    const data = this.iface.encodeFunctionData('anchor', [treeSize, `0x${root.toString('hex')}`]);
    if (this.gasLimit === undefined) {
      // Estimated once per connection (an anchor always costs the same: one new slot, one log),
      // which also explains a call that would fail, e.g. TreeSizeAlreadyAnchored.
      let estimate: bigint;
      try {
        estimate = await this.provider.estimateGas({ from: this.wallet.address, to: this.contractAddress, data });
      } catch (error) {
        throw new Error(`anchor(${treeSize}) would fail: ${describeRevert(this.iface, error)}`, { cause: error });
      }
      this.gasLimit = (estimate * 3n) / 2n;
    }
    this.nextNonce ??= await this.provider.getTransactionCount(this.wallet.address, 'pending');
    const fees = await this.feeData();
    const request: TransactionRequest = {
      to: this.contractAddress, data, nonce: this.nextNonce, gasLimit: this.gasLimit, chainId: BigInt(this.chainId),
      ...(fees.maxFeePerGas !== null && fees.maxPriorityFeePerGas !== null
        ? { type: 2, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas }
        : { type: 0, gasPrice: fees.gasPrice ?? 0n }),
    };
    const raw = await this.wallet.signTransaction(request);
    const tx = Transaction.from(raw);
    return { hash: tx.hash!, raw, nonce: tx.nonce };
  }

  /** Fee data, asked at most every FEE_DATA_TTL_MS (it is three calls). */
  private async feeData(): Promise<FeeData> {
    if (!this.fees || Date.now() - this.fees.at > FEE_DATA_TTL_MS) {
      this.fees = { data: await this.provider.getFeeData(), at: Date.now() };
    }
    return this.fees.data;
  }

  async broadcast(raw: string): Promise<void> {
    const nonce = Transaction.from(raw).nonce;
    if (this.nextNonce !== nonce) {
      // Not signed on this connection (a pending anchor sent again): a node would take a nonce
      // beyond the account's next one without a word and never mine it, so ask first.
      const next = await this.provider.getTransactionCount(this.wallet.address, 'pending');
      if (nonce > next) {
        throw new NonceAheadOfChainError(`transaction ${Transaction.from(raw).hash} has nonce ${nonce}, the account is at ${next} on the chain`);
      }
    }
    try {
      await this.provider.send('eth_sendRawTransaction', [raw]);
      // The anchoring account is the anchorer's alone: the next nonce is known without asking.
      if (this.nextNonce === nonce) this.nextNonce = nonce + 1;
    } catch (error) {
      // Whatever happened, ask the node for the next nonce again.
      this.nextNonce = undefined;
      const code = (error as { code?: string }).code;
      const message = JSON.stringify((error as { info?: unknown }).info ?? '') + String((error as Error).message);
      if (/already known|known transaction|already imported|already exists/i.test(message)) return;
      if (code === 'NONCE_EXPIRED' || (/nonce/i.test(message) && /too low/i.test(message))) {
        throw new NonceAlreadyUsedError(`transaction ${Transaction.from(raw).hash} can no longer be mined: its nonce is used`);
      }
      throw error;
    }
  }

  async receipt(txHash: string): Promise<AnchorReceipt | undefined> {
    const receipt = await this.provider.getTransactionReceipt(txHash);
    if (!receipt) return undefined;
    return {
      blockNumber: receipt.blockNumber,
      status: receipt.status === 1 ? 'success' : 'reverted',
      gasUsed: Number(receipt.gasUsed),
    };
  }

  async findAnchor(treeSize: number): Promise<AnchorLocation | undefined> {
    const event = this.iface.getEvent('RootAnchored')!;
    const logs = await this.provider.getLogs({
      address: this.contractAddress,
      topics: [event.topicHash, zeroPadValue(toBeHex(treeSize), 32)],
      fromBlock: this.deployBlock,
      toBlock: 'latest',
    });
    const log = logs[0];
    return log ? { txHash: log.transactionHash, blockNumber: log.blockNumber } : undefined;
  }

  close(): void {
    this.provider.destroy();
  }
}
