/**
 * The one typed configuration of the server. This is the only module that reads process.env
 * (DESIGN.md rule: config.ts is the only file that reads the environment).
 */
import path from 'node:path';

export interface Config {
  /** TCP port of the HTTP server; 0 picks an ephemeral port (tests). */
  port: number;
  /** Interface to bind. */
  host: string;
  /** Folder for the SQLite database and other state. */
  dataDir: string;
  /** Public base URL of the FHIR endpoint, without trailing slash; derived from the request when unset. */
  publicBaseUrl: string | undefined;
  /** Largest accepted request body in bytes (413 above it). */
  maxBodyBytes: number;
  /** Deepest accepted JSON nesting (400 above it). */
  maxJsonDepth: number;
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
    maxBodyBytes: intFromEnv(env, 'MAX_BODY_BYTES', 16 * 1024 * 1024, 1024),
    maxJsonDepth: intFromEnv(env, 'MAX_JSON_DEPTH', 64, 8),
    defaultPageSize: intFromEnv(env, 'DEFAULT_PAGE_SIZE', 20, 1),
    maxPageSize: intFromEnv(env, 'MAX_PAGE_SIZE', 1000, 1),
    sqliteSynchronous: sync,
    readCacheEntries: intFromEnv(env, 'READ_CACHE_ENTRIES', 10_000),
    profilesDir: path.resolve(env.PROFILES_DIR ?? path.join(repoRoot, 'profiles')),
    logLevel: env.LOG_LEVEL ?? 'info',
    ...overrides,
  };
  if (config.defaultPageSize > config.maxPageSize) config.defaultPageSize = config.maxPageSize;
  return config;
}
