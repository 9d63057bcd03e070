/**
 * Composition root: the only place that chooses concrete adapters (DESIGN.md rule 1).
 * Builds the definitions, the store, the services and the Koa app, and starts listening.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { BufferedLogDestination } from './buffered-log-destination.js';
import type { Config } from './config.js';
import type { MigrationReport } from './store/schema-migrations.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { buildCapabilityStatement } from './fhir/capability-statement.js';
import { SearchIndexExtractor } from './fhir/search-index/search-index-extractor.js';
import { SearchParameterRegistry } from './fhir/search-parameter-registry.js';
import { SUPPORTED_MODIFIERS } from './fhir/search-query-parser.js';
import { ResourceValidator } from './fhir/validator.js';
import { answerConnectRequests } from './http/connect-requests.js';
import { setUpDeidentification, type PseudonymVaultOpener } from './deid/deid-setup.js';
import { SqlitePseudonymVault } from './deid/vault.js';
import { createApp } from './http/app.js';
import { BaseUrlPolicy, defaultAllowedHosts } from './http/base-url-policy.js';
import { Anchorer } from './ledger/anchorer.js';
import { embeddedChainConnector, rpcChainConnector } from './ledger/chain-connectors.js';
import type { AnchorChain } from './ledger/anchor-chain.js';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode } from './ledger/anvil-node.js';
import { EmbeddedChain, embeddedNodeRunning, readEmbeddedChainInfo } from './ledger/embedded-chain.js';
import { EthersAnchorChain } from './ledger/ethers-anchor-chain.js';
import { auditLedger, type AuditReport } from './ledger/ledger-audit.js';
import { LedgerVerifier, type LedgerStatus } from './ledger/ledger-verifier.js';
import { MerkleLog } from './ledger/merkle-log.js';
import { BundleService } from './services/bundle-service.js';
import { deidOperations, DeidService } from './services/deid-service.js';
import { InteractionExecutor } from './services/interaction-executor.js';
import { ledgerOperations } from './services/ledger-operations.js';
import { OperationRegistry } from './services/operation-registry.js';
import { validateOperation } from './services/validate-operation.js';
import { ALLOW_ALL, type AccessPolicy } from './auth/access-policy.js';
import { BearerTokenVerifier } from './auth/bearer-tokens.js';
import { ResourceService } from './services/resource-service.js';
import { SearchService } from './services/search-service.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/store.js';

/**
 * The store the configuration names: the embedded SQLite file in DATA_DIR. Opening it applies
 * the schema migrations it lacks (store/schema-migrations.ts) and refuses a newer schema.
 */
export async function openStore(config: Config, options: { readCacheEntries?: number } = {}): Promise<Store> {
  return new SqliteStore({
    file: path.join(config.dataDir, 'fhir.sqlite'), synchronous: config.sqliteSynchronous,
    readCacheEntries: options.readCacheEntries ?? config.readCacheEntries,
  });
}

/** `fhir-ledger migrate`: applies the schema migrations the configured store lacks, and says which. */
export async function migrateStore(config: Config): Promise<MigrationReport> {
  // Not under a running server on the same folder (data-dir-lock.ts).
  const lock = acquireDataDirLock(config.dataDir);
  try {
    const store = await openStore(config, { readCacheEntries: 0 });
    await store.close();
    return store.migration;
  } finally {
    lock.release();
  }
}

export interface RunningServer {
  /** The FHIR base URL, e.g. http://127.0.0.1:8080/fhir */
  baseUrl: string;
  port: number;
  /** The ledger, for tools and tests that need to wait for or force anchoring. */
  ledger: RunningLedger;
  close(): Promise<void>;
}

export interface RunningLedger {
  /** Anchors what waits now (no-op with LEDGER=off). */
  anchorNow(): Promise<void>;
  status(): Promise<LedgerStatus>;
}

/**
 * The ledger's after-commit side (DESIGN.md "The spine"): the anchorer on the chain the config
 * names, and the verifier behind $verify and $ledger. Leaves themselves are written by the
 * store in every commit, whatever the mode.
 */
