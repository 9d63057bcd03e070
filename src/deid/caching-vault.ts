/**
 * A vault with its answers to `lookup` kept in memory. Pairs never change once made, and only
 * this process makes them (the vault file has one writer: the server), so a cached answer, "none"
 * included, stays exact: `pseudonymize` updates the entry it creates. Every read by id and every
 * reference goes through a lookup, and this takes the HMAC and the SQLite query off that path.
 */
import type { PseudonymVault } from './deid-types.js';

export class CachingVault implements PseudonymVault {
  private readonly answers = new Map<string, string | null>();

  constructor(private readonly vault: PseudonymVault, private readonly maxEntries = 200_000) {}

  lookup(domain: string, real: string): string | undefined {
    const key = `${domain}\u0000${real}`;
    const cached = this.answers.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const found = this.vault.lookup(domain, real);
    this.remember(key, found ?? null);
    return found;
  }

  pseudonymize(domain: string, real: string): string {
    const key = `${domain}\u0000${real}`;
    const cached = this.answers.get(key);
    if (cached) return cached;
    const pseudonym = this.vault.pseudonymize(domain, real);
    this.remember(key, pseudonym);
    return pseudonym;
  }

  lookupInAnyDomain(real: string) { return this.vault.lookupInAnyDomain(real); }
  reveal(domain: string, pseudonym: string) { return this.vault.reveal(domain, pseudonym); }
  dateOffsetDays(subject: string, maxDays: number) { return this.vault.dateOffsetDays(subject, maxDays); }
  knownDateOffsetDays(subject: string) { return this.vault.knownDateOffsetDays(subject); }
  close(): void {
    this.answers.clear();
    this.vault.close();
  }

  private remember(key: string, answer: string | null): void {
    // Bounded: a bulk import must not grow the process without limit; starting over is exact too.
    if (this.answers.size >= this.maxEntries) this.answers.clear();
    this.answers.set(key, answer);
  }
}
