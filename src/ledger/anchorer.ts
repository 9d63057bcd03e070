/**
 * The anchorer (DESIGN.md "after commit"): turns committed leaves into roots on the chain,
 * one transaction per root, and never blocks or fails a FHIR write: it only reads committed
 * leaves and writes its own rows.
 *
 * Each cycle (a timer, one cycle at a time):
 *  1. connect to the chain (the embedded anvil is started by the connector on first use, and
 *     started again if it died) and, once per connection, reconcile with it (below);
 *  2. settle anchors left `pending` (by a crash, a timeout or a chain outage): a receipt → record
 *     it; the root already on-chain → record it, not re-sent; otherwise broadcast the same
 *     signed transaction again, or mark it abandoned if it can no longer be mined (its nonce used
 *     meanwhile, or beyond the account's next one on a chain that lost transactions);
 *  3. when LEDGER_BATCH_LEAVES leaves are waiting, or the oldest has waited LEDGER_BATCH_SECONDS:
 *     cache the subtree hashes, compute the root of the CURRENT tree size, and if the chain has
 *     no root for that size, sign anchor(size, root), record it as pending (with the signed
 *     transaction, whose hash is known before sending), broadcast, and record the receipt.
 * A root covers every leaf below its tree size, so leaves that waited out an outage are all
 * covered by the next root (none lost), and a tree size is never sent twice: it is recorded as
 * pending before it is sent, and the contract refuses a second root for a size (none twice).
 * Failures back off exponentially; the FHIR server goes on meanwhile. A failed cycle drops its
 * connection (see dropChain), so the next attempt connects and reconciles anew; only a chain that
 * disagrees with the log (LedgerDivergedError) stops anchoring for good.
 */
import type { LedgerAnchor, LedgerStore } from '../store/store.js';
import { NonceAheadOfChainError, NonceAlreadyUsedError, type AnchorChain, type AnchorReceipt } from './anchor-chain.js';
import type { MerkleLog } from './merkle-log.js';

export type ChainConnector = () => Promise<AnchorChain>;

/** The subset of pino's Logger the ledger uses. */
export interface LedgerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AnchorerOptions {
  /** Anchor as soon as this many leaves wait. */
  batchLeaves: number;
  /** …or as soon as the oldest waiting leaf has waited this long. */
  batchSeconds: number;
  /** How often the log is looked at (default: 200 ms, or less for very short batch times). */
  pollMs?: number;
  /** First and largest delay between failed attempts (defaults 500 ms and 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How long to wait for a receipt before leaving the anchor pending for a later cycle. */
  receiptTimeoutMs?: number;
}

export type AnchorerState = 'starting' | 'idle' | 'anchoring' | 'retrying' | 'diverged' | 'stopped';

export interface AnchorerStatus {
  state: AnchorerState;
  healthy: boolean;
  consecutiveFailures: number;
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  nextAttemptAt: number | undefined;
  lastAnchoredAt: number | undefined;
  chainId: string | undefined;
  contractAddress: string | undefined;
  account: string | undefined;
  batchLeaves: number;
  batchSeconds: number;
}

/** The chain holds another root for a tree size than the local log: tampering or a foreign log. */
export class LedgerDivergedError extends Error {
  constructor(readonly treeSize: number, readonly localRoot: Buffer, readonly chainRoot: Buffer) {
    super(`the chain holds root ${chainRoot.toString('hex')} for tree size ${treeSize}, the local log ${localRoot.toString('hex')}`);
    this.name = 'LedgerDivergedError';
  }
}

