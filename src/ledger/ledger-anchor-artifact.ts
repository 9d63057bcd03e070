/**
 * The compiled LedgerAnchor contract (contracts/LedgerAnchor.sol), as committed under
 * contracts/build/ by ledger-anchor-compiler.ts. The server loads this artifact to deploy
 * the contract and to talk to it; it never needs the compiler at run time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LedgerAnchorArtifact {
  contractName: 'LedgerAnchor';
  sourceFile: string;
  /** SHA-256 of the Solidity source the artifact was compiled from (hex). */
  sourceSha256: string;
  compiler: { name: 'solc'; version: string };
  /** The solc standard-JSON settings used. */
  settings: Record<string, unknown>;
  abi: unknown[];
  /** Creation bytecode, 0x-prefixed. */
  bytecode: string;
  /** Runtime bytecode, 0x-prefixed (what eth_getCode returns after deployment). */
  deployedBytecode: string;
}

/** The repository root, from src/ledger or dist/src/ledger. */
export function repositoryRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'contracts', 'LedgerAnchor.sol'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('contracts/LedgerAnchor.sol not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export const LEDGER_ANCHOR_SOURCE = 'contracts/LedgerAnchor.sol';
export const LEDGER_ANCHOR_ARTIFACT = 'contracts/build/LedgerAnchor.json';

let cached: LedgerAnchorArtifact | undefined;

export function loadLedgerAnchorArtifact(): LedgerAnchorArtifact {
  cached ??= JSON.parse(fs.readFileSync(path.join(repositoryRoot(), LEDGER_ANCHOR_ARTIFACT), 'utf8')) as LedgerAnchorArtifact;
  return cached;
}