function buildLedger(config: Config, store: Store, logger: Logger) {
  const log = new MerkleLog(store.ledger);
  let embedded: EmbeddedChain | undefined;
  let anchorer: Anchorer | undefined;
  if (config.ledgerMode !== 'off') {
    const ledgerLogger = logger.child({ component: 'ledger' });
    let connect;
    if (config.ledgerMode === 'embedded') {
      embedded = new EmbeddedChain({
        dataDir: config.dataDir, logger: ledgerLogger, ...(config.anvilPath ? { anvilBinary: config.anvilPath } : {}),
      });
      connect = embeddedChainConnector(embedded);
    } else {
      connect = rpcChainConnector({
        rpcUrl: config.chainRpcUrl!, privateKey: config.chainPrivateKey!, contractAddress: config.ledgerContractAddress,
        deployBlock: config.ledgerContractDeployBlock, dataDir: config.dataDir, logger: ledgerLogger,
      });
    }
    anchorer = new Anchorer(log, store.ledger, connect, {
      batchLeaves: config.ledgerBatchLeaves, batchSeconds: config.ledgerBatchSeconds,
    }, ledgerLogger);
    // Starts in the background: the embedded node boots while the server already answers.
    anchorer.start();
  }
  const verifier = new LedgerVerifier(store, store.ledger, log, async () => anchorer?.connectedChain(),
    () => anchorer?.status(), config.ledgerMode);
  return {
    verifier,
    running: {
      anchorNow: async () => { await anchorer?.anchorNow(); },
      status: () => verifier.status(),
    } satisfies RunningLedger,
    async stop() {
      await anchorer?.stop();
      await embedded?.stop();
    },
  };
}

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/**
 * The production logger: JSON lines on stdout, buffered (buffered-log-destination.ts) so that
 * one line per request costs neither a system call nor a copy of the buffer per request.
 */
export function createLogger(config: Config): Logger {
  const destination = new BufferedLogDestination(1, { flushChars: 16_384 });
  // Flush what is buffered at a normal exit, so the last lines are not lost.
  process.once('exit', () => destination.flushSync());
  return pino({ level: config.logLevel }, destination);
}

/** Adapters and policies a caller may choose instead of the defaults (tests that observe a port or prove a seam). */
export interface ServerAdapters {
  /** The pseudonym vault; default SqlitePseudonymVault on VAULT_FILE. */
  openPseudonymVault?: PseudonymVaultOpener;
  /** The access policy the executor asks (auth/access-policy.ts); default ALLOW_ALL (FHIR_AUTH=off). */
  accessPolicy?: AccessPolicy;
}

/**
 * The validator of a profiles folder, built once per process. Its definitions are read-only once
 * built and take seconds to load (most of a start-up): a process that starts several servers
 * (the tests) shares them, as it shares SearchParameterRegistry.loadR4().
 */
const validators = new Map<string, ResourceValidator>();
function validatorFor(profilesDir: string): ResourceValidator {
  let validator = validators.get(profilesDir);
  if (!validator) {
    validator = ResourceValidator.create({ profilesDir });
    validators.set(profilesDir, validator);
  }
  return validator;
}

/**
 * Starts the server on config.dataDir, which it locks first: a second server on the same folder
 * refuses to start (data-dir-lock.ts), before it opens anything there.
 */
