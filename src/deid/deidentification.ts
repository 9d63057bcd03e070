/**
 * De-identification as the write path and the search path see it (DESIGN.md "The spine":
 * validate → deid → index → commit). It owns the table in force, the vault and the hash key, and
 * answers four questions:
 *
 *  - what is stored for this resource (deidentify), with the table's sha256 in meta.tag;
 *  - which stored id a client-assigned id stands for (storedIdForWrite / storedIdForRead), so an
 *    EHR that PUTs `Patient/<its id>` and references it keeps working;
 *  - what a search value becomes (translateSearch), so `identifier=<system>|<mrn>` and
 *    `patient=<its id>` still find the pseudonymized data;
 *  - what the vault can give back (reidentify).
 *
 * With DEID_MAPPING=none there is no table: everything is stored as sent.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { FhirError } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import { VaultUnavailableError, type PseudonymVault } from './deid-types.js';
import {
  DEID_TABLE_TAG_SYSTEM, idDomain, MappingWalker, NO_SYSTEM_DOMAIN, UnpseudonymizableReference, type ReferenceSite,
} from './deidentifier.js';
import type { MappingTable } from './mapping-table.js';
import { cryptoHash } from './value-transforms.js';

export interface DeidentificationOptions {
  /** The table in force; null for DEID_MAPPING=none. */
  table: MappingTable | null;
  types: TypeRegistry;
  registry: SearchParameterRegistry;
  /** The vault, or why it cannot be used (writes are then refused). */
  vault: PseudonymVault | { unavailable: string };
  /** HMAC key of cryptoHash rules, or why there is none. */
  hashKey: Buffer | { unavailable: string };
  /** Does the store hold (any version of) this resource? Decides whether an id is already a stored one. */
  storedIdExists: (resourceType: string, id: string) => Promise<boolean>;
  now?: () => Date;
}

export interface DeidentifyContext {
  /** The id the resource is stored under (already a stored id). */
  id: string;
  /** Ids this request assigned itself (a transaction's POST entries): references to them are stored ids. */
  issuedIds?: ReadonlySet<string>;
  /** preview: `$deidentify` and the CLI dry run; new pseudonyms are made up and never stored. */
  mode?: 'store' | 'preview';
  /** The preview's vault, shared by the resources of one preview so their pseudonyms agree. */
  previewVault?: PseudonymVault;
}

const MAX_CACHED_OFFSETS = 100_000;

/** Ids resolved during one deidentify call (keyed by its context object, gone with it). */
const resolvedIn = new WeakMap<DeidentifyContext, Map<string, string>>();

/** Search parameters whose values are identifiers (token on Identifier). */
const IDENTIFIER_PARAMS: ReadonlySet<string> = new Set(['identifier']);

export class Deidentification {
  private readonly walker: MappingWalker | null;
  private readonly now: () => Date;
  /**
   * Date offsets already read from the vault. An offset never changes once created, so a copy in
   * memory is exact; bounded so a large import does not grow it without limit.
   */
  private readonly offsets = new Map<string, number>();

  constructor(private readonly options: DeidentificationOptions) {
    this.walker = options.table ? new MappingWalker(options.table, options.types) : null;
    this.now = options.now ?? (() => new Date());
  }

  /** The table in force, or null (DEID_MAPPING=none). */
  get table(): MappingTable | null {
    return this.options.table;
  }

  /** Ids in URLs and references are translated only when the table pseudonymizes `Resource.id`. */
  private get translatesIds(): boolean {
    return this.options.table?.pseudonymizesIds === true;
  }

  /** The vault, or a 503 OperationOutcome: no write may store identified data because the vault is missing. */
  private requireVault(): PseudonymVault {
    const vault = this.options.vault;
    if ('unavailable' in vault) throw vaultUnavailable(vault.unavailable);
    return vault;
  }

  // ------------------------------------------------------------------ write path

