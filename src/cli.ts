#!/usr/bin/env node
/**
 * The one entry point: `fhir-ledger serve`, `fhir-ledger verify` (more commands arrive with their issues).
 */
import { loadConfig } from './config.js';
import { auditStore, startServer } from './server.js';

async function serve(): Promise<void> {
  const config = loadConfig();
  const server = await startServer(config);
  const stop = async (signal: string) => {
    process.stderr.write(`received ${signal}, shutting down\n`);
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

/** A progress bar on a terminal; a line per tenth otherwise (logs, CI). */
function progressReporter(stream: NodeJS.WriteStream): (done: number, total: number) => void {
  let lastTenth = -1;
  return (done, total) => {
    const fraction = total === 0 ? 1 : done / total;
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      stream.write(`\rverifying [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} leaves`);
      if (done >= total) stream.write('\n');
    } else if (Math.floor(fraction * 10) > lastTenth) {
      lastTenth = Math.floor(fraction * 10);
      stream.write(`verifying: ${done}/${total} leaves (${(fraction * 100).toFixed(0)}%)\n`);
    }
  };
}

/**
 * `fhir-ledger verify`: re-checks every stored version against its leaf, every recorded root
 * against the leaves, and every root against the chain. Exit 0: all agree; 1: a mismatch
 * (listed on stdout); 2: the chain could not be consulted.
 */
async function verify(): Promise<void> {
  const config = loadConfig();
  const report = await auditStore(config, progressReporter(process.stderr));
  for (const failure of report.failures) process.stdout.write(`FAILED ${failure.kind}: ${failure.message}\n`);
  const chain = report.chain ? `chain ${report.chain.chainId}, contract ${report.chain.contractAddress}` : 'no chain';
  process.stdout.write(`${report.leaves} leaves, ${report.rootsChecked} anchored roots recomputed, `
    + `${report.rootsCheckedOnChain} compared with ${chain}; ${report.unanchoredLeaves} leaves not anchored yet\n`);
  if (report.failures.length > 0) {
    process.stdout.write(`verification FAILED (${report.failures.length} problems)\n`);
    process.exitCode = 1;
  } else if (report.chainUnchecked && config.ledgerMode !== 'off') {
    process.stdout.write(`the store is consistent, but ${report.chainUnchecked}\n`);
    process.exitCode = 2;
  } else {
    process.stdout.write(`verification OK${report.chainUnchecked ? ` (${report.chainUnchecked})` : ''}\n`);
  }
}

const USAGE = `usage: fhir-ledger <command>

commands:
  serve    start the FHIR server (PORT, DATA_DIR, … see README)
  verify   re-check the whole store (DATA_DIR) against the ledger and the chain; exit 1 on a mismatch
`;

async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  switch (command) {
    case 'serve':
      await serve();
      break;
    case 'verify':
      await verify();
      break;
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(USAGE);
      break;
    default:
      process.stderr.write(`unknown command: ${command}\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
