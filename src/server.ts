/**
 * Composition root: the only place that chooses concrete adapters (DESIGN.md rule 1).
 * Builds the definitions, the store, the services and the Koa app, and starts listening.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Config } from './config.js';
import { buildCapabilityStatement } from './fhir/capability-statement.js';
import { SearchIndexExtractor } from './fhir/search-index-extraction.js';
import { SearchParameterRegistry } from './fhir/search-parameter-registry.js';
import { SUPPORTED_MODIFIERS } from './fhir/search-query-parser.js';
import { ResourceValidator } from './fhir/validator.js';
import { createApp } from './http/app.js';
import { BundleService } from './services/bundle-service.js';
import { ResourceService } from './services/resource-service.js';
import { SearchService } from './services/search-service.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';

export interface RunningServer {
  /** The FHIR base URL, e.g. http://127.0.0.1:8080/fhir */
  baseUrl: string;
  port: number;
  close(): Promise<void>;
}

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/**
 * The production logger: JSON lines on stdout, buffered (pino's asynchronous destination) so
 * that one line per request does not cost one write system call per request.
 */
export function createLogger(config: Config): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 8192 });
  // Flush what is buffered at a normal exit, so the last lines are not lost.
  process.once('exit', () => destination.flushSync());
  return pino({ level: config.logLevel }, destination);
}

export async function startServer(config: Config, logger: Logger = createLogger(config)): Promise<RunningServer> {
  const started = Date.now();
  const registry = SearchParameterRegistry.loadR4();
  const extractor = new SearchIndexExtractor(registry);
  const validator = ResourceValidator.create({ profilesDir: config.profilesDir });
  const store = new SqliteStore({ file: path.join(config.dataDir, 'fhir.sqlite'), synchronous: config.sqliteSynchronous, readCacheEntries: config.readCacheEntries,
  });

  const resources = new ResourceService(store, validator, registry, extractor, {
    defaultPageSize: config.defaultPageSize, maxPageSize: config.maxPageSize,
  });
  const search = new SearchService(resources, registry, extractor, validator.summaries);
  const bundles = new BundleService(resources, search);
  const packageVersion = readJson<{ version: string }>(path.join(repoRoot, 'package.json')).version;
  const capabilityBase = readJson<Parameters<typeof buildCapabilityStatement>[0]['base']>(
    path.join(repoRoot, 'conformance', 'capability-statement.base.json'));
  const resourceTypes = [...validator.resourceTypes];
  const capabilityStatement = (baseUrl: string) => buildCapabilityStatement({
    base: capabilityBase,
    version: packageVersion,
    baseUrl,
    resourceTypes,
    searchParametersOf: (type) => [...registry.forType(type).values()],
    profilesOf: (type) => validator.profilesFor(type),
    supportedModifiers: SUPPORTED_MODIFIERS as Record<string, readonly string[]>,
  });

  const app = createApp({
    logger, resources, search, bundles, capabilityStatement,
    limits: { maxBodyBytes: config.maxBodyBytes, maxJsonDepth: config.maxJsonDepth },
    publicBaseUrl: config.publicBaseUrl,
  });
  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const baseUrl = config.publicBaseUrl ?? `http://${host}:${port}/fhir`;
  logger.info({ baseUrl, dataDir: config.dataDir, startupMs: Date.now() - started }, 'fhir-ledger listening');
  logger.flush();
  return {
    baseUrl,
    port,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await store.close();
    },
  };
}