  /**
   * The resource as it is to be stored: the table applied, references to client-assigned ids
   * translated, and meta.tag/meta.security saying which table made it. The input is not changed.
   */
  async deidentify(resource: Resource, context: DeidentifyContext): Promise<Resource> {
    if (!this.walker) return resource;
    const table = this.options.table!;
    try {
      const needsVault = table.needsVault || this.translatesIds;
      const vault = context.mode === 'preview'
        ? context.previewVault ?? new PreviewVault(this.previewBase())
        : needsVault ? this.requireVault() : undefined;
      const hashKey = this.options.hashKey;
      const subject = await this.dateShiftSubject(resource, context);
      let offset: number | undefined;
      const { resource: out, references } = this.walker.walk(resource, {
        vault,
        hashKey: Buffer.isBuffer(hashKey) ? hashKey : undefined,
        dateOffset: () => (offset ??= context.mode === 'preview'
          ? vault!.dateOffsetDays(subject, table.dateShiftMaxDays)
          : this.storedDateOffset(vault!, subject, table.dateShiftMaxDays)),
        now: this.now(),
      });
      if (!Buffer.isBuffer(hashKey) && table.rules.some((r) => r.method === 'cryptoHash')) throw vaultUnavailable(hashKey.unavailable);
      if (this.translatesIds) await this.resolveReferences(references, vault!, context);
      out.meta = this.stampMeta(out.meta);
      return out;
    } catch (error) {
      if (error instanceof VaultUnavailableError) throw vaultUnavailable(error.message);
      if (error instanceof UnpseudonymizableReference) {
        throw FhirError.unprocessable([{ severity: 'error', code: 'value', diagnostics: error.message, expression: [error.location] }]);
      }
      throw error;
    }
  }

  /**
   * What storing would make of a resource or of every resource in a Bundle (`$deidentify`, the
   * CLI), without storing anything: pseudonyms the vault already holds are used, new ones are made
   * up for this call only, consistently across its resources.
   */
  async preview(resource: Resource, session: PreviewSession = this.previewSession()): Promise<Resource> {
    if (!this.walker) return resource;
    const previewVault = session.vault;
    const one = async (r: Resource): Promise<Resource> => {
      const id = r.id !== undefined && this.translatesIds ? previewVault.pseudonymize(idDomain(r.resourceType), r.id) : r.id ?? randomUUID();
      return this.deidentify({ ...r, id }, { id, mode: 'preview', previewVault });
    };
    if (resource.resourceType !== 'Bundle' || !Array.isArray(resource.entry)) return one(resource);
    // A Bundle goes through the table whole (its timestamp, entry requests and responses carry
    // dates too), its entries' ids first replaced so references between them follow. One walk
    // means one date shift for the whole Bundle (the Bundle is the subject), which keeps the
    // intervals between all its dates.
    // The requests and responses of a transaction, batch or history are not stored, and their
    // URLs name client ids and search values: what comes back is a collection of the resources
    // as they would be stored.
    const requestBundle = ['transaction', 'batch', 'history', 'transaction-response', 'batch-response'].includes(String(resource.type));
    const entries = (resource.entry as { resource?: Resource; fullUrl?: string }[]).flatMap((entry) => {
      // A fullUrl repeats the entry's (client) id: it goes.
      const { fullUrl: _dropped, ...rest } = entry;
      const kept = requestBundle ? (entry.resource ? { resource: entry.resource } : null) : rest;
      if (!kept) return [];
      if (!kept.resource?.id || !this.translatesIds) return [kept];
      return [{ ...kept, resource: { ...kept.resource, id: previewVault.pseudonymize(idDomain(kept.resource.resourceType), kept.resource.id) } }];
    });
    return one({ ...resource, id: randomUUID(), ...(requestBundle ? { type: 'collection' } : {}), entry: entries });
  }

  /** One preview run whose resources share made-up pseudonyms (an NDJSON file, line after line). */
  previewSession(): PreviewSession {
    return { vault: new PreviewVault(this.previewBase()) };
  }

