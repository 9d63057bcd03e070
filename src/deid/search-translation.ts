/**
 * Search values as the store holds them (search.html), so that what a client knows still finds
 * what the mapping table stored: ids of `_id` and of reference parameters through the vault, and
 * identifier values (`identifier=<system>|<value>`) through the same rule that stored them, also
 * at the end of chains and reverse chains. Lookup only: a search never creates a pseudonym.
 * Values the vault does not know are kept, so searching by a pseudonym or a server-assigned id
 * still works.
 */
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import { lookupOne, type PseudonymVault } from './deid-types.js';
import { NO_SYSTEM_DOMAIN } from './deidentifier.js';
import type { MappingTable } from './mapping-table.js';
import { cryptoHash } from './value-transforms.js';

/** Search parameters whose values are identifiers (token on Identifier). */
const IDENTIFIER_PARAMS: ReadonlySet<string> = new Set(['identifier']);

export interface SearchTranslationOptions {
  table: MappingTable;
  registry: SearchParameterRegistry;
  vault: PseudonymVault | { unavailable: string };
  hashKey: Buffer | { unavailable: string };
  /** The stored id of a client's id (the vault's pseudonym, or the id itself). */
  storedIdForRead: (resourceType: string, id: string) => Promise<string>;
}

export class SearchValueTranslator {
  constructor(private readonly options: SearchTranslationOptions) {}

  /**
   * Search values as stored: ids of `_id` and of reference parameters through the vault, and
   * identifier values (`identifier=<system>|<value>`) through the same rule that stored them.
   * Lookup only: a search never creates a pseudonym. Values the vault does not know are kept, so
   * searching by a pseudonym or a server-assigned id still works.
   */
  async translate(resourceType: string | null, entries: [string, string][]): Promise<[string, string][]> {
    const out: [string, string][] = [];
    for (const [name, value] of entries) out.push([name, await this.translateSearchValue(resourceType, name, value)]);
    return out;
  }

