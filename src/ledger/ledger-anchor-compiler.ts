/**
 * Compiles contracts/LedgerAnchor.sol with the solc npm package (standard JSON input) into
 * the artifact committed at contracts/build/LedgerAnchor.json.
 *
 *   npm run build && node dist/src/ledger/ledger-anchor-compiler.js
 *
 * The artifact is committed so that the server starts without compiling; a test recompiles
 * the source and fails if the committed artifact differs (test/ledger/ledger-anchor.test.ts).
 *
 * Settings: the optimizer tuned for many calls (anchor() runs forever, deployment once), and
 * the EVM version pinned to paris so the bytecode also runs on consortium networks (Besu,
 * Geth) that have not enabled Shanghai's PUSH0.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import solc from 'solc';
import {
  LEDGER_ANCHOR_ARTIFACT, LEDGER_ANCHOR_SOURCE, repositoryRoot, type LedgerAnchorArtifact,
} from './ledger-anchor-artifact.js';

export const LEDGER_ANCHOR_SETTINGS = {
  optimizer: { enabled: true, runs: 10_000 },
  evmVersion: 'paris',
  outputSelection: { '*': { LedgerAnchor: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<string, Record<string, {
    abi: unknown[];
    evm: { bytecode: { object: string }; deployedBytecode: { object: string } };
  }>>;
}

export function compileLedgerAnchor(root = repositoryRoot()): LedgerAnchorArtifact {
  const source = fs.readFileSync(path.join(root, LEDGER_ANCHOR_SOURCE), 'utf8');
  const input = {
    language: 'Solidity',
    sources: { 'LedgerAnchor.sol': { content: source } },
    settings: LEDGER_ANCHOR_SETTINGS,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)) as string) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(`solc failed:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  const contract = output.contracts?.['LedgerAnchor.sol']?.LedgerAnchor;
  if (!contract) throw new Error('solc produced no LedgerAnchor contract');
  return {
    contractName: 'LedgerAnchor',
    sourceFile: LEDGER_ANCHOR_SOURCE,
    sourceSha256: createHash('sha256').update(source).digest('hex'),
    compiler: { name: 'solc', version: solc.version() as string },
    settings: LEDGER_ANCHOR_SETTINGS,
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  };
}

export function writeLedgerAnchorArtifact(root = repositoryRoot()): string {
  const artifact = compileLedgerAnchor(root);
  const file = path.join(root, LEDGER_ANCHOR_ARTIFACT);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
  return file;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = writeLedgerAnchorArtifact();
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
}