  /** What previews read: the vault when it is there, else nothing (every pseudonym made up). */
  private previewBase(): PseudonymVault {
    const vault = this.options.vault;
    return 'unavailable' in vault ? EMPTY_VAULT : vault;
  }

  /**
   * The stored id for an id a client wrote (PUT Type/id, a reference). An id this request issued
   * or one the store already holds (server-assigned, or a pseudonym read back) is kept; a
   * client-assigned id gets its pseudonym, created on first sight.
   */
  async storedIdForWrite(resourceType: string, id: string, issuedIds?: ReadonlySet<string>): Promise<string> {
    if (!this.translatesIds) return id;
    try {
      return await this.resolveId(this.requireVault(), resourceType, id, issuedIds);
    } catch (error) {
      if (error instanceof VaultUnavailableError) throw vaultUnavailable(error.message);
      throw error;
    }
  }

  /** The stored id for an id in a read, search or delete: the pseudonym when the vault has one. */
  storedIdForRead(resourceType: string, id: string): string {
    if (!this.translatesIds) return id;
    const vault = this.options.vault;
    if ('unavailable' in vault) return id;
    try {
      return vault.lookup(idDomain(resourceType), id) ?? id;
    } catch (error) {
      if (error instanceof VaultUnavailableError) throw vaultUnavailable(error.message);
      throw error;
    }
  }

  private async resolveId(vault: PseudonymVault, resourceType: string, id: string, issuedIds?: ReadonlySet<string>,
    memo?: DeidentifyContext): Promise<string> {
    if (issuedIds?.has(id)) return id;
    // One write usually names its patient twice (the date-shift subject and the reference itself).
    const key = `${resourceType}/${id}`;
    const cached = memo ? resolvedIn.get(memo)?.get(key) : undefined;
    if (cached !== undefined) return cached;
    const stored = await this.resolveIdUncached(vault, resourceType, id);
    if (memo) {
      const map = resolvedIn.get(memo) ?? new Map<string, string>();
      map.set(key, stored);
      resolvedIn.set(memo, map);
    }
    return stored;
  }

  /**
   * A stored id first: most references name server-assigned ids or pseudonyms the client read
   * back, and the store answers from its cache of current versions. A client's own id is never a
   * stored id (it is stored as its pseudonym), so the order changes no answer, only the cost.
   */
  private async resolveIdUncached(vault: PseudonymVault, resourceType: string, id: string): Promise<string> {
    if (await this.options.storedIdExists(resourceType, id)) return id;
    return vault.lookup(idDomain(resourceType), id) ?? vault.pseudonymize(idDomain(resourceType), id);
  }

  private async resolveReferences(references: ReferenceSite[], vault: PseudonymVault, context: DeidentifyContext): Promise<void> {
    for (const site of references) {
      const stored = context.mode === 'preview'
        ? vault.lookup(idDomain(site.resourceType), site.id) ?? (context.issuedIds?.has(site.id) ? site.id : vault.pseudonymize(idDomain(site.resourceType), site.id))
        : await this.resolveId(vault, site.resourceType, site.id, context.issuedIds, context);
      site.holder.reference = site.rebuild(stored);
    }
  }

  private storedDateOffset(vault: PseudonymVault, subject: string, maxDays: number): number {
    let days = this.offsets.get(subject);
    if (days === undefined) {
      days = vault.dateOffsetDays(subject, maxDays);
      if (this.offsets.size >= MAX_CACHED_OFFSETS) this.offsets.clear();
      this.offsets.set(subject, days);
    }
    return days;
  }

  /**
   * Whose dates move together under dateShift: the patient (the resource itself, or the Patient
   * its subject/patient references), else the resource alone.
   */
  private async dateShiftSubject(resource: Resource, context: DeidentifyContext): Promise<string> {
    if (!this.options.table!.rules.some((r) => r.method === 'dateShift')) return '';
    if (resource.resourceType === 'Patient') return `Patient/${context.id}`;
    for (const key of ['subject', 'patient']) {
      const reference = (resource[key] as { reference?: unknown } | undefined)?.reference;
      const match = typeof reference === 'string' ? /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(reference) : null;
      if (match) {
        const id = this.translatesIds && context.mode !== 'preview'
          ? await this.resolveId(this.requireVault(), 'Patient', match[1]!, context.issuedIds, context)
          : match[1]!;
        return `Patient/${id}`;
      }
    }
    return `${resource.resourceType}/${context.id}`;
  }