  private async translateSearchValue(resourceType: string | null, name: string, value: string): Promise<string> {
    const target = this.finalParameter(resourceType, name);
    if (!target) return value;
    const { type, code, modifier } = target;
    if (modifier === 'identifier' || IDENTIFIER_PARAMS.has(code)) {
      if (modifier === 'of-type') {
        // search.html#token :of-type: `[type system]|[type code]|[value]`; the identifier's own
        // system is not given, so every domain the value is known in.
        return mapOrValues(value, (v) => this.translateOfTypeToken(type, v));
      }
      return mapOrValues(value, (v) => this.translateIdentifierToken(type, v));
    }
    if (!this.options.table.pseudonymizesIds || type === null) return value;
    if (code === '_id') return mapOrValues(value, async (v) => [await this.options.storedIdForRead(type, v)]);
    const definition = this.options.registry.get(type, code);
    // A reference value with no modifier, a type modifier, or the hierarchy modifiers names an id.
    const typed = modifier !== undefined && /^[A-Z]/.test(modifier);
    if (definition?.type !== 'reference' || (modifier !== undefined && !typed && modifier !== 'below' && modifier !== 'above')) return value;
    const targets = typed ? [modifier] : definition.targets;
    return mapOrValues(value, async (v) => {
      const literal = /^(.*?\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(v);
      if (literal) return [`${literal[1] ?? ''}${literal[2]}/${await this.options.storedIdForRead(literal[2]!, literal[3]!)}`];
      // A bare id: whichever target type knows it.
      for (const t of targets) {
        const stored = await this.options.storedIdForRead(t, v);
        if (stored !== v) return [stored];
      }
      return [v];
    });
  }

  /**
   * The parameter a search name finally tests, through reverse chains and chains
   * (search.html#has, #chaining): `_has:Observation:patient:identifier` → Observation
   * `identifier`; `subject:Patient.identifier` → Patient `identifier`; `patient._id` → Patient
   * `_id`. The type is null when the chain's target type cannot be told.
   */
  private finalParameter(resourceType: string | null, name: string): { type: string | null; code: string; modifier: string | undefined } | null {
    let type = resourceType;
    let rest = name;
    while (rest.startsWith('_has:')) {
      // _has:<type>:<reference parameter>:<rest>
      const parts = rest.split(':');
      if (parts.length < 4) return null;
      type = parts[1]!;
      rest = parts.slice(3).join(':');
    }
    const links = rest.split('.');
    for (let i = 0; i < links.length - 1; i++) {
      const [code, modifier] = splitModifier(links[i]!);
      if (modifier !== undefined && /^[A-Z]/.test(modifier)) {
        type = modifier;
        continue;
      }
      const definition = type ? this.options.registry.get(type, code) : undefined;
      type = definition?.targets.length === 1 ? definition.targets[0]! : null;
    }
    const [code, modifier] = splitModifier(links[links.length - 1]!);
    return { type, code, modifier };
  }

  /** `[type system]|[type code]|[value]` → the same with the value's pseudonyms, in any domain. */
  private async translateOfTypeToken(resourceType: string | null, token: string): Promise<string[]> {
    const vault = this.options.vault;
    const first = indexOfUnescaped(token, '|');
    const second = first === -1 ? -1 : first + 1 + indexOfUnescaped(token.slice(first + 1), '|');
    if (first === -1 || second === first) return [token];
    const prefix = token.slice(0, second + 1);
    const value = token.slice(second + 1);
    const rule = this.identifierRule(resourceType);
    if (rule === 'cryptoHash' && Buffer.isBuffer(this.options.hashKey)) return [`${prefix}${cryptoHashOf(value, this.options.hashKey)}`];
    if (rule !== 'pseudonymize' || 'unavailable' in vault || value === '') return [token];
    return [token, ...(await vault.lookupInAnyDomain(unescapeSearchValue(value))).map((p) => `${prefix}${p.pseudonym}`)];
  }

  /** `system|value` or `value` → the stored token(s), found by the rule that stores identifiers. */
  private async translateIdentifierToken(resourceType: string | null, token: string): Promise<string[]> {
    const vault = this.options.vault;
    const bar = indexOfUnescaped(token, '|');
    const system = bar === -1 ? undefined : token.slice(0, bar);
    const value = bar === -1 ? token : token.slice(bar + 1);
    if (value === '') return [token];
    const rule = this.identifierRule(resourceType);
    if (rule === 'cryptoHash' && Buffer.isBuffer(this.options.hashKey)) {
      return [bar === -1 ? cryptoHashOf(value, this.options.hashKey) : `${system}|${cryptoHashOf(value, this.options.hashKey)}`];
    }
    if (rule !== 'pseudonymize' || 'unavailable' in vault) return [token];
    if (system !== undefined) {
      const pseudonym = await lookupOne(vault, system === '' ? NO_SYSTEM_DOMAIN : system, unescapeSearchValue(value));
      return [pseudonym === undefined ? token : `${system}|${pseudonym}`];
    }
    // No system: every domain the value is known in (search.html#token: value alone matches any system).
    const found = (await vault.lookupInAnyDomain(unescapeSearchValue(value))).map((p) => `${p.domain === NO_SYSTEM_DOMAIN ? '' : p.domain}|${p.pseudonym}`);
    return [token, ...found];
  }

  /** The method the table applies to `<Type>.identifier` (the first rule for an Identifier there). */
  private identifierRule(resourceType: string | null): string | undefined {
    for (const rule of this.options.table.rules) {
      const t = rule.path.terminal;
      const source = rule.path.source;
      const applies = (t.kind === 'type' && t.type === 'Identifier' && (!source.includes('.descendants') || source.startsWith(`${resourceType}.`)))
        || (t.kind === 'name' && t.name === 'identifier' && (source.startsWith('Resource.') || source.startsWith(`${resourceType}.`) || source.startsWith('DomainResource.')));
      if (applies) return rule.method;
    }
    return undefined;
  }
}

function splitModifier(name: string): [string, string | undefined] {
  const colon = name.indexOf(':');
  return colon === -1 ? [name, undefined] : [name.slice(0, colon), name.slice(colon + 1)];
}

function indexOfUnescaped(text: string, char: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === char) return i;
  }
  return -1;
}

/** Applies `fn` to each comma-separated alternative (search.html#escaping: `\,` is not a separator). */
async function mapOrValues(value: string, fn: (v: string) => Promise<string[]>): Promise<string> {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\') i++;
    else if (value[i] === ',') {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  const out: string[] = [];
  for (const part of parts) out.push(...await fn(part));
  return out.join(',');
}

/** search.html#escaping: the vault holds values, not their escaped search form. */
function unescapeSearchValue(value: string): string {
  return value.replace(/\\([\\,|$])/g, '$1');
}

function cryptoHashOf(value: string, key: Buffer): string {
  return cryptoHash(unescapeSearchValue(value), key);
}
