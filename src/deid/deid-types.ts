/**
 * The contracts of de-identification (DESIGN.md: deid/ applies the mapping table on the write
 * path, identifiers out, pseudonyms in). Kept apart so the vault, the value transforms and the
 * table engine can be read, and tested, one at a time.
 */

/** The methods a mapping-table rule can name. */
export type DeidMethod = 'keep' | 'redact' | 'pseudonymize' | 'cryptoHash' | 'dateShift' | 'generalize' | 'substitute';

export const DEID_METHODS: readonly DeidMethod[] = ['keep', 'redact', 'pseudonymize', 'cryptoHash', 'dateShift', 'generalize', 'substitute'];

/**
 * The pseudonym vault: real identifier ↔ random pseudonym pairs per domain, stored apart from
 * the clinical data, values encrypted at rest (AES-256-GCM), found by a keyed hash (HMAC-SHA256).
 * Pseudonyms are random, never derived from the identifier (45 CFR 164.514(c)).
 *
 * Domains: an identifier system (`http://hospital.example/mrn`), `id:<ResourceType>` for
 * client-assigned resource ids, or any other name a rule chooses.
 *
 * Synchronous by design: better-sqlite3 is synchronous and a pair is durable when the call returns,
 * before the clinical write that uses it is committed.
 */
export interface PseudonymVault {
  /** The pseudonym of `real` in `domain`; a new random one is created and stored when absent. */
  pseudonymize(domain: string, real: string): string;
  /** The pseudonym of `real` in `domain`, or undefined; never creates one. */
  lookup(domain: string, real: string): string | undefined;
  /** Every (domain, pseudonym) pair whose real value is `real` (a token search without a system). */
  lookupInAnyDomain(real: string): { domain: string; pseudonym: string }[];
  /** The real value behind a pseudonym in a domain, or undefined ($reidentify). */
  reveal(domain: string, pseudonym: string): string | undefined;
  /**
   * The date shift of one subject (a patient), in whole days, in [-maxDays, -1] (into the past, never 0); created
   * at random and stored (encrypted) on first use, so every date of the subject moves together.
   */
  dateOffsetDays(subject: string, maxDays: number): number;
  /** The date shift the vault already holds for a subject, or undefined; never creates one (previews). */
  knownDateOffsetDays(subject: string): number | undefined;
  close(): void;
}

/** Thrown by the vault when it cannot serve (no key, file unreadable, disk error): writes must stop. */
export class VaultUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VaultUnavailableError';
  }
}
