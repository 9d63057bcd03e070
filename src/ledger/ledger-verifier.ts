/**
 * Verification of stored versions against the ledger and the chain, and the log's status
 * (`$verify` and `$ledger`). A version is verified when all three checks pass:
 *  - content: SHA-256(0x00 || salt || JCS(stored JSON)) equals the version's leaf hash;
 *  - proof:   the RFC 9162 inclusion proof of that leaf leads to the latest anchored root;
 *  - chain:   the contract holds that root for that tree size.
 * Each failure is named, so a tampered version is told apart from a tampered log or chain.
 */
import type { LedgerAnchor, LedgerStore, StoredVersion, StoreReader } from '../store/store.js';
import type { AnchorChain } from './anchor-chain.js';
import type { AnchorerStatus } from './anchorer.js';
import { verifyInclusion } from './merkle.js';
import type { MerkleLog } from './merkle-log.js';
import { versionLeafHash } from './version-leaf.js';

export type VerificationCheck = 'leaf' | 'content' | 'proof' | 'chain';

/**
 * verified: every check passed; failed: at least one check found a mismatch; pending: the
 * content matches but no anchored root covers the leaf yet; unavailable: the content and proof
 * match but the chain could not be asked.
 */
export type VerificationStatus = 'verified' | 'failed' | 'pending' | 'unavailable';

export interface AnchorEvidence {
  treeSize: number;
  root: string;
  txHash: string | null;
  blockNumber: number | null;
  chainId: string | null;
  contractAddress: string | null;
}

export interface VersionVerification {
  resourceType: string;
  id: string;
  versionId: number;
  deleted: boolean;
  status: VerificationStatus;
  verified: boolean;
  failed: VerificationCheck[];
  /** Why each failed or unavailable check did not pass, in words. */
  reasons: string[];
  contentMatchesLeaf: boolean;
  leafIndex?: number;
  /** The leaf hash stored in the ledger (hex). */
  leafHash?: string;
  /** The leaf hash recomputed from the stored content (hex). */
  contentHash?: string;
  /** The version's salt (hex): with it and the resource JSON anyone can recompute the leaf. */
  salt?: string;
  /** The latest anchored root, which the proof is against. */
  anchor?: AnchorEvidence;
  /** The first anchored root that included the leaf. */
  firstAnchoredTreeSize?: number;
  inclusionProof?: string[];
  proofMatchesRoot?: boolean;
  /** undefined when the chain could not be asked. */
  rootOnChain?: boolean;
}

export interface LedgerStatus {
  treeSize: number;
  anchoredSize: number;
  pendingLeaves: number;
  pendingTransactions: number;
  lastAnchor: (AnchorEvidence & { anchoredAt: number | null; gasUsed: number | null }) | undefined;
  anchorer: AnchorerStatus | undefined;
  mode: string;
}

/**
 * A consistency proof between two sizes of the log (RFC 9162 §2.1.4): the log of the second
 * size extends the first, nothing in it rewritten. With the anchors of both sizes, a third
 * party checks that the chain's two roots belong to one append-only log.
 */
export interface ConsistencyEvidence {
  firstSize: number;
  secondSize: number;
  firstRoot: string;
  secondRoot: string;
  proof: string[];
  /** The anchors recorded for either size, if it was anchored. */
  firstAnchor?: AnchorEvidence;
  secondAnchor?: AnchorEvidence;
}

/** The chain to read roots from, if any is reachable now. */
export type ChainReader = () => Promise<AnchorChain | undefined>;

function evidence(anchor: LedgerAnchor): AnchorEvidence {
  return {
    treeSize: anchor.treeSize, root: anchor.root.toString('hex'), txHash: anchor.txHash, blockNumber: anchor.blockNumber,
    chainId: anchor.chainId, contractAddress: anchor.contractAddress,
  };
}

/** Remembers the chain's answers for the duration of one verification request. */
class ChainRootCache {
  private readonly roots = new Map<number, Promise<Buffer | undefined>>();
  private chain: Promise<AnchorChain | undefined> | undefined;

  constructor(private readonly reader: ChainReader) {}

  async rootOf(anchor: LedgerAnchor): Promise<{ root: Buffer | undefined; error?: string }> {
    this.chain ??= this.reader().catch(() => undefined);
    const chain = await this.chain;
    if (!chain) return { root: undefined, error: 'the chain is not reachable' };
    if (anchor.contractAddress && anchor.contractAddress.toLowerCase() !== chain.contractAddress.toLowerCase()) {
      return { root: undefined, error: `anchored on contract ${anchor.contractAddress}, the server now uses ${chain.contractAddress}` };
    }
    let pending = this.roots.get(anchor.treeSize);
    if (!pending) {
      pending = chain.rootOf(anchor.treeSize);
      this.roots.set(anchor.treeSize, pending);
    }
    try {
      return { root: await pending };
    } catch (error) {
      return { root: undefined, error: `the chain did not answer: ${(error as Error).message}` };
    }
  }
}

export class LedgerVerifier {
  constructor(
    private readonly store: StoreReader,
    private readonly ledger: LedgerStore,
    private readonly log: MerkleLog,
    private readonly chain: ChainReader,
    private readonly anchorerStatus: () => AnchorerStatus | undefined,
    private readonly mode: string,
  ) {}

  /** undefined when the version does not exist. */
  async verifyVersion(resourceType: string, id: string, versionId: number): Promise<VersionVerification | undefined> {
    const version = await this.store.readVersion(resourceType, id, versionId);
    if (!version) return undefined;
    return this.verifyStoredVersion(version, await this.ledger.latestAnchored(), new ChainRootCache(this.chain));
  }

