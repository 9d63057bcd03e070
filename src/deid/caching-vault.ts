/**
 * A vault with its answers to lookups kept in memory. Pairs never change once made, and only
 * this process makes them (the vault file has one writer: the server), so a cached answer, "none"
 * included, stays exact: `pseudonymizeMany` updates the entries it creates. Every read by id and
 * every reference goes through a lookup, and this takes the HMAC and the query off that path: a
 * batch whose keys are all cached is answered without reaching the vault at all.
 */
import type { PseudonymVault, VaultEntryKey } from './deid-types.js';

export class CachingVault implements PseudonymVault {
  private readonly answers = new Map<string, string | null>();

  constructor(private readonly vault: PseudonymVault, private readonly maxEntries = 200_000) {}

  /** The cached answer: a pseudonym, null (known to be absent), or undefined (not cached). */
  cachedLookup(domain: string, real: string): string | null | undefined {
    return this.answers.get(cacheKey(domain, real));
  }

  async lookupMany(keys: readonly VaultEntryKey[]): Promise<(string | undefined)[]> {
    return this.answerFromCache(keys, false, (misses) => this.vault.lookupMany(misses));
  }

  async pseudonymizeMany(keys: readonly VaultEntryKey[]): Promise<string[]> {
    // A cached "none" is no answer here: the vault creates that pair.
    return this.answerFromCache(keys, true, (misses) => this.vault.pseudonymizeMany(misses)) as Promise<string[]>;
  }

  revealMany(keys: readonly VaultEntryKey[]) { return this.vault.revealMany(keys); }
  lookupInAnyDomain(real: string) { return this.vault.lookupInAnyDomain(real); }
  dateOffsetDays(subject: string, maxDays: number) { return this.vault.dateOffsetDays(subject, maxDays); }
  knownDateOffsetDays(subject: string) { return this.vault.knownDateOffsetDays(subject); }
  async close(): Promise<void> {
    this.answers.clear();
    await this.vault.close();
  }

  /** Cached answers where there are some, the rest from the vault in one call, remembered. */
  private async answerFromCache(keys: readonly VaultEntryKey[], onlyPseudonyms: boolean,
    ask: (misses: VaultEntryKey[]) => Promise<(string | undefined)[]>): Promise<(string | undefined)[]> {
    const answers: (string | undefined)[] = new Array(keys.length);
    const misses: VaultEntryKey[] = [];
    const missAt: number[] = [];
    keys.forEach((key, i) => {
      const cached = this.answers.get(cacheKey(key.domain, key.value));
      if (cached !== undefined && (cached !== null || !onlyPseudonyms)) answers[i] = cached ?? undefined;
      else {
        misses.push(key);
        missAt.push(i);
      }
    });
    if (misses.length === 0) return answers;
    const found = await ask(misses);
    found.forEach((answer, j) => {
      answers[missAt[j]!] = answer;
      this.remember(cacheKey(misses[j]!.domain, misses[j]!.value), answer ?? null);
    });
    return answers;
  }

  private remember(key: string, answer: string | null): void {
    // Bounded: a bulk import must not grow the process without limit; starting over is exact too.
    if (this.answers.size >= this.maxEntries) this.answers.clear();
    this.answers.set(key, answer);
  }
}

function cacheKey(domain: string, real: string): string {
  return `${domain}\u0000${real}`;
}