const silentLogger: LedgerLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export class Anchorer {
  private timer: NodeJS.Timeout | undefined;
  private cycle: Promise<void> | undefined;
  private chain: AnchorChain | undefined;
  private reconciled = false;
  /** Whether the chain was asked for the root of a size before anchoring it, since the last failure. */
  private chainChecked = false;
  /** When the oldest unanchored leaf was first seen waiting. */
  private pendingSince: number | undefined;
  private readonly pollMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly receiptTimeoutMs: number;
  private current: AnchorerStatus;

  constructor(
    private readonly log: MerkleLog,
    private readonly ledger: LedgerStore,
    private readonly connect: ChainConnector,
    private readonly options: AnchorerOptions,
    private readonly logger: LedgerLogger = silentLogger,
  ) {
    this.pollMs = options.pollMs ?? Math.max(10, Math.min(200, options.batchSeconds * 250));
    this.retryMinMs = options.retryMinMs ?? 500;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
    this.receiptTimeoutMs = options.receiptTimeoutMs ?? 60_000;
    this.current = {
      state: 'starting', healthy: true, consecutiveFailures: 0, lastError: undefined, lastErrorAt: undefined,
      nextAttemptAt: undefined, lastAnchoredAt: undefined, chainId: undefined, contractAddress: undefined,
      account: undefined, batchLeaves: options.batchLeaves, batchSeconds: options.batchSeconds,
    };
  }

  status(): AnchorerStatus {
    return { ...this.current };
  }

  /** The chain connection, once there is one (verification reads roots through it). */
  connectedChain(): AnchorChain | undefined {
    return this.chain;
  }

  start(): void {
    if (this.timer || this.current.state === 'stopped') return;
    this.timer = setInterval(() => this.tick(false), this.pollMs);
    this.timer.unref();
    this.tick(false);
  }

  /** Stops the timer and waits for a cycle in progress (its tx stays pending if cut short). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.current.state = 'stopped';
    await this.cycle;
    this.chain?.close();
    this.chain = undefined;
  }

  /**
   * Runs one cycle now, anchoring whatever waits regardless of the batch thresholds
   * (and of a pending back-off); resolves when the cycle is over. For tests and the CLI.
   */
  async anchorNow(): Promise<void> {
    await this.cycle;
    this.current.nextAttemptAt = undefined;
    this.tick(true);
    await this.cycle;
  }

  private tick(force: boolean): void {
    if (this.cycle || this.current.state === 'diverged') return;
    if (this.current.state === 'stopped' && !force) return;
    if (!force && this.current.nextAttemptAt !== undefined && Date.now() < this.current.nextAttemptAt) return;
    this.cycle = this.runCycle(force).finally(() => { this.cycle = undefined; });
  }

  private async runCycle(force: boolean): Promise<void> {
    try {
      const chain = await this.connectChain();
      if (!this.reconciled) {
        await this.reconcileWithChain(chain);
        this.reconciled = true;
      } else {
        await this.settlePendingAnchors(chain);
      }
      const size = await this.log.treeSize();
      const anchoredSize = (await this.ledger.latestAnchored())?.treeSize ?? 0;
      if (size > anchoredSize) {
        const now = Date.now();
        this.pendingSince ??= now;
        const due = force || size - anchoredSize >= this.options.batchLeaves
          || now - this.pendingSince >= this.options.batchSeconds * 1000;
        if (due) {
          this.current.state = 'anchoring';
          await this.anchorTreeSize(chain, size);
          // Leaves committed while this root was being anchored have waited since it started.
          this.pendingSince = (await this.log.treeSize()) > size ? now : undefined;
        }
      } else {
        this.pendingSince = undefined;
      }
      this.succeeded();
    } catch (error) {
      this.failed(error);
    }
  }

  private async connectChain(): Promise<AnchorChain> {
    if (!this.chain) {
      this.chain = await this.connect();
      this.current.chainId = this.chain.chainId;
      this.current.contractAddress = this.chain.contractAddress;
      this.current.account = this.chain.account;
      this.logger.info({ chainId: this.chain.chainId, contract: this.chain.contractAddress, account: this.chain.account },
        'ledger anchorer connected to the chain');
    }
    return this.chain;
  }

  private succeeded(): void {
    if (this.current.consecutiveFailures > 0) this.logger.info({}, 'ledger anchorer recovered');
    this.current.consecutiveFailures = 0;
    this.current.nextAttemptAt = undefined;
    this.current.healthy = true;
    if (this.current.state !== 'stopped') this.current.state = 'idle';
  }

  private failed(error: unknown): void {
    this.chainChecked = false;
    const message = error instanceof Error ? error.message : String(error);
    this.current.lastError = message;
    this.current.lastErrorAt = Date.now();
    this.current.healthy = false;
    if (error instanceof LedgerDivergedError) {
      this.current.state = 'diverged';
      this.logger.error({ err: message, treeSize: error.treeSize }, 'LEDGER DIVERGED FROM THE CHAIN: anchoring stopped');
      return;
    }
    this.dropChain();
    this.current.consecutiveFailures++;
    const delay = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** (this.current.consecutiveFailures - 1));
    this.current.nextAttemptAt = Date.now() + delay;
    if (this.current.state !== 'stopped') this.current.state = 'retrying';
    this.logger.warn({ err: message, failures: this.current.consecutiveFailures, retryInMs: delay },
      'ledger anchoring failed; leaves stay queued');
  }

  /**
   * Drops the connection after a failed cycle, so that the next attempt connects anew through the
   * connector (the only way a dead embedded node is started again) and reconciles with the chain
   * again: a node that came back may have lost what it mined last (an embedded anvil killed hard
   * restarts from its last state dump), and pending anchors must be settled against the chain as
   * it is now. Any failure drops it, not only a refused connection: a dead, hung or restarted
   * node fails in many ways (refused, reset, timed out, a receipt that never comes), and
   * reconnecting costs two calls per back-off step.
   */
  private dropChain(): void {
    this.chain?.close();
    this.chain = undefined;
    this.reconciled = false;
  }

  /**
   * On each new connection: settle pending anchors, and check that the latest recorded anchors
   * are still on the chain (an embedded chain whose state was lost, or that restarted from an
   * older state dump, no longer has them; their leaves are then re-covered by the next root).
   */
  private async reconcileWithChain(chain: AnchorChain): Promise<void> {
    await this.settlePendingAnchors(chain);
    const anchored = (await this.ledger.anchors()).filter((a) => a.status === 'anchored').reverse();
    for (const anchor of anchored) {
      const onChain = await chain.rootOf(anchor.treeSize);
      if (onChain?.equals(anchor.root)) return;
      if (onChain) throw new LedgerDivergedError(anchor.treeSize, anchor.root, onChain);
      this.logger.warn({ treeSize: anchor.treeSize, txHash: anchor.txHash },
        'a recorded anchor is not on the chain (chain reset?); its leaves will be anchored again');
      await this.ledger.saveAnchor({ ...anchor, status: 'abandoned' });
    }
  }

  private async settlePendingAnchors(chain: AnchorChain): Promise<void> {
    for (const anchor of await this.ledger.anchors()) {
      if (anchor.status === 'pending') await this.settlePendingAnchor(chain, anchor);
    }
  }

  private async settlePendingAnchor(chain: AnchorChain, anchor: LedgerAnchor): Promise<void> {
    const receipt = anchor.txHash ? await chain.receipt(anchor.txHash) : undefined;
    if (receipt) {
      await this.recordOutcome(chain, anchor, receipt);
      return;
    }
    const onChain = await chain.rootOf(anchor.treeSize);
    if (onChain) {
      if (!onChain.equals(anchor.root)) throw new LedgerDivergedError(anchor.treeSize, anchor.root, onChain);
      await this.recordFoundOnChain(chain, anchor);
      return;
    }
    if (!anchor.rawTx) {
      await this.ledger.saveAnchor({ ...anchor, status: 'abandoned' });
      return;
    }
    try {
      await chain.broadcast(anchor.rawTx);
    } catch (error) {
      if (error instanceof NonceAlreadyUsedError) {
        this.logger.warn({ treeSize: anchor.treeSize, txHash: anchor.txHash }, 'pending anchor superseded (nonce used); abandoned');
        await this.ledger.saveAnchor({ ...anchor, status: 'abandoned', rawTx: null });
        return;
      }
      if (error instanceof NonceAheadOfChainError) {
        // Never sent to this chain (it lost the transactions before it): its leaves go into the next root.
        this.logger.warn({ treeSize: anchor.treeSize, txHash: anchor.txHash },
          'pending anchor signed for transactions the chain lost (restarted from an older state?); abandoned');
        await this.ledger.saveAnchor({ ...anchor, status: 'abandoned', rawTx: null });
        return;
      }
      throw error;
    }
    await this.recordOutcome(chain, anchor, await this.waitForReceipt(chain, anchor.txHash!));
  }

  private async anchorTreeSize(chain: AnchorChain, treeSize: number): Promise<void> {
    await this.log.materialize(treeSize);
    const root = await this.log.root(treeSize);
    const base: LedgerAnchor = {
      treeSize, root, status: 'pending', txHash: null, rawTx: null, blockNumber: null, chainId: chain.chainId,
      contractAddress: chain.contractAddress, gasUsed: null, createdAt: Date.now(), anchoredAt: null,
    };
    // Asked on the first anchor of a connection and after a failure: in steady state this
    // anchorer is the only writer of sizes above the last one it recorded, and a duplicate
    // would be refused by the contract and settled by recordOutcome anyway.
    const onChain = this.chainChecked ? undefined : await chain.rootOf(treeSize);
    if (onChain) {
      // Already there (sent by an earlier run whose record was lost): record it, do not re-send.
      if (!onChain.equals(root)) throw new LedgerDivergedError(treeSize, root, onChain);
      await this.recordFoundOnChain(chain, base);
      return;
    }
    const signed = await chain.signAnchor(treeSize, root);
    const pending: LedgerAnchor = { ...base, txHash: signed.hash, rawTx: signed.raw };
    // Recorded before it is sent: after a crash, the next start finds it and settles it.
    await this.ledger.saveAnchor(pending);
    await chain.broadcast(signed.raw);
    await this.recordOutcome(chain, pending, await this.waitForReceipt(chain, signed.hash));
    this.chainChecked = true;
  }

  private async waitForReceipt(chain: AnchorChain, txHash: string): Promise<AnchorReceipt> {
    const deadline = Date.now() + this.receiptTimeoutMs;
    for (let delay = 10; ; delay = Math.min(delay * 2, 1000)) {
      const receipt = await chain.receipt(txHash);
      if (receipt) return receipt;
      if (Date.now() > deadline) throw new Error(`no receipt for ${txHash} within ${this.receiptTimeoutMs} ms; left pending`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async recordOutcome(chain: AnchorChain, anchor: LedgerAnchor, receipt: AnchorReceipt): Promise<void> {
    if (receipt.status === 'success') {
      await this.ledger.saveAnchor({
        ...anchor, status: 'anchored', rawTx: null, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed,
        anchoredAt: Date.now(),
      });
      this.current.lastAnchoredAt = Date.now();
      this.logger.info({ treeSize: anchor.treeSize, root: anchor.root.toString('hex'), txHash: anchor.txHash,
        blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }, 'ledger root anchored');
      return;
    }
    // Reverted: if the root is there all the same (another transaction put it), record that.
    const onChain = await chain.rootOf(anchor.treeSize);
    if (onChain?.equals(anchor.root)) {
      await this.recordFoundOnChain(chain, anchor);
    } else if (onChain) {
      throw new LedgerDivergedError(anchor.treeSize, anchor.root, onChain);
    } else {
      await this.ledger.saveAnchor({ ...anchor, status: 'abandoned', rawTx: null, blockNumber: receipt.blockNumber });
      throw new Error(`anchor transaction ${anchor.txHash} reverted`);
    }
  }

  private async recordFoundOnChain(chain: AnchorChain, anchor: LedgerAnchor): Promise<void> {
    const found = await chain.findAnchor(anchor.treeSize).catch(() => undefined);
    const receipt = found ? await chain.receipt(found.txHash).catch(() => undefined) : undefined;
    await this.ledger.saveAnchor({
      ...anchor, status: 'anchored', rawTx: null, txHash: found?.txHash ?? anchor.txHash,
      blockNumber: found?.blockNumber ?? null, gasUsed: receipt?.gasUsed ?? null, anchoredAt: Date.now(),
      chainId: chain.chainId, contractAddress: chain.contractAddress,
    });
    this.current.lastAnchoredAt = Date.now();
    this.logger.info({ treeSize: anchor.treeSize, txHash: found?.txHash }, 'ledger root found on-chain; recorded, not re-sent');
  }
}