  /**
   * meta.tag names the table by its sha256, the server's own tag (a client's copy is replaced).
   * One tag and no security label besides: every tag is a search index row on every write, and
   * the table's hash already says the version was de-identified, and how.
   */
  private stampMeta(meta: Resource['meta']): Resource['meta'] {
    const table = this.options.table!;
    const tag = (meta?.tag ?? []).filter((t) => t.system !== DEID_TABLE_TAG_SYSTEM);
    tag.push({ system: DEID_TABLE_TAG_SYSTEM, code: table.sha256, display: `${table.name} mapping table` });
    return { ...(meta ?? {}), tag };
  }

  // ------------------------------------------------------------------ search path

  /**
   * Search values as stored: ids of `_id` and of reference parameters through the vault, and
   * identifier values (`identifier=<system>|<value>`) through the same rule that stored them.
   * Lookup only: a search never creates a pseudonym. Values the vault does not know are kept, so
   * searching by a pseudonym or a server-assigned id still works.
   */
  translateSearch(resourceType: string | null, entries: [string, string][]): [string, string][] {
    if (!this.walker) return entries;
    return entries.map(([name, value]) => [name, this.translateSearchValue(resourceType, name, value)]);
  }

  private translateSearchValue(resourceType: string | null, name: string, value: string): string {
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
    if (!this.translatesIds || type === null) return value;
    if (code === '_id') return mapOrValues(value, (v) => [this.storedIdForRead(type, v)]);
    const definition = this.options.registry.get(type, code);
    // A reference value with no modifier, a type modifier, or the hierarchy modifiers names an id.
    const typed = modifier !== undefined && /^[A-Z]/.test(modifier);
    if (definition?.type !== 'reference' || (modifier !== undefined && !typed && modifier !== 'below' && modifier !== 'above')) return value;
    const targets = typed ? [modifier] : definition.targets;
    return mapOrValues(value, (v) => {
      const literal = /^(.*?\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(v);
      if (literal) return [`${literal[1] ?? ''}${literal[2]}/${this.storedIdForRead(literal[2]!, literal[3]!)}`];
      // A bare id: whichever target type knows it.
      for (const t of targets) {
        const stored = this.storedIdForRead(t, v);
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
  private translateOfTypeToken(resourceType: string | null, token: string): string[] {
    const vault = this.options.vault;
    const first = indexOfUnescaped(token, '|');
    const second = first === -1 ? -1 : first + 1 + indexOfUnescaped(token.slice(first + 1), '|');
    if (first === -1 || second === first) return [token];
    const prefix = token.slice(0, second + 1);
    const value = token.slice(second + 1);
    const rule = this.identifierRule(resourceType);
    if (rule === 'cryptoHash' && Buffer.isBuffer(this.options.hashKey)) return [`${prefix}${cryptoHashOf(value, this.options.hashKey)}`];
    if (rule !== 'pseudonymize' || 'unavailable' in vault || value === '') return [token];
    return [token, ...vault.lookupInAnyDomain(unescapeSearchValue(value)).map((p) => `${prefix}${p.pseudonym}`)];
  }

  /** `system|value` or `value` → the stored token(s), found by the rule that stores identifiers. */
  private translateIdentifierToken(resourceType: string | null, token: string): string[] {
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
      const pseudonym = vault.lookup(system === '' ? NO_SYSTEM_DOMAIN : system, unescapeSearchValue(value));
      return [pseudonym === undefined ? token : `${system}|${pseudonym}`];
    }
    // No system: every domain the value is known in (search.html#token: value alone matches any system).
    const found = vault.lookupInAnyDomain(unescapeSearchValue(value)).map((p) => `${p.domain === NO_SYSTEM_DOMAIN ? '' : p.domain}|${p.pseudonym}`);
    return [token, ...found];
  }

  /** The method the table applies to `<Type>.identifier` (the first rule for an Identifier there). */
  private identifierRule(resourceType: string | null): string | undefined {
    for (const rule of this.options.table!.rules) {
      const t = rule.path.terminal;
      const source = rule.path.source;
      const applies = (t.kind === 'type' && t.type === 'Identifier' && (!source.includes('.descendants') || source.startsWith(`${resourceType}.`)))
        || (t.kind === 'name' && t.name === 'identifier' && (source.startsWith('Resource.') || source.startsWith(`${resourceType}.`) || source.startsWith('DomainResource.')));
      if (applies) return rule.method;
    }
    return undefined;
  }

  // ------------------------------------------------------------------ re-identification

  /**
   * The stored resource with what the vault holds put back: its id, the ids of its references and
   * its identifiers' values. Redacted, generalized and hashed content cannot come back.
   */
  reidentify(resource: Resource): Resource {
    const vault = this.requireVault();
    const out = structuredClone(resource);
    if (out.id) out.id = vault.reveal(idDomain(out.resourceType), out.id) ?? out.id;
    const visit = (value: unknown, key: string | null): void => {
      if (Array.isArray(value)) {
        for (const item of value) visit(item, key);
        return;
      }
      if (typeof value !== 'object' || value === null) return;
      const obj = value as Record<string, unknown>;
      if ((key === 'identifier' || key === 'assigner') && typeof obj.value === 'string') {
        const domain = typeof obj.system === 'string' ? obj.system : NO_SYSTEM_DOMAIN;
        obj.value = vault.reveal(domain, obj.value) ?? obj.value;
      }
      if (typeof obj.reference === 'string') {
        const match = /^(.*?\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/.+)?$/.exec(obj.reference);
        if (match) obj.reference = `${match[1] ?? ''}${match[2]}/${vault.reveal(idDomain(match[2]!), match[3]!) ?? match[3]}${match[4] ?? ''}`;
      }
      for (const [k, v] of Object.entries(obj)) if (k !== 'resourceType') visit(v, k);
    };
    for (const [k, v] of Object.entries(out)) if (k !== 'id' && k !== 'resourceType') visit(v, k);
    return out;
  }
}

/** The made-up pseudonyms of one preview run. */
export interface PreviewSession {
  readonly vault: PseudonymVault;
}

/** No vault at all: previews then make every pseudonym up. */
const EMPTY_VAULT: PseudonymVault = {
  pseudonymize() { throw new VaultUnavailableError('no vault'); },
  lookup: () => undefined,
  lookupInAnyDomain: () => [],
  reveal: () => undefined,
  dateOffsetDays() { throw new VaultUnavailableError('no vault'); },
  close() {},
};

/** A vault that reads the real one and keeps what it would create to itself (previews store nothing). */
class PreviewVault implements PseudonymVault {
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
  dateOffsetDays(subject: string, maxDays: number): number {
    let days = this.offsets.get(subject);
    if (days === undefined) {
      days = -randomInt(1, maxDays + 1);
      this.offsets.set(subject, days);
    }
    return days;
  }
  close(): void {}
}

function vaultUnavailable(reason: string): FhirError {
  return new FhirError(503, {
    severity: 'error', code: 'transient',
    diagnostics: `De-identification is unavailable, so writes are refused rather than storing identified data: ${reason}`,
  });
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
function mapOrValues(value: string, fn: (v: string) => string[]): string {
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
  return parts.flatMap(fn).join(',');
}

/** search.html#escaping: the vault holds values, not their escaped search form. */
function unescapeSearchValue(value: string): string {
  return value.replace(/\\([\\,|$])/g, '$1');
}

function cryptoHashOf(value: string, key: Buffer): string {
  return cryptoHash(unescapeSearchValue(value), key);
}
