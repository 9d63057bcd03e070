/**
 * Builds the de-identification of a running server from its configuration: the table in force
 * (a bad table refuses the start), the vault and the hash key (a missing or unreadable one does
 * not stop the server, but every write is then refused with a 503 OperationOutcome rather than
 * stored identified).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import { VaultUnavailableError, type PseudonymVault } from './deid-types.js';
import { CachingVault } from './caching-vault.js';
import { Deidentification } from './deidentification.js';
import { loadMappingTable, mappingTableFile, type MappingTable } from './mapping-table.js';
import { loadVaultKey } from './vault-key.js';

export interface DeidSetup {
  deid: Deidentification;
  /** Closes the vault. */
  close(): Promise<void>;
}

/**
 * Opens the vault adapter the composition root chose (server.ts: SqlitePseudonymVault today)
 * with the master key; throws VaultUnavailableError when it cannot.
 */
export type PseudonymVaultOpener = (key: Buffer) => PseudonymVault;

/** DEID_MAPPING → the table, or null for `none`. Throws MappingTableError for a bad table. */
export function tableInForce(config: Config, types: TypeRegistry): MappingTable | null {
  if (config.deidMapping === 'none') return null;
  return loadMappingTable(mappingTableFile(config.deidMapping, config.mappingsDir), types);
}

export function setUpDeidentification(config: Config, types: TypeRegistry, registry: SearchParameterRegistry,
  storedIdExists: (type: string, id: string) => Promise<boolean>, logger: Logger, openVault: PseudonymVaultOpener): DeidSetup {
  const table = tableInForce(config, types);
  if (!table) {
    logger.warn('DEID_MAPPING=none: resources are stored as sent, identifiers included');
    return { deid: new Deidentification({ table: null, types, registry, vault: { unavailable: 'no table' }, hashKey: { unavailable: 'no table' }, storedIdExists }), async close() {} };
  }
  const vaultDir = path.dirname(config.vaultFile);
  let vault: PseudonymVault | { unavailable: string };
  try {
    const key = loadVaultKey({
      ...(config.vaultKey ? { keyHex: config.vaultKey } : {}),
      ...(config.vaultKeyFile ? { keyFile: config.vaultKeyFile } : {}),
      defaultKeyFile: path.join(vaultDir, 'vault.key'),
      createIfMissing: true,
    });
    vault = new CachingVault(openVault(key));
  } catch (error) {
    if (!(error instanceof VaultUnavailableError)) throw error;
    logger.error({ reason: error.message }, 'pseudonym vault unavailable: writes will be refused');
    vault = { unavailable: error.message };
  }
  let hashKey: Buffer | { unavailable: string };
  try {
    hashKey = loadVaultKey({
      ...(config.deidHashKey ? { keyHex: config.deidHashKey } : {}),
      ...(config.deidHashKeyFile ? { keyFile: config.deidHashKeyFile } : {}),
      defaultKeyFile: path.join(vaultDir, 'hash.key'),
      createIfMissing: true,
    });
  } catch (error) {
    if (!(error instanceof VaultUnavailableError)) throw error;
    hashKey = { unavailable: error.message };
  }
  logger.info({ table: table.name, sha256: table.sha256, rules: table.rules.length }, 'de-identification mapping table in force');
  return {
    deid: new Deidentification({ table, types, registry, vault, hashKey, storedIdExists }),
    async close() {
      if (!('unavailable' in vault)) await vault.close();
    },
  };
}

/**
 * De-identification for offline tools (`fhir-ledger deid`): the same table and, when the server
 * has one, the same vault, read only, so a file's pseudonyms match what the server stores. Never
 * creates a vault or a key.
 */
export function openDeidentificationForTools(config: Config, types: TypeRegistry, registry: SearchParameterRegistry,
  openVault: PseudonymVaultOpener): DeidSetup {
  const table = tableInForce(config, types);
  let vault: PseudonymVault | { unavailable: string } = { unavailable: 'no vault in DATA_DIR' };
  let hashKey: Buffer | { unavailable: string } = { unavailable: 'no hash key in DATA_DIR' };
  const vaultDir = path.dirname(config.vaultFile);
  if (table && fs.existsSync(config.vaultFile)) {
    const key = loadVaultKey({
      ...(config.vaultKey ? { keyHex: config.vaultKey } : {}),
      ...(config.vaultKeyFile ? { keyFile: config.vaultKeyFile } : {}),
      defaultKeyFile: path.join(vaultDir, 'vault.key'),
      createIfMissing: false,
    });
    vault = openVault(key);
  }
  if (table?.rules.some((r) => r.method === 'cryptoHash')) {
    hashKey = loadVaultKey({
      ...(config.deidHashKey ? { keyHex: config.deidHashKey } : {}),
      ...(config.deidHashKeyFile ? { keyFile: config.deidHashKeyFile } : {}),
      defaultKeyFile: path.join(vaultDir, 'hash.key'),
      createIfMissing: false,
    });
  }
  const storedIdExists = async () => false;
  return {
    deid: new Deidentification({ table, types, registry, vault, hashKey, storedIdExists }),
    async close() {
      if (!('unavailable' in vault)) await vault.close();
    },
  };
}