  /** Every version of a resource, newest first; undefined when the resource does not exist. */
  async verifyResource(resourceType: string, id: string): Promise<VersionVerification[] | undefined> {
    const versions: StoredVersion[] = [];
    for (let offset = 0; ; ) {
      const page = await this.store.history({ resourceType, id, count: 500, offset });
      versions.push(...page.versions);
      offset += page.versions.length;
      if (page.versions.length === 0 || offset >= page.total) break;
    }
    if (versions.length === 0) return undefined;
    const latest = await this.ledger.latestAnchored();
    const roots = new ChainRootCache(this.chain);
    const results: VersionVerification[] = [];
    for (const version of versions) results.push(await this.verifyStoredVersion(version, latest, roots));
    return results;
  }

  private async verifyStoredVersion(version: StoredVersion, latest: LedgerAnchor | undefined,
    roots: ChainRootCache): Promise<VersionVerification> {
    const result: VersionVerification = {
      resourceType: version.resourceType, id: version.id, versionId: version.versionId, deleted: version.deleted,
      status: 'failed', verified: false, failed: [], reasons: [], contentMatchesLeaf: false,
    };
    const leaf = await this.ledger.leafOfVersion(version.resourceType, version.id, version.versionId);
    if (!leaf) {
      result.failed.push('leaf');
      result.reasons.push('the version has no leaf in the ledger');
      return result;
    }
    result.leafIndex = leaf.leafIndex;
    result.leafHash = leaf.leafHash.toString('hex');
    result.salt = leaf.salt.toString('hex');
    let contentHash: Buffer | undefined;
    try {
      contentHash = versionLeafHash(leaf.salt, version);
      result.contentHash = contentHash.toString('hex');
    } catch (error) {
      result.reasons.push(`the stored content cannot be canonicalized: ${(error as Error).message}`);
    }
    result.contentMatchesLeaf = contentHash?.equals(leaf.leafHash) ?? false;
    if (!result.contentMatchesLeaf) {
      result.failed.push('content');
      if (contentHash) result.reasons.push('the stored content does not match its leaf hash: it was changed after it was written');
    }
    if (!latest || latest.treeSize <= leaf.leafIndex) {
      if (result.failed.length === 0) {
        result.status = 'pending';
        result.reasons.push('no anchored root covers this leaf yet');
      }
      return result;
    }
    result.anchor = evidence(latest);
    result.firstAnchoredTreeSize = (await this.ledger.firstAnchoredCovering(leaf.leafIndex))?.treeSize;
    const proof = await this.log.inclusionProof(leaf.leafIndex, latest.treeSize);
    result.inclusionProof = proof.map((p) => p.toString('hex'));
    // The proof is of the stored leaf: a changed content fails `content`, a changed leaf or log fails `proof`.
    result.proofMatchesRoot = verifyInclusion(leaf.leafHash, leaf.leafIndex, latest.treeSize, proof, latest.root);
    if (!result.proofMatchesRoot) {
      result.failed.push('proof');
      result.reasons.push(`the inclusion proof does not lead to the anchored root of tree size ${latest.treeSize}`);
    }
    const onChain = await roots.rootOf(latest);
    if (onChain.error) {
      result.reasons.push(onChain.error);
    } else {
      result.rootOnChain = onChain.root?.equals(latest.root) ?? false;
      if (!result.rootOnChain) {
        result.failed.push('chain');
        result.reasons.push(onChain.root
          ? `the contract holds another root for tree size ${latest.treeSize}`
          : `the contract holds no root for tree size ${latest.treeSize}`);
      }
    }
    if (result.failed.length > 0) result.status = 'failed';
    else if (result.rootOnChain === undefined) result.status = 'unavailable';
    else {
      result.status = 'verified';
      result.verified = true;
    }
    return result;
  }

  /**
   * The consistency proof from `firstSize` to `secondSize` (default: the latest anchored size).
   * undefined when the sizes are not 0 < first <= second <= the log's size.
   */
  async consistency(firstSize: number, secondSize?: number): Promise<ConsistencyEvidence | undefined> {
    const anchored = (await this.ledger.anchors()).filter((a) => a.status === 'anchored');
    const second = secondSize ?? anchored[anchored.length - 1]?.treeSize;
    if (second === undefined || firstSize < 1 || firstSize > second || second > await this.ledger.treeSize()) return undefined;
    const anchorOf = (size: number) => anchored.find((a) => a.treeSize === size);
    const [firstAnchor, secondAnchor] = [anchorOf(firstSize), anchorOf(second)];
    return {
      firstSize,
      secondSize: second,
      firstRoot: (await this.log.root(firstSize)).toString('hex'),
      secondRoot: (await this.log.root(second)).toString('hex'),
      proof: (await this.log.consistencyProof(firstSize, second)).map((h) => h.toString('hex')),
      ...(firstAnchor ? { firstAnchor: evidence(firstAnchor) } : {}),
      ...(secondAnchor ? { secondAnchor: evidence(secondAnchor) } : {}),
    };
  }

  async status(): Promise<LedgerStatus> {
    const treeSize = await this.ledger.treeSize();
    const anchors = await this.ledger.anchors();
    const anchored = anchors.filter((a) => a.status === 'anchored');
    const last = anchored[anchored.length - 1];
    const anchoredSize = last?.treeSize ?? 0;
    return {
      treeSize,
      anchoredSize,
      pendingLeaves: treeSize - anchoredSize,
      pendingTransactions: anchors.filter((a) => a.status === 'pending').length,
      lastAnchor: last ? { ...evidence(last), anchoredAt: last.anchoredAt, gasUsed: last.gasUsed } : undefined,
      anchorer: this.anchorerStatus(),
      mode: this.mode,
    };
  }
}
