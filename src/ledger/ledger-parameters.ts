/**
 * `$verify` and `$ledger` results as FHIR R4 Parameters resources (parameters.html): one
 * named parameter per fact, nested `part`s for a version and for the proof path. Hashes and
 * roots are lowercase hex without 0x; transaction hashes and addresses keep Ethereum's 0x form.
 */
import type { ConsistencyEvidence, LedgerStatus, VersionVerification } from './ledger-verifier.js';

export interface ParametersParameter {
  name: string;
  valueBoolean?: boolean;
  valueInteger?: number;
  valueDecimal?: number;
  valueString?: string;
  valueCode?: string;
  valueInstant?: string;
  part?: ParametersParameter[];
}

export interface ParametersResource {
  resourceType: 'Parameters';
  parameter: ParametersParameter[];
}

const INT32_MAX = 2_147_483_647;

/** R4 integer is 32-bit: larger counts (a log past two billion leaves) are given as strings. */
function count(name: string, value: number): ParametersParameter {
  return value <= INT32_MAX ? { name, valueInteger: value } : { name, valueString: String(value) };
}

function optional(parameters: ParametersParameter[], name: string, value: string | number | boolean | null | undefined,
  kind: 'string' | 'integer' | 'boolean' | 'code' | 'instant' = 'string'): void {
  if (value === null || value === undefined) return;
  switch (kind) {
    case 'integer': parameters.push(count(name, value as number)); break;
    case 'boolean': parameters.push({ name, valueBoolean: value as boolean }); break;
    case 'code': parameters.push({ name, valueCode: String(value) }); break;
    case 'instant': parameters.push({ name, valueInstant: new Date(value as number).toISOString() }); break;
    default: parameters.push({ name, valueString: String(value) });
  }
}

/** The facts of one version's verification, as a list of parameters. */
export function verificationParameters(v: VersionVerification): ParametersParameter[] {
  const p: ParametersParameter[] = [
    { name: 'reference', valueString: `${v.resourceType}/${v.id}/_history/${v.versionId}` },
    { name: 'verified', valueBoolean: v.verified },
    { name: 'status', valueCode: v.status },
  ];
  for (const check of v.failed) p.push({ name: 'failed', valueCode: check });
  for (const reason of v.reasons) p.push({ name: 'reason', valueString: reason });
  p.push({ name: 'contentMatchesLeaf', valueBoolean: v.contentMatchesLeaf });
  optional(p, 'deleted', v.deleted || undefined, 'boolean');
  optional(p, 'leafIndex', v.leafIndex, 'integer');
  optional(p, 'leafHash', v.leafHash);
  optional(p, 'contentHash', v.contentHash);
  optional(p, 'salt', v.salt);
  // The path, leaf side first; absent when empty (a tree of one leaf), since a FHIR parameter
  // cannot be an empty list of parts.
  if (v.inclusionProof && v.inclusionProof.length > 0) {
    p.push({ name: 'inclusionProof', part: v.inclusionProof.map((hash) => ({ name: 'hash', valueString: hash })) });
  }
  optional(p, 'proofMatchesRoot', v.proofMatchesRoot, 'boolean');
  if (v.anchor) {
    optional(p, 'treeSize', v.anchor.treeSize, 'integer');
    optional(p, 'anchoredRoot', v.anchor.root);
    optional(p, 'rootOnChain', v.rootOnChain, 'boolean');
    optional(p, 'transactionHash', v.anchor.txHash);
    optional(p, 'blockNumber', v.anchor.blockNumber, 'integer');
    optional(p, 'chainId', v.anchor.chainId);
    optional(p, 'contractAddress', v.anchor.contractAddress);
  }
  optional(p, 'firstAnchoredTreeSize', v.firstAnchoredTreeSize, 'integer');
  return p;
}

/** `GET [type]/[id]/_history/[vid]/$verify`. */
export function versionVerificationParameters(v: VersionVerification): ParametersResource {
  return { resourceType: 'Parameters', parameter: verificationParameters(v) };
}

