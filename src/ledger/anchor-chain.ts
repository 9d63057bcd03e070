/**
 * The port through which the ledger reaches the chain (DESIGN.md rule 1: the anchorer knows
 * this interface; ethers-anchor-chain.ts implements it; server.ts chooses).
 */

export interface AnchorReceipt {
  blockNumber: number;
  status: 'success' | 'reverted';
  gasUsed: number;
}

/** A signed anchor() transaction: its hash is known before it is broadcast. */
export interface SignedAnchorTransaction {
  hash: string;
  raw: string;
  nonce: number;
}

/** Where a root was recorded on-chain (from the contract's RootAnchored event). */
export interface AnchorLocation {
  txHash: string;
  blockNumber: number;
}

/** The transaction's nonce was used by another transaction: this one can never be mined. */
export class NonceAlreadyUsedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonceAlreadyUsedError';
  }
}

/**
 * The transaction's nonce is beyond the account's next one: the chain lost transactions the
 * account sent before it (a node restarted from an older state), so it would wait unmined forever.
 */
export class NonceAheadOfChainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonceAheadOfChainError';
  }
}

export interface AnchorChain {
  /** Decimal chain id. */
  readonly chainId: string;
  readonly contractAddress: string;
  /** The anchoring account. */
  readonly account: string;
  /** The root the contract holds for a tree size; undefined when it holds none. */
  rootOf(treeSize: number): Promise<Buffer | undefined>;
  /** Builds and signs anchor(treeSize, root) without sending it. */
  signAnchor(treeSize: number, root: Buffer): Promise<SignedAnchorTransaction>;
  /**
   * Sends a signed transaction; a node that already knows it is not an error. Throws
   * NonceAlreadyUsedError or NonceAheadOfChainError for one that can never be mined as it is.
   */
  broadcast(raw: string): Promise<void>;
  /** The receipt of a mined transaction; undefined while it is not mined (or unknown). */
  receipt(txHash: string): Promise<AnchorReceipt | undefined>;
  /** The transaction that recorded the root of a tree size, from the contract's events. */
  findAnchor(treeSize: number): Promise<AnchorLocation | undefined>;
  close(): void;
}
