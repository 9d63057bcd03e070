#!/usr/bin/env node
/**
 * The one entry point: `fhir-ledger serve`, `fhir-ledger verify` (more commands arrive with their issues).
 */
import fs from 'node:fs';
import { loadConfig } from './config.js';
import { openDeidentificationForTools } from './deid/deid-setup.js';
import { SqlitePseudonymVault } from './deid/vault.js';
import { deidentifyNdjson } from './deid/ndjson-deidentify.js';
import { SearchParameterRegistry } from './fhir/search-parameter-registry.js';
import { ResourceValidator } from './fhir/validator.js';
import { auditStore, migrateStore, startServer } from './server.js';

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
function progressReporter(stream: NodeJS.WriteStream, what = 'verifying', unit = 'leaves'): (done: number, total: number) => void {
  let lastTenth = -1;
  return (done, total) => {
    const fraction = total === 0 ? 1 : done / total;
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      stream.write(`\r${what} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} ${unit}`);
      if (done >= total) stream.write('\n');
    } else if (Math.floor(fraction * 10) > lastTenth) {
      lastTenth = Math.floor(fraction * 10);
      stream.write(`${what}: ${done}/${total} ${unit} (${(fraction * 100).toFixed(0)}%)\n`);
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

/**
 * `fhir-ledger migrate`: brings the store's schema up to this release without starting the
 * server (a start does the same first); exit 1, nothing changed, for a database of a newer release.
 */
async function migrate(): Promise<void> {
  const report = await migrateStore(loadConfig());
  process.stdout.write(report.from === report.to
    ? `store schema is up to date (version ${report.to})\n`
    : `store schema migrated from version ${report.from} to ${report.to}\n`);
}

/**
 * `fhir-ledger deid [--mapping <table>] <in.ndjson> [<out.ndjson>]`: applies the mapping table
 * (DEID_MAPPING, or --mapping) to each line, storing nothing; output to a file or stdout, progress
 * on stderr. Exit 1 when a line was rejected (listed by number, never by content).
 */
async function deid(args: string[]): Promise<void> {
  const overrides: { deidMapping?: string } = {};
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--mapping') overrides.deidMapping = args[++i];
    else files.push(args[i]!);
  }
  const [input, outputFile] = files;
  if (!input || overrides.deidMapping === '') throw new Error('usage: fhir-ledger deid [--mapping <safe-harbor|research|path>] <in.ndjson> [<out.ndjson>]');
  const config = loadConfig(process.env, overrides);
  const validator = ResourceValidator.create({ profilesDir: config.profilesDir });
  const setup = openDeidentificationForTools(config, validator.elementTypes, SearchParameterRegistry.loadR4(),
    (key) => SqlitePseudonymVault.open({ file: config.vaultFile, key, synchronous: config.sqliteSynchronous }));
  const output = outputFile ? fs.createWriteStream(outputFile) : process.stdout;
  try {
    const result = await deidentifyNdjson(input, output, {
      deid: setup.deid,
      validate: (resource) => validator.validate(resource)
        .filter((i) => i.severity === 'error' || i.severity === 'fatal')
        .map((i) => `${i.expression?.[0] ?? ''} ${i.code}`.trim()),
      onProgress: progressReporter(process.stderr, 'de-identifying', 'bytes'),
    });
    for (const r of result.rejected) process.stderr.write(`line ${r.line} rejected: ${r.reason}\n`);
    process.stderr.write(`${result.written} resources de-identified with the '${setup.deid.table?.name ?? 'none'}' table, ${result.rejected.length} rejected\n`);
    if (result.rejected.length > 0) process.exitCode = 1;
  } finally {
    if (outputFile) await new Promise<void>((resolve) => (output as fs.WriteStream).end(resolve));
    await setup.close();
  }
}

const USAGE = `usage: fhir-ledger <command>

commands:
  serve    start the FHIR server (PORT, DATA_DIR, … see README)
  migrate  apply the store's schema migrations (also done at every start); refuses a newer schema
  verify   re-check the whole store (DATA_DIR) against the ledger and the chain; exit 1 on a mismatch
  deid     [--mapping <table>] <in.ndjson> [<out.ndjson>]: de-identify an NDJSON file, storing nothing
`;

async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  switch (command) {
    case 'serve':
      await serve();
      break;
    case 'migrate':
      await migrate();
      break;
    case 'verify':
      await verify();
      break;
    case 'deid':
      await deid(argv.slice(1));
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
