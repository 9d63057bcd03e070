/**
 * The contracts of de-identification (DESIGN.md: deid/ applies the mapping table on the write
 * path, identifiers out, pseudonyms in). Kept apart so the vault, the value transforms and the
 * table engine can be read, and tested, one at a time.
 */

/** The methods a mapping-table rule can name. */
export type DeidMethod = 'keep' | 'redact' | 'pseudonymize' | 'cryptoHash' | 'dateShift' | 'generalize' | 'substitute';

export const DEID_METHODS: readonly DeidMethod[] = ['keep', 'redact', 'pseudonymize', 'cryptoHash', 'dateShift', 'generalize', 'substitute'];

/**
 * Is a method idempotent: does applying it to its own output give that output again
 * (f(f(x)) = f(x))? Content already in its stored form (a PATCH applied to the stored version) is
 * re-checked with the idempotent rules everywhere, and with the others only where a value is new
 * or changed: H(H(mrn)) would no longer find the patient, a date shifted twice moves twice, and a
 * pseudonym would get a pseudonym. `generalize` declares per kind (GENERALIZE_KIND_IDEMPOTENT in
 * mapping-table.ts).
 */
export const DEID_METHOD_IDEMPOTENT: Readonly<Record<Exclude<DeidMethod, 'generalize'>, boolean>> = {
  keep: true,
  redact: true, // nothing left to remove
  substitute: true, // the same constant again
  pseudonymize: false, // a pseudonym of the pseudonym
  cryptoHash: false, // H(H(x))
  dateShift: false, // shifted twice
};

/** A value in a vault domain: a real value (lookups, pseudonymize) or a pseudonym (reveal). */
export interface VaultEntryKey {
  readonly domain: string;
  readonly value: string;
}

/**
 * The pseudonym vault port: real identifier ↔ random pseudonym pairs per domain, stored apart
 * from the clinical data, values encrypted at rest, found by a keyed hash. Pseudonyms are random,
 * never derived from the identifier (45 CFR 164.514(c)). server.ts chooses the adapter
 * (SqlitePseudonymVault today; a PostgreSQL one can follow).
 *
 * Domains: an identifier system (`http://hospital.example/mrn`), `id:<ResourceType>` for
 * client-assigned resource ids, or any other name a rule chooses.
 *
 * Asynchronous, and in batches: one resource may carry thousands of identifiers, and answering
 * them one awaited call (or one durable write) at a time would hold the server. Every `…Many`
 * answer is aligned with its input (answer i is for key i; repeated keys get the same answer).
 * An adapter yields to the event loop between chunks of a large batch (DESIGN.md rule 5).
 * Failures reject with VaultUnavailableError: the caller must then store nothing.
 */
export interface PseudonymVault {
  /** The pseudonym of each key's real value, or undefined; never creates one. */
  lookupMany(keys: readonly VaultEntryKey[]): Promise<(string | undefined)[]>;
  /**
   * The pseudonym of each key's real value; the missing pairs are created with random
   * pseudonyms in ONE durable write (one transaction), complete before the promise resolves,
   * so before the clinical write that uses them commits.
   */
  pseudonymizeMany(keys: readonly VaultEntryKey[]): Promise<string[]>;
  /** The real value behind each key's pseudonym (`value` is the pseudonym), or undefined ($reidentify). */
  revealMany(keys: readonly VaultEntryKey[]): Promise<(string | undefined)[]>;
  /** Every (domain, pseudonym) pair whose real value is `real` (a token search without a system). */
  lookupInAnyDomain(real: string): Promise<{ domain: string; pseudonym: string }[]>;
  /**
   * The date shift of one subject (a patient), in whole days, in [-maxDays, -1] (into the past, never 0); created
   * at random and stored (encrypted) on first use, so every date of the subject moves together.
   */
  dateOffsetDays(subject: string, maxDays: number): Promise<number>;
  /** The date shift the vault already holds for a subject, or undefined; never creates one (previews). */
  knownDateOffsetDays(subject: string): Promise<number | undefined>;
  close(): Promise<void>;
}

/** One lookup (a read by id, a search value): the batch of one. */
export async function lookupOne(vault: PseudonymVault, domain: string, value: string): Promise<string | undefined> {
  return (await vault.lookupMany([{ domain, value }]))[0];
}

/** One pseudonym, created when absent. */
export async function pseudonymizeOne(vault: PseudonymVault, domain: string, value: string): Promise<string> {
  return (await vault.pseudonymizeMany([{ domain, value }]))[0]!;
}

/** One real value behind a pseudonym, or undefined. */
export async function revealOne(vault: PseudonymVault, domain: string, pseudonym: string): Promise<string | undefined> {
  return (await vault.revealMany([{ domain, value: pseudonym }]))[0];
}

/** Lets other callbacks run between chunks of long CPU work (DESIGN.md rule 5). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Thrown by the vault when it cannot serve (no key, file unreadable, disk error): writes must stop. */
export class VaultUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultUnavailableError';
  }
}
