/**
 * The vaults of previews (`$deidentify`, `fhir-ledger deid`): they read the real vault and keep
 * what they would create to themselves, so a preview stores nothing yet links a patient's
 * resources within one run.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { VaultUnavailableError, type PseudonymVault, type VaultEntryKey } from './deid-types.js';

/** The made-up pseudonyms of one preview run. */
export interface PreviewSession {
  readonly vault: PseudonymVault;
}

/** No vault at all: previews then make every pseudonym up. */
export const EMPTY_VAULT: PseudonymVault = {
  async lookupMany(keys) { return keys.map(() => undefined); },
  async pseudonymizeMany() { throw new VaultUnavailableError('no vault'); },
  async revealMany(keys) { return keys.map(() => undefined); },
  async lookupInAnyDomain() { return []; },
  async dateOffsetDays() { throw new VaultUnavailableError('no vault'); },
  async knownDateOffsetDays() { return undefined; },
  async close() {},
};

/** A vault that reads the real one and keeps what it would create to itself (previews store nothing). */
export class PreviewVault implements PseudonymVault {
  private readonly made = new Map<string, string>();
  private readonly offsets = new Map<string, number>();
  constructor(private readonly base: PseudonymVault) {}

  /** What the real vault holds, else what this run made up, else a new made-up one (kept for the run). */
  async pseudonymizeMany(keys: readonly VaultEntryKey[]): Promise<string[]> {
    const known = await this.base.lookupMany(keys);
    return keys.map((key, i) => {
      if (known[i] !== undefined) return known[i]!;
      const id = `${key.domain}\u0000${key.value}`;
      let made = this.made.get(id);
      if (made === undefined) {
        made = randomUUID();
        this.made.set(id, made);
      }
      return made;
    });
  }
  lookupMany(keys: readonly VaultEntryKey[]) { return this.base.lookupMany(keys); }
  revealMany(keys: readonly VaultEntryKey[]) { return this.base.revealMany(keys); }
  lookupInAnyDomain(real: string) { return this.base.lookupInAnyDomain(real); }
  /**
   * The real vault's offset when it has one (a preview of an already stored patient shows the
   * dates the store holds), else one made up for this run and kept, so every resource of the
   * subject in the run moves together and intervals survive. Drawn like the real vault's:
   * uniform over [-maxDays, -1].
   */
  async dateOffsetDays(subject: string, maxDays: number): Promise<number> {
    let days = await this.knownDateOffsetDays(subject);
    if (days === undefined) {
      days = -randomInt(1, maxDays + 1);
      this.offsets.set(subject, days);
    }
    return days;
  }
  async knownDateOffsetDays(subject: string): Promise<number | undefined> {
    return this.offsets.get(subject) ?? this.base.knownDateOffsetDays(subject);
  }
  async close(): Promise<void> {}
}
