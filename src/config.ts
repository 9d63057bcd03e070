/**
 * The one typed configuration of the server. This is the only module that reads process.env
 * (DESIGN.md rule: config.ts is the only file that reads the environment).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_SEARCH_LIMITS } from './fhir/search-limits.js';

/**
 * embedded: an anvil node started by the server (state in DATA_DIR), the default;
 * rpc: an Ethereum JSON-RPC endpoint (CHAIN_RPC_URL), e.g. Besu, Geth or a testnet;
 * off: leaves are still written with every version (the log is part of the store), nothing is
 *      anchored: for tests and tools that need no chain.
 */
export type LedgerMode = 'embedded' | 'rpc' | 'off';

export interface Config {
  /** TCP port of the HTTP server; 0 picks an ephemeral port (tests). */
  port: number;
  /** Interface to bind. */
  host: string;
  /** Folder for the SQLite database and other state. */
  dataDir: string;
  /** Public base URL of the FHIR endpoint, without trailing slash; derived from the request when unset. */
  publicBaseUrl: string | undefined;
  /**
   * ALLOWED_HOSTS: without PUBLIC_BASE_URL, the Host headers trusted to build Location headers and
   * paging links (`name` or `name:port`); undefined: the bound host, localhost, 127.0.0.1 and
   * [::1], each with the listening port (http/base-url-policy.ts).
   */
  allowedHosts: string[] | undefined;
  /** Largest accepted request body in bytes (413 above it). */
  maxBodyBytes: number;
  /** Deepest accepted JSON nesting (400 above it). */
  maxJsonDepth: number;
  /** Entries per batch or transaction Bundle (MAX_BUNDLE_ENTRIES); more → 413. */
  maxBundleEntries: number;
  /** MAX_FORM_BODY_BYTES: largest `POST _search` form body (413 above it). */
  maxFormBodyBytes: number;
  /** MAX_ELEMENT_REPETITIONS: most items of any one array in a JSON body (413 above it; Bundle.entry excepted). */
  maxElementRepetitions: number;
  /** SEARCH_MAX_SORT_KEYS: most `_sort` keys (400 above it). */
  searchMaxSortKeys: number;
  /** SEARCH_MAX_OR_VALUES: most comma-separated values of one search parameter (400 above it). */
  searchMaxOrValues: number;
  /** SEARCH_MAX_AND_REPETITIONS: most repetitions of one search parameter name (400 above it). */
  searchMaxAndRepetitions: number;
  /** SEARCH_MAX_PARAMETERS: most name=value pairs in one search, URL and form body together (400 above it). */
  searchMaxParameters: number;
  /** Default and maximum page size of searches and history. */
  defaultPageSize: number;
  maxPageSize: number;
  /** SQLite `synchronous` pragma: NORMAL survives a killed process, FULL also a power cut. */
  sqliteSynchronous: 'NORMAL' | 'FULL';
  /** Current versions cached in memory for reads by id (0 disables). */
  readCacheEntries: number;
  /** Where profiles/ (this server's StructureDefinitions) live. */
  profilesDir: string;
  /** pino log level. */
  logLevel: string;
  /** LEDGER=on (default: embedded, or rpc when CHAIN_RPC_URL is set) or off. */
  ledgerMode: LedgerMode;
  /** LEDGER_BATCH_LEAVES: anchor as soon as this many leaves wait. */
  ledgerBatchLeaves: number;
  /** LEDGER_BATCH_SECONDS: …or when the oldest waiting leaf has waited this long. */
  ledgerBatchSeconds: number;
  /** CHAIN_RPC_URL: the Ethereum JSON-RPC endpoint (rpc mode). */
  chainRpcUrl: string | undefined;
  /** CHAIN_PRIVATE_KEY or the file named by CHAIN_PRIVATE_KEY_FILE: the anchoring account (rpc mode). */
  chainPrivateKey: string | undefined;
  /** LEDGER_CONTRACT_ADDRESS: an existing LedgerAnchor (rpc mode); unset: deployed once, remembered in DATA_DIR. */
  ledgerContractAddress: string | undefined;
  /** LEDGER_CONTRACT_DEPLOY_BLOCK: where event searches start (rpc mode with an existing contract). */
  ledgerContractDeployBlock: number;
  /** ANVIL_PATH: the anvil binary of the embedded chain; default: the one npm installed. */
  anvilPath: string | undefined;
  /** DEID_MAPPING: `safe-harbor` (default), `research`, `none` (store as sent), or a path to a table. */
  deidMapping: string;
  /** Where the shipped mapping tables live (mappings/). */
  mappingsDir: string;
  /** VAULT_FILE: the pseudonym vault's own database file; default DATA_DIR/vault/pseudonyms.sqlite. */
  vaultFile: string;
  /** VAULT_KEY (hex or base64 of 32 bytes); wins over the key file. */
  vaultKey: string | undefined;
  /** VAULT_KEY_FILE: the vault key as a file; unset: DATA_DIR/vault/vault.key, created on first start. */
  vaultKeyFile: string | undefined;
  /** DEID_HASH_KEY / DEID_HASH_KEY_FILE: the HMAC key of cryptoHash rules; unset: DATA_DIR/vault/hash.key, created. */
  deidHashKey: string | undefined;
  deidHashKeyFile: string | undefined;
  /** AUTH_JWT_SECRET: HS256 secret (32+ bytes) of the bearer tokens that grant permissions such as re-identification. */
  authJwtSecret: string | undefined;
  /** AUTH_JWKS_FILE: a JSON Web Key Set of the public keys that sign bearer tokens (RS256/ES256). */
  authJwksFile: string | undefined;
}

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`Configuration error: ${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return value;
}

function numberFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) {
    throw new Error(`Configuration error: ${name} must be a number >= ${min}, got "${raw}"`);
  }
  return value;
}

/** ALLOWED_HOSTS: comma-separated `name` or `name:port`, IPv6 literals in brackets (RFC 3986 section 3.2.2). */
function allowedHostsFromEnv(env: NodeJS.ProcessEnv): string[] | undefined {
  if (!env.ALLOWED_HOSTS) return undefined;
  const hosts = env.ALLOWED_HOSTS.split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  for (const host of hosts) {
    if (!/^([a-z0-9._-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$/.test(host)) {
      throw new Error(`Configuration error: ALLOWED_HOSTS entries are host or host:port (no scheme, no path), got "${host}"`);
    }
  }
  return hosts;
}

function ledgerModeFromEnv(env: NodeJS.ProcessEnv): LedgerMode {
  const raw = (env.LEDGER ?? 'on').toLowerCase();
  if (raw === 'off') return 'off';
  if (raw !== 'on') throw new Error(`Configuration error: LEDGER must be on or off, got "${env.LEDGER}"`);
  return env.CHAIN_RPC_URL ? 'rpc' : 'embedded';
}

/** CHAIN_PRIVATE_KEY, or the first line of CHAIN_PRIVATE_KEY_FILE (a secret mounted as a file). */
function chainPrivateKeyFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  let key = env.CHAIN_PRIVATE_KEY;
  if (!key && env.CHAIN_PRIVATE_KEY_FILE) {
    try {
      key = fs.readFileSync(env.CHAIN_PRIVATE_KEY_FILE, 'utf8').split(/\r?\n/)[0];
    } catch (error) {
      throw new Error(`Configuration error: cannot read CHAIN_PRIVATE_KEY_FILE: ${(error as Error).message}`);
    }
  }
  if (!key) return undefined;
  key = key.trim();
  if (!key.startsWith('0x')) key = `0x${key}`;
  // The key itself never goes into an error message.
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new Error('Configuration error: the chain private key must be 32 bytes of hex');
  return key;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const sync = (env.SQLITE_SYNCHRONOUS ?? 'NORMAL').toUpperCase();
  if (sync !== 'NORMAL' && sync !== 'FULL') {
    throw new Error(`Configuration error: SQLITE_SYNCHRONOUS must be NORMAL or FULL, got "${sync}"`);
  }
  const config: Config = {
    port: intFromEnv(env, 'PORT', 8080),
    host: env.HOST ?? '0.0.0.0',
    dataDir: path.resolve(env.DATA_DIR ?? './data'),
    publicBaseUrl: env.PUBLIC_BASE_URL ? env.PUBLIC_BASE_URL.replace(/\/+$/, '') : undefined,
    allowedHosts: allowedHostsFromEnv(env),
    maxBodyBytes: intFromEnv(env, 'MAX_BODY_BYTES', 16 * 1024 * 1024, 1024),
    maxJsonDepth: intFromEnv(env, 'MAX_JSON_DEPTH', 64, 8),
    maxBundleEntries: intFromEnv(env, 'MAX_BUNDLE_ENTRIES', 1000, 1),
    maxFormBodyBytes: intFromEnv(env, 'MAX_FORM_BODY_BYTES', 64 * 1024, 1024),
    maxElementRepetitions: intFromEnv(env, 'MAX_ELEMENT_REPETITIONS', 1000, 1),
    searchMaxSortKeys: intFromEnv(env, 'SEARCH_MAX_SORT_KEYS', DEFAULT_SEARCH_LIMITS.maxSortKeys, 1),
    searchMaxOrValues: intFromEnv(env, 'SEARCH_MAX_OR_VALUES', DEFAULT_SEARCH_LIMITS.maxOrValues, 1),
    searchMaxAndRepetitions: intFromEnv(env, 'SEARCH_MAX_AND_REPETITIONS', DEFAULT_SEARCH_LIMITS.maxAndRepetitions, 1),
    searchMaxParameters: intFromEnv(env, 'SEARCH_MAX_PARAMETERS', DEFAULT_SEARCH_LIMITS.maxParameters, 1),
    defaultPageSize: intFromEnv(env, 'DEFAULT_PAGE_SIZE', 20, 1),
    maxPageSize: intFromEnv(env, 'MAX_PAGE_SIZE', 1000, 1),
    sqliteSynchronous: sync,
    readCacheEntries: intFromEnv(env, 'READ_CACHE_ENTRIES', 10_000),
    profilesDir: path.resolve(env.PROFILES_DIR ?? path.join(repoRoot, 'profiles')),
    logLevel: env.LOG_LEVEL ?? 'info',
    ledgerMode: ledgerModeFromEnv(env),
    ledgerBatchLeaves: intFromEnv(env, 'LEDGER_BATCH_LEAVES', 1000, 1),
    ledgerBatchSeconds: numberFromEnv(env, 'LEDGER_BATCH_SECONDS', 5, 0.01),
    chainRpcUrl: env.CHAIN_RPC_URL || undefined,
    chainPrivateKey: chainPrivateKeyFromEnv(env),
    ledgerContractAddress: env.LEDGER_CONTRACT_ADDRESS || undefined,
    ledgerContractDeployBlock: intFromEnv(env, 'LEDGER_CONTRACT_DEPLOY_BLOCK', 0),
    anvilPath: env.ANVIL_PATH || undefined,
    deidMapping: env.DEID_MAPPING || 'safe-harbor',
    mappingsDir: path.join(repoRoot, 'mappings'),
    vaultFile: path.resolve(env.VAULT_FILE || path.join(path.resolve(env.DATA_DIR ?? './data'), 'vault', 'pseudonyms.sqlite')),
    vaultKey: env.VAULT_KEY || undefined,
    vaultKeyFile: env.VAULT_KEY_FILE || undefined,
    deidHashKey: env.DEID_HASH_KEY || undefined,
    deidHashKeyFile: env.DEID_HASH_KEY_FILE || undefined,
    authJwtSecret: env.AUTH_JWT_SECRET || undefined,
    authJwksFile: env.AUTH_JWKS_FILE || undefined,
    ...overrides,
  };
  if (config.ledgerMode === 'rpc') {
    if (!config.chainRpcUrl) throw new Error('Configuration error: the rpc ledger mode needs CHAIN_RPC_URL');
    if (!config.chainPrivateKey) throw new Error('Configuration error: CHAIN_RPC_URL needs CHAIN_PRIVATE_KEY or CHAIN_PRIVATE_KEY_FILE');
  }
  if (config.ledgerContractAddress !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(config.ledgerContractAddress)) {
    throw new Error(`Configuration error: LEDGER_CONTRACT_ADDRESS must be a 0x address, got "${config.ledgerContractAddress}"`);
  }
  if (overrides.dataDir !== undefined && overrides.vaultFile === undefined && !env.VAULT_FILE) {
    // The vault follows an overridden data folder (tests, tools) unless it was placed explicitly.
    config.vaultFile = path.join(config.dataDir, 'vault', 'pseudonyms.sqlite');
  }
  if (config.authJwtSecret !== undefined && Buffer.byteLength(config.authJwtSecret) < 32) {
    throw new Error('Configuration error: AUTH_JWT_SECRET must be at least 32 bytes (RFC 7518 section 3.2)');
  }
  if (config.defaultPageSize > config.maxPageSize) config.defaultPageSize = config.maxPageSize;
  return config;
}
