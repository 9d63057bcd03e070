#!/usr/bin/env node
/**
 * The one entry point: `fhir-ledger serve` (more commands arrive with their issues).
 */
import { loadConfig } from './config.js';
import { startServer } from './server.js';

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

const USAGE = `usage: fhir-ledger <command>

commands:
  serve    start the FHIR server (PORT, DATA_DIR, … see README)
`;

async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  switch (command) {
    case 'serve':
      await serve();
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
