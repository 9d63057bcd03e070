/**
 * Loading the vault's master key: 32 random bytes from which the vault derives its encryption and
 * lookup-hash sub-keys (see vault.ts).
 *
 * Order: an explicit value (the VAULT_KEY environment variable, say) wins; else a key file; else,
 * when allowed, a new random key is written to the default key file. The key never appears in an
 * error message, not even in part: a log line must never be enough to re-identify the data
 * (45 CFR 164.514(c)(2): the re-identification code must not be disclosed).
 *
 * Losing the key makes every stored pair unreadable and every lookup miss (new pseudonyms for
 * known people), so the key file is created with mode 0600, written with O_EXCL, and fsynced
 * together with its folder before the key is used.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { VaultUnavailableError } from './deid-types.js';

/** AES-256 and HMAC-SHA256 keys of 256 bits: the master key has the same size. */
export const VAULT_KEY_BYTES = 32;

export interface LoadVaultKeyOptions {
  /** The key itself (e.g. process.env.VAULT_KEY): 64 hex characters or the base64 of 32 bytes. */
  keyHex?: string;
  /** A file whose first line holds the key, hex or base64. */
  keyFile?: string;
  /** Where a key is read from when no keyFile is given, and created when `createIfMissing`. */
  defaultKeyFile: string;
  /** Generate and store a new key when there is none (first start of a development server). */
  createIfMissing: boolean;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
/** 32 bytes in base64: 43 characters and one '=' of padding (padding optional; base64url allowed). */
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;

/**
 * Parses a key written as hex or base64; undefined when it is neither (the caller words the error,
 * naming where the value came from but never the value).
 */
export function parseVaultKey(text: string): Buffer | undefined {
  const value = text.trim();
  if (HEX_KEY.test(value)) return Buffer.from(value, 'hex');
  if (BASE64_KEY.test(value)) {
    const key = Buffer.from(value, 'base64');
    if (key.length === VAULT_KEY_BYTES) return key;
  }
  return undefined;
}

/** The vault's master key, from the first source that has one (see the module comment). */
export function loadVaultKey(options: LoadVaultKeyOptions): Buffer {
  if (options.keyHex !== undefined && options.keyHex.trim() !== '') {
    const key = parseVaultKey(options.keyHex);
    if (key === undefined) {
      throw new VaultUnavailableError(
        'Vault key: the configured key value is malformed (expected 64 hex characters or the base64 of 32 bytes)');
    }
    return key;
  }

  const explicitFile = options.keyFile !== undefined && options.keyFile.trim() !== ''
    && path.resolve(options.keyFile) !== path.resolve(options.defaultKeyFile);
  const file = explicitFile ? options.keyFile! : options.defaultKeyFile;

  const existing = readKeyFile(file);
  if (existing !== undefined) return existing;

  // A key file the operator named but that is missing is a configuration error: creating a new key
  // instead would silently split every known identifier from its pseudonym.
  if (explicitFile) throw new VaultUnavailableError(`Vault key: the key file ${file} does not exist`);
  if (!options.createIfMissing) {
    throw new VaultUnavailableError(
      `Vault key: no key configured and the key file ${file} does not exist (creating one is not allowed)`);
  }
  return createKeyFile(file);
}

/** The key in `file`'s first line; undefined when the file does not exist. */
function readKeyFile(file: string): Buffer | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VaultUnavailableError(`Vault key: cannot read the key file ${file} (${errorCode(err)})`);
  }
  const firstLine = text.split(/\r?\n/, 1)[0] ?? '';
  const key = parseVaultKey(firstLine);
  if (key === undefined) {
    throw new VaultUnavailableError(
      `Vault key: the first line of the key file ${file} is malformed (expected 64 hex characters or the base64 of 32 bytes)`);
  }
  return key;
}

/** Writes a new random key to `file` (mode 0600, folder created 0700), durably. */
function createKeyFile(file: string): Buffer {
  const key = crypto.randomBytes(VAULT_KEY_BYTES);
  const dir = path.dirname(file);
  let fd: number | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // 'wx' = O_CREAT|O_EXCL: if another process creates the file at the same moment, we use its
    // key rather than overwrite it (two keys would mean two sets of pseudonyms).
    fd = fs.openSync(file, 'wx', 0o600);
    fs.fchmodSync(fd, 0o600); // the umask could have removed bits; never added any, but be exact
    fs.writeSync(fd, `${key.toString('hex')}\n`);
    fs.fsyncSync(fd);
  } catch (err) {
    if (fd === undefined && (err as NodeJS.ErrnoException).code === 'EEXIST') {
      const raced = readKeyFile(file);
      if (raced !== undefined) return raced;
    }
    throw new VaultUnavailableError(`Vault key: cannot create the key file ${file} (${errorCode(err)})`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  syncDirectory(dir);
  return key;
}

/** fsync of the folder, so that the new file's directory entry survives a power loss (POSIX). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory; the file itself is synced.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.name : 'error');
}