export async function startServer(config: Config, logger: Logger = createLogger(config), adapters: ServerAdapters = {}): Promise<RunningServer> {
  const lock = acquireDataDirLock(config.dataDir);
  try {
    const server = await startServerOnLockedDataDir(config, logger, adapters);
    return { ...server, async close() { try { await server.close(); } finally { lock.release(); } } };
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startServerOnLockedDataDir(config: Config, logger: Logger, adapters: ServerAdapters): Promise<RunningServer> {
  const started = Date.now();
  const registry = SearchParameterRegistry.loadR4();
  const extractor = new SearchIndexExtractor(registry);
  const validator = validatorFor(config.profilesDir);
  const store = await openStore(config);
  if (store.migration.from !== store.migration.to) {
    logger.info({ schemaVersion: store.migration }, 'store schema migrated');
  }
  let deidentification: ReturnType<typeof setUpDeidentification>;
  try {
    deidentification = setUpDeidentification(config, validator.elementTypes, registry,
      async (type, id) => (await store.readCurrent(type, id)) !== undefined, logger,
      adapters.openPseudonymVault ?? ((key) => SqlitePseudonymVault.open({ file: config.vaultFile, key, synchronous: config.sqliteSynchronous })));
  } catch (error) {
    // A refused start (a bad mapping table) leaves no database open behind it.
    await store.close();
    throw error;
  }
  const ledger = buildLedger(config, store, logger);

  const resources = new ResourceService(store, validator, registry, extractor, deidentification.deid, {
    defaultPageSize: config.defaultPageSize, maxPageSize: config.maxPageSize,
    valueLimits: { maxElementRepetitions: config.maxElementRepetitions },
    searchLimits: {
      maxSortKeys: config.searchMaxSortKeys, maxOrValues: config.searchMaxOrValues,
      maxAndRepetitions: config.searchMaxAndRepetitions, maxParameters: config.searchMaxParameters,
    },
  });
  const search = new SearchService(resources, registry, extractor, validator.summaries, store);
  const deid = new DeidService(resources, deidentification.deid, BearerTokenVerifier.fromOptions({ jwtSecret: config.authJwtSecret, jwksFile: config.authJwksFile }));
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
    deidentification: deidentification.deid.table
      ? { table: deidentification.deid.table.name, sha256: deidentification.deid.table.sha256 } : null,
  });

  const operations = new OperationRegistry()
    .register(validateOperation(resources));
  for (const operation of deidOperations(deid)) operations.register(operation);
  for (const operation of ledgerOperations(ledger.verifier, resources)) operations.register(operation);
  const bundles = new BundleService(resources, store, () => executor, { maxEntries: config.maxBundleEntries },
    (error) => logger.error({ error: error instanceof Error ? { type: error.constructor.name, message: error.message, stack: error.stack } : { type: typeof error } }, 'batch entry failed'));
  const executor: InteractionExecutor = new InteractionExecutor({
    resources, search, operations, capabilityStatement,
    policy: adapters.accessPolicy ?? ALLOW_ALL,
    processBundle: (bundle, context) => bundles.process(bundle, context),
  });

  const app = createApp({
    logger, executor,
    isKnownType: (segment) => resources.isKnownType(segment),
    limits: {
      maxBodyBytes: config.maxBodyBytes, maxJsonDepth: config.maxJsonDepth,
      maxFormBodyBytes: config.maxFormBodyBytes, maxElementRepetitions: config.maxElementRepetitions,
    },
    publicBaseUrl: config.publicBaseUrl,
  });
  const server = app.listen(config.port, config.host);
  answerConnectRequests(server, app.callback());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (error) {
    // A port in use: release what was opened, so that the caller may try again.
    await ledger.stop();
    await store.close();
    deidentification.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const ownBaseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}/fhir`;
  const baseUrl = config.publicBaseUrl ?? ownBaseUrl;
  // Set before any request is read: 'listening' is emitted on process.nextTick after the bind,
  // and connections are accepted only in a later phase of the event loop.
  app.context.baseUrlPolicy = new BaseUrlPolicy({
    publicBaseUrl: config.publicBaseUrl,
    configuredBaseUrl: ownBaseUrl,
    allowedHosts: config.allowedHosts ?? defaultAllowedHosts(config.host, port),
  });
  logger.info({ baseUrl, dataDir: config.dataDir, startupMs: Date.now() - started }, 'fhir-ledger listening');
  logger.flush();
  return {
    baseUrl,
    port,
    ledger: ledger.running,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await ledger.stop();
      await store.close();
      await deidentification.close();
    },
  };
}

/**
 * `fhir-ledger verify`: audits DATA_DIR's store against the chain without a running server.
 * The chain is the one the server would use: CHAIN_RPC_URL, or for the embedded chain the node
 * of a server that is running, else a private anvil loaded from the state file (never written).
 */
export async function auditStore(config: Config, onProgress?: (done: number, total: number) => void): Promise<AuditReport> {
  const file = path.join(config.dataDir, 'fhir.sqlite');
  if (!fs.existsSync(file)) throw new Error(`no store at ${file} (DATA_DIR)`);
  const store = new SqliteStore({ file, synchronous: config.sqliteSynchronous, readCacheEntries: 0 });
  let node: AnvilNode | undefined;
  let chain: AnchorChain | undefined;
  let chainUnchecked: string | undefined;
  try {
    try {
      if (config.ledgerMode === 'rpc') {
        const info = readEmbeddedChainInfo(config.dataDir);
        const contractAddress = config.ledgerContractAddress ?? info?.contractAddress;
        if (!contractAddress) throw new Error('no LEDGER_CONTRACT_ADDRESS and no contract remembered in DATA_DIR');
        chain = await EthersAnchorChain.connect({ rpcUrl: config.chainRpcUrl!, privateKey: config.chainPrivateKey! },
          { contractAddress, deployBlock: config.ledgerContractDeployBlock });
      } else if (config.ledgerMode === 'embedded') {
        const info = readEmbeddedChainInfo(config.dataDir);
        if (!info) throw new Error('the embedded chain was never started in this DATA_DIR');
        let rpcUrl = embeddedNodeRunning(config.dataDir) ? info.rpcUrl : undefined;
        if (!rpcUrl) {
          node = await AnvilNode.start({
            loadStateFile: path.join(config.dataDir, 'anvil-state.json'),
            ...(config.anvilPath ? { binary: config.anvilPath } : {}),
          });
          rpcUrl = node.rpcUrl;
        }
        chain = await EthersAnchorChain.connect({ rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY },
          { contractAddress: info.contractAddress, deployBlock: info.deployBlock });
      } else {
        chainUnchecked = 'LEDGER=off: roots are not compared with a chain';
      }
    } catch (error) {
      chainUnchecked = `the chain could not be reached: ${(error as Error).message}`;
    }
    return await auditLedger(store.ledger, { chain, ...(chainUnchecked ? { chainUnchecked } : {}), ...(onProgress ? { onProgress } : {}) });
  } finally {
    chain?.close();
    await node?.stop();
    await store.close();
  }
}