/** `GET [type]/[id]/$verify`: the overall verdict, then one `version` per version. */
export function resourceVerificationParameters(versions: VersionVerification[]): ParametersResource {
  const failedVersions = versions.filter((v) => v.status === 'failed').length;
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'verified', valueBoolean: versions.every((v) => v.verified) },
      count('versions', versions.length),
      count('failedVersions', failedVersions),
      ...versions.map((v) => ({ name: 'version', part: verificationParameters(v) })),
    ],
  };
}

/** `GET [base]/$ledger`. */
export function ledgerStatusParameters(s: LedgerStatus): ParametersResource {
  const p: ParametersParameter[] = [
    { name: 'mode', valueCode: s.mode },
    count('treeSize', s.treeSize),
    count('anchoredSize', s.anchoredSize),
    count('pendingLeaves', s.pendingLeaves),
    count('pendingTransactions', s.pendingTransactions),
  ];
  if (s.lastAnchor) {
    const last: ParametersParameter[] = [count('treeSize', s.lastAnchor.treeSize), { name: 'root', valueString: s.lastAnchor.root }];
    optional(last, 'transactionHash', s.lastAnchor.txHash);
    optional(last, 'blockNumber', s.lastAnchor.blockNumber, 'integer');
    optional(last, 'chainId', s.lastAnchor.chainId);
    optional(last, 'contractAddress', s.lastAnchor.contractAddress);
    optional(last, 'gasUsed', s.lastAnchor.gasUsed, 'integer');
    optional(last, 'anchoredAt', s.lastAnchor.anchoredAt, 'instant');
    p.push({ name: 'lastAnchor', part: last });
  }
  if (s.anchorer) {
    const a = s.anchorer;
    const part: ParametersParameter[] = [
      { name: 'state', valueCode: a.state },
      { name: 'healthy', valueBoolean: a.healthy },
      count('consecutiveFailures', a.consecutiveFailures),
      count('batchLeaves', a.batchLeaves),
      { name: 'batchSeconds', valueDecimal: a.batchSeconds },
    ];
    optional(part, 'lastError', a.lastError);
    optional(part, 'lastErrorAt', a.lastErrorAt, 'instant');
    optional(part, 'nextAttemptAt', a.nextAttemptAt, 'instant');
    optional(part, 'lastAnchoredAt', a.lastAnchoredAt, 'instant');
    optional(part, 'chainId', a.chainId);
    optional(part, 'contractAddress', a.contractAddress);
    optional(part, 'account', a.account);
    p.push({ name: 'anchorer', part });
  }
  return { resourceType: 'Parameters', parameter: p };
}

/** `$ledger-consistency`: the two sizes and roots, the proof (absent when empty), and their anchors. */
export function consistencyParameters(c: ConsistencyEvidence): ParametersResource {
  const anchor = (name: string, a: ConsistencyEvidence['firstAnchor']): ParametersParameter[] => {
    if (!a) return [];
    const part: ParametersParameter[] = [count('treeSize', a.treeSize), { name: 'root', valueString: a.root }];
    optional(part, 'transactionHash', a.txHash);
    optional(part, 'blockNumber', a.blockNumber, 'integer');
    optional(part, 'chainId', a.chainId);
    optional(part, 'contractAddress', a.contractAddress);
    return [{ name, part }];
  };
  return {
    resourceType: 'Parameters',
    parameter: [
      count('firstTreeSize', c.firstSize),
      count('secondTreeSize', c.secondSize),
      { name: 'firstRoot', valueString: c.firstRoot },
      { name: 'secondRoot', valueString: c.secondRoot },
      ...c.proof.map((h) => ({ name: 'consistencyProof', valueString: h })),
      ...anchor('firstAnchor', c.firstAnchor),
      ...anchor('secondAnchor', c.secondAnchor),
    ],
  };
}
