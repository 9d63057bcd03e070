/**
 * The whole-store audit behind `fhir-ledger verify`: every leaf recomputed from its stored
 * version, every recorded root recomputed from the leaves (streaming, with a Merkle frontier:
 * the subtree cache is not trusted), and every recorded root compared with the chain's.
 *
 * Failures name what they can: a version whose content no longer matches its leaf is named
 * exactly; a leaf hash that was changed together with its content shows as a root mismatch,
 * bounded to the leaves between the last good root and the first bad one.
 */
import type { LedgerAnchor, LedgerStore } from '../store/store.js';
import type { AnchorChain } from './anchor-chain.js';
import { MerkleFrontier } from './merkle.js';
import { versionLeafHash } from './version-leaf.js';

export type AuditFailureKind = 'content' | 'missing-version' | 'missing-leaf' | 'leaf-gap' | 'root' | 'chain';

export interface AuditFailure {
  kind: AuditFailureKind;
  /** `Type/id/_history/vid` when the failure is one version. */
  reference?: string;
  leafIndex?: number;
  treeSize?: number;
  message: string;
}

export interface AuditReport {
  leaves: number;
  /** Anchored roots recomputed from the leaves. */
  rootsChecked: number;
  /** Anchored roots compared with the chain (0 without a chain). */
  rootsCheckedOnChain: number;
  /** Leaves not covered by any anchored root yet. */
  unanchoredLeaves: number;
  failures: AuditFailure[];
  chain: { chainId: string; contractAddress: string } | undefined;
  /** Why the chain was not consulted, when it was not. */
  chainUnchecked: string | undefined;
}

export interface AuditOptions {
  /** The chain to compare roots with; undefined checks the store alone. */
  chain: AnchorChain | undefined;
  chainUnchecked?: string;
  /** Called now and then with (leaves done, total leaves). */
  onProgress?: (done: number, total: number) => void;
  pageSize?: number;
  /** Stop listing failures after this many (the count goes on). */
  maxFailures?: number;
}

export async function auditLedger(ledger: LedgerStore, options: AuditOptions): Promise<AuditReport> {
  const total = await ledger.treeSize();
  const anchors = (await ledger.anchors()).filter((a) => a.status === 'anchored');
  const maxFailures = options.maxFailures ?? 1000;
  const report: AuditReport = {
    leaves: total, rootsChecked: 0, rootsCheckedOnChain: 0,
    unanchoredLeaves: total - (anchors[anchors.length - 1]?.treeSize ?? 0),
    failures: [],
    chain: options.chain ? { chainId: options.chain.chainId, contractAddress: options.chain.contractAddress } : undefined,
    chainUnchecked: options.chain ? undefined : options.chainUnchecked ?? 'no chain configured',
  };
  let failureCount = 0;
  const fail = (failure: AuditFailure) => {
    failureCount++;
    if (report.failures.length < maxFailures) report.failures.push(failure);
  };

  const frontier = new MerkleFrontier();
  let nextAnchor = 0;
  let lastGoodSize = 0;
  const checkAnchor = async (anchor: LedgerAnchor) => {
    report.rootsChecked++;
    const root = frontier.root();
    if (!root.equals(anchor.root)) {
      fail({
        kind: 'root', treeSize: anchor.treeSize,
        message: `the leaves no longer hash to the root recorded for tree size ${anchor.treeSize}: `
          + `a leaf between ${lastGoodSize} and ${anchor.treeSize - 1} was changed`,
      });
    } else {
      lastGoodSize = anchor.treeSize;
    }
    if (options.chain) {
      if (anchor.contractAddress && anchor.contractAddress.toLowerCase() !== options.chain.contractAddress.toLowerCase()) {
        fail({ kind: 'chain', treeSize: anchor.treeSize, message: `tree size ${anchor.treeSize} was anchored on contract ${anchor.contractAddress}, not ${options.chain.contractAddress}` });
        return;
      }
      report.rootsCheckedOnChain++;
      const onChain = await options.chain.rootOf(anchor.treeSize);
      if (!onChain) {
        fail({ kind: 'chain', treeSize: anchor.treeSize, message: `the contract holds no root for tree size ${anchor.treeSize}` });
      } else if (!onChain.equals(anchor.root)) {
        fail({ kind: 'chain', treeSize: anchor.treeSize, message: `the contract holds another root for tree size ${anchor.treeSize} than the one recorded` });
      }
    }
  };

  const pageSize = options.pageSize ?? 5000;
  let expected = 0;
  while (expected < total) {
    const page = await ledger.leavesWithVersions(expected, pageSize);
    if (page.length === 0) break;
    for (const leaf of page) {
      if (leaf.leafIndex !== expected) {
        fail({ kind: 'leaf-gap', leafIndex: expected, message: `leaves ${expected}..${leaf.leafIndex - 1} are missing` });
        // The tree cannot be rebuilt past a gap: what follows is reported by its content only.
        while (nextAnchor < anchors.length) {
          fail({ kind: 'root', treeSize: anchors[nextAnchor]!.treeSize, message: `tree size ${anchors[nextAnchor]!.treeSize} cannot be recomputed: leaves are missing` });
          nextAnchor = anchors.length;
        }
        expected = leaf.leafIndex;
      }
      const reference = `${leaf.resourceType}/${leaf.id}/_history/${leaf.versionId}`;
      if (!leaf.version) {
        fail({ kind: 'missing-version', leafIndex: leaf.leafIndex, reference, message: `leaf ${leaf.leafIndex}: its version is no longer stored` });
      } else {
        let matches = false;
        try {
          matches = versionLeafHash(leaf.salt, leaf.version).equals(leaf.leafHash);
        } catch { /* content that is not JSON any more */ }
        if (!matches) {
          fail({ kind: 'content', leafIndex: leaf.leafIndex, reference, message: `${reference} (leaf ${leaf.leafIndex}): the stored content does not match its leaf hash` });
        }
      }
      frontier.append(leaf.leafHash);
      expected++;
      while (nextAnchor < anchors.length && anchors[nextAnchor]!.treeSize === frontier.size) {
        await checkAnchor(anchors[nextAnchor]!);
        nextAnchor++;
      }
    }
    options.onProgress?.(expected, total);
  }
  for (; nextAnchor < anchors.length; nextAnchor++) {
    fail({ kind: 'root', treeSize: anchors[nextAnchor]!.treeSize, message: `tree size ${anchors[nextAnchor]!.treeSize} is recorded but the log has only ${total} leaves` });
  }
  for (const version of await ledger.versionsWithoutLeaves(maxFailures)) {
    const reference = `${version.resourceType}/${version.id}/_history/${version.versionId}`;
    fail({ kind: 'missing-leaf', reference, message: `${reference}: the version has no leaf in the ledger` });
  }
  if (failureCount > report.failures.length) {
    report.failures.push({ kind: 'content', message: `… and ${failureCount - report.failures.length} more failures` });
  }
  return report;
}
