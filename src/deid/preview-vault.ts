/**
 * The vaults of previews (`$deidentify`, `fhir-ledger deid`): they read the real vault and keep
 * what they would create to themselves, so a preview stores nothing yet links a patient's
 * resources within one run.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { VaultUnavailableError, type PseudonymVault } from './deid-types.js';

/** The made-up pseudonyms of one preview run. */
export interface PreviewSession {
  readonly vault: PseudonymVault;
}

/** No vault at all: previews then make every pseudonym up. */
export const EMPTY_VAULT: PseudonymVault = {
  pseudonymize() { throw new VaultUnavailableError('no vault'); },
  lookup: () => undefined,
  lookupInAnyDomain: () => [],
  reveal: () => undefined,
  dateOffsetDays() { throw new VaultUnavailableError('no vault'); },
  knownDateOffsetDays: () => undefined,
  close() {},
};

/** A vault that reads the real one and keeps what it would create to itself (previews store nothing). */
export class PreviewVault implements PseudonymVault {
  private readonly made = new Map<string, string>();
  private readonly offsets = new Map<string, number>();
  constructor(private readonly base: PseudonymVault) {}
  pseudonymize(domain: string, real: string): string {
    const key = `${domain}\u0000${real}`;
    const known = this.made.get(key) ?? this.base.lookup(domain, real);
    if (known !== undefined) return known;
    const made = randomUUID();
    this.made.set(key, made);
    return made;
  }
  lookup(domain: string, real: string) { return this.base.lookup(domain, real); }
  lookupInAnyDomain(real: string) { return this.base.lookupInAnyDomain(real); }
  reveal(domain: string, pseudonym: string) { return this.base.reveal(domain, pseudonym); }
  /**
   * The real vault's offset when it has one (a preview of an already stored patient shows the
   * dates the store holds), else one made up for this run and kept, so every resource of the
   * subject in the run moves together and intervals survive. Drawn like the real vault's:
   * uniform over [-maxDays, -1].
   */
  dateOffsetDays(subject: string, maxDays: number): number {
    let days = this.knownDateOffsetDays(subject);
    if (days === undefined) {
      days = -randomInt(1, maxDays + 1);
      this.offsets.set(subject, days);
    }
    return days;
  }
  knownDateOffsetDays(subject: string): number | undefined {
    return this.offsets.get(subject) ?? this.base.knownDateOffsetDays(subject);
  }
  close(): void {}
}
