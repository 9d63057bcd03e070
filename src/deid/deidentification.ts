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
import { randomUUID } from 'node:crypto';
import { FhirError } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import type { SearchParameterRegistry } from '../fhir/search-parameter-registry.js';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import {
  lookupOne, pseudonymizeOne, VaultUnavailableError, type PseudonymVault, type VaultEntryKey,
} from './deid-types.js';
import {
  DEID_TABLE_TAG_SYSTEM, fillVaultValues, idDomain, MappingWalker, NO_SYSTEM_DOMAIN, UnpseudonymizableReference,
  type WalkResult,
} from './deidentifier.js';
import type { MappingTable } from './mapping-table.js';
import { EMPTY_VAULT, PreviewVault, type PreviewSession } from './preview-vault.js';
import { SearchValueTranslator } from './search-translation.js';
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

/** A resource id named by a reference or by the date-shift subject. */
interface IdRequest {
  resourceType: string;
  id: string;
}

export class Deidentification {
  private readonly walker: MappingWalker | null;
  private readonly searchTranslator: SearchValueTranslator | null;
  private readonly now: () => Date;
  /**
   * Date offsets already read from the vault. An offset never changes once created, so a copy in
   * memory is exact; bounded so a large import does not grow it without limit.
   */
  private readonly offsets = new Map<string, number>();

  constructor(private readonly options: DeidentificationOptions) {
    this.walker = options.table ? new MappingWalker(options.table, options.types) : null;
    this.searchTranslator = options.table ? new SearchValueTranslator({
      table: options.table, registry: options.registry, vault: options.vault, hashKey: options.hashKey,
      storedIdForRead: (type, id) => this.storedIdForRead(type, id),
    }) : null;
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
    return this.applyTable(resource, context, undefined);
  }

  /**
   * The table applied to content already in its stored form, changed by the client: the whole of
   * a PATCH applied to the stored version (http.html#patch), which must be re-checked since the
   * patch may bring identifiers in. Rules whose method is idempotent (mapping-table.ts declares
   * which) apply everywhere; the others only to values that `storedVersion` does not already hold
   * at the same place, so an unchanged hashed MRN is not hashed again, nor an unchanged shifted
   * date shifted again, while a value the patch introduced is treated as on any write. Dates move
   * by the same subject offset as when the resource was created.
   */
  async deidentifyRevision(storedVersion: Resource, revised: Resource, context: DeidentifyContext): Promise<Resource> {
    return this.applyTable(revised, context, storedVersion);
  }

  private async applyTable(resource: Resource, context: DeidentifyContext, storedVersion: Resource | undefined): Promise<Resource> {
    if (!this.walker) return resource;
    const table = this.options.table!;
    try {
      const needsVault = table.needsVault || this.translatesIds;
      const vault = context.mode === 'preview'
        ? context.previewVault ?? new PreviewVault(this.previewBase())
        : needsVault ? this.requireVault() : undefined;
      const hashKey = this.options.hashKey;
      const walked = this.walker.walk(resource, { hashKey: Buffer.isBuffer(hashKey) ? hashKey : undefined, now: this.now() }, storedVersion);
      if (!Buffer.isBuffer(hashKey) && table.rules.some((r) => r.method === 'cryptoHash')) throw vaultUnavailable(hashKey.unavailable);
      await this.resolveVaultValues(resource, walked, vault, context);
      const out = walked.resource;
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
   * CLI), without storing anything: pseudonyms and date offsets the vault already holds are used,
   * new ones are made up for this call only, consistently across its resources.
   */
  async preview(resource: Resource, session: PreviewSession = this.previewSession()): Promise<Resource> {
    if (!this.walker) return resource;
    const previewVault = session.vault;
    const one = async (r: Resource): Promise<Resource> => {
      const id = r.id !== undefined && this.translatesIds ? await this.previewStoredId(previewVault, r.resourceType, r.id) : r.id ?? randomUUID();
      return this.deidentify({ ...r, id }, { id, mode: 'preview', previewVault });
    };
    if (resource.resourceType !== 'Bundle' || !Array.isArray(resource.entry)) return one(resource);
    // The requests and responses of a transaction, batch or history are not stored, and their
    // URLs name client ids and search values: what comes back is a collection of the resources
    // as they would be stored.
    const requestBundle = ['transaction', 'batch', 'history', 'transaction-response', 'batch-response'].includes(String(resource.type));
    const entries = (resource.entry as { resource?: Resource; fullUrl?: string }[]).flatMap((entry) => {
      // A fullUrl repeats the entry's (client) id: it goes.
      const { fullUrl: _dropped, ...rest } = entry;
      const kept = requestBundle ? (entry.resource ? { resource: entry.resource } : null) : rest;
      return kept ? [kept] : [];
    });
    // Each entry's resource goes through the table alone, as storing takes it: its dates move by
    // its patient's offset, so a patient and what references it keep their intervals, and an
    // already stored patient shows the dates the store holds. The Bundle's own elements
    // (timestamp, identifier, entry search and links) go through the table as a resource of their
    // own, with an offset of their own: the time of a request is often known, and sharing a
    // patient's offset would give that offset away. In that walk each entry's resource is a
    // placeholder (an id only, which the walk copies as it is) that keeps the entry in place.
    const resources: Resource[] = [];
    for (const entry of entries) if (entry.resource) resources.push(await one(entry.resource));
    let next = 0;
    const shell = await one({
      ...resource, id: randomUUID(), ...(requestBundle ? { type: 'collection' } : {}),
      entry: entries.map((entry) => (entry.resource ? { ...entry, resource: { resourceType: 'Basic', id: String(next++) } } : entry)),
    });
    if (!Array.isArray(shell.entry)) return shell; // no entry left (FHIR JSON has no empty arrays, json.html)
    return { ...shell, entry: (shell.entry as { resource?: Resource }[]).map((e) => (e.resource ? { ...e, resource: resources[Number(e.resource.id)]! } : e)) };
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
   * The id storing would give `id`, for a preview, storing nothing: an id this request issued or
   * the store holds stays; a client's id takes the pseudonym the vault holds, else one made up for
   * this run (PreviewVault). The same answer for a resource's own id, for references to it and
   * for the date-shift subject, so a patient and what references it share one offset.
   */
  private async previewStoredId(vault: PseudonymVault, resourceType: string, id: string,
    issuedIds?: ReadonlySet<string>): Promise<string> {
    if (issuedIds?.has(id) || await this.options.storedIdExists(resourceType, id)) return id;
    return pseudonymizeOne(vault, idDomain(resourceType), id);
  }

  /**
   * The stored id a request's id names, for a record the server keeps about the request (the
   * `$reidentify` AuditEvent), or undefined when it names nothing stored. A client's string that
   * is neither a pseudonym the vault holds nor an id the store holds may be an identifier (an
   * EHR's own id, an MRN typed into a URL), and identifiers never rest in the clinical store
   * (45 CFR 164.514(b)(2)). Never creates a pseudonym; without a vault the store alone answers.
   */
  async storedIdIfKnown(resourceType: string, id: string): Promise<string | undefined> {
    const vault = this.options.vault;
    if (this.translatesIds && !('unavailable' in vault)) {
      try {
        const pseudonym = await lookupOne(vault, idDomain(resourceType), id);
        if (pseudonym !== undefined) return pseudonym;
      } catch (error) {
        if (!(error instanceof VaultUnavailableError)) throw error;
      }
    }
    return (await this.options.storedIdExists(resourceType, id)) ? id : undefined;
  }

  /**
   * A value about a requester (a token subject, a network address) as a record of the server may
   * keep it when the requester may be a patient: HMAC-SHA256 under the table's hash key, so an
   * auditor can tell repeated attempts apart and a key holder can confirm a suspected value, while
   * the clinical store holds no identifier in clear (IP addresses are Safe Harbor identifiers,
   * 45 CFR 164.514(b)(2)(i)(O)). With DEID_MAPPING=none everything is stored as sent, this too;
   * without a hash key, nothing is kept.
   */
  requesterPseudonym(kind: string, value: string): string | undefined {
    if (!this.options.table) return value;
    const key = this.options.hashKey;
    return Buffer.isBuffer(key) ? `hmac-sha256:${cryptoHash(`${kind}\u0000${value}`, key)}` : undefined;
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
  async storedIdForRead(resourceType: string, id: string): Promise<string> {
    if (!this.translatesIds) return id;
    const vault = this.options.vault;
    if ('unavailable' in vault) return id;
    try {
      return (await lookupOne(vault, idDomain(resourceType), id)) ?? id;
    } catch (error) {
      if (error instanceof VaultUnavailableError) throw vaultUnavailable(error.message);
      throw error;
    }
  }

  /**
   * A stored id first: most references name server-assigned ids or pseudonyms the client read
   * back, and the store answers from its cache of current versions. A client's own id is never a
   * stored id (it is stored as its pseudonym), so the order changes no answer, only the cost.
   */
  private async resolveId(vault: PseudonymVault, resourceType: string, id: string, issuedIds?: ReadonlySet<string>): Promise<string> {
    if (issuedIds?.has(id) || await this.options.storedIdExists(resourceType, id)) return id;
    return pseudonymizeOne(vault, idDomain(resourceType), id);
  }

  /**
   * Fills in what the walk left for the vault, in one round: (a) every value needing a pseudonym
   * and every referenced client id, collected by the walk; (b) looked up in one batch; (c) the
   * missing pairs created in ONE vault transaction (one durable write per resource, however many
   * identifiers it carries); (d) the placeholders replaced. The date offset comes last, since its
   * subject may be a patient whose stored id (c) just made.
   */
  private async resolveVaultValues(input: Resource, walked: WalkResult, vault: PseudonymVault | undefined,
    context: DeidentifyContext): Promise<void> {
    const { resource, references, pseudonyms, shiftsDates } = walked;
    if (!vault) return; // a table that needs no vault leaves nothing to fill
    const subject = shiftsDates ? this.dateShiftSubject(input, context) : undefined;
    const idRequests: IdRequest[] = this.translatesIds ? references.map((site) => ({ resourceType: site.resourceType, id: site.id })) : [];
    if (subject && typeof subject !== 'string' && this.translatesIds) idRequests.push(subject);

    // (a) ids that are neither this request's nor stored, and values, each once
    const storedIds = new Map<string, string>();
    const idKeys = new Map<string, VaultEntryKey>();
    for (const { resourceType, id } of idRequests) {
      const key = `${resourceType}/${id}`;
      if (storedIds.has(key) || idKeys.has(key)) continue;
      if (context.issuedIds?.has(id) || await this.options.storedIdExists(resourceType, id)) storedIds.set(key, id);
      else idKeys.set(key, { domain: idDomain(resourceType), value: id });
    }
    const valueKeys = new Map<string, VaultEntryKey>();
    for (const p of pseudonyms) valueKeys.set(`${p.domain}\u0000${p.value}`, p);

    // (b) one lookup batch
    const idList = [...idKeys.entries()];
    const valueList = [...valueKeys.entries()];
    const found = idList.length + valueList.length === 0 ? []
      : await vault.lookupMany([...idList.map(([, k]) => k), ...valueList.map(([, k]) => k)]);
    const pseudonymOfValue = new Map<string, string>();
    const toCreate: { key: string; entry: VaultEntryKey; isId: boolean }[] = [];
    idList.forEach(([key, entry], i) => {
      if (found[i] !== undefined) storedIds.set(key, found[i]!);
      else toCreate.push({ key, entry, isId: true });
    });
    const valueMisses: [string, VaultEntryKey][] = [];
    valueList.forEach(([key, entry], i) => {
      const known = found[idList.length + i];
      if (known !== undefined) pseudonymOfValue.set(key, known);
      else valueMisses.push([key, entry]);
    });
    // A value that already is a pseudonym of its domain stays as it is: a client that writes back
    // what it read (PUT after GET) does not get pseudonyms of pseudonyms.
    if (valueMisses.length > 0) {
      const revealed = await vault.revealMany(valueMisses.map(([, entry]) => entry));
      valueMisses.forEach(([key, entry], i) => {
        if (revealed[i] !== undefined) pseudonymOfValue.set(key, entry.value);
        else toCreate.push({ key, entry, isId: false });
      });
    }

    // (c) the missing pairs in one vault transaction
    if (toCreate.length > 0) {
      const made = await vault.pseudonymizeMany(toCreate.map((c) => c.entry));
      toCreate.forEach((c, i) => (c.isId ? storedIds : pseudonymOfValue).set(c.key, made[i]!));
    }

    // (d) apply
    if (this.translatesIds) {
      for (const site of references) site.holder.reference = site.rebuild(storedIds.get(`${site.resourceType}/${site.id}`)!);
    }
    let dateOffsetDays: number | undefined;
    if (subject !== undefined) {
      const subjectName = typeof subject === 'string' ? subject
        : `Patient/${this.translatesIds ? storedIds.get(`Patient/${subject.id}`)! : subject.id}`;
      const maxDays = this.options.table!.dateShiftMaxDays;
      dateOffsetDays = context.mode === 'preview'
        ? await vault.dateOffsetDays(subjectName, maxDays)
        : await this.storedDateOffset(vault, subjectName, maxDays);
    }
    if (pseudonyms.length > 0 || dateOffsetDays !== undefined) {
      fillVaultValues(resource, {
        pseudonymOf: (p) => pseudonymOfValue.get(`${p.domain}\u0000${p.value}`)!,
        dateOffsetDays,
      });
    }
  }

  private async storedDateOffset(vault: PseudonymVault, subject: string, maxDays: number): Promise<number> {
    let days = this.offsets.get(subject);
    if (days === undefined) {
      days = await vault.dateOffsetDays(subject, maxDays);
      if (this.offsets.size >= MAX_CACHED_OFFSETS) this.offsets.clear();
      this.offsets.set(subject, days);
    }
    return days;
  }

  /**
   * Whose dates move together under dateShift: the patient (the resource itself, or the Patient
   * its subject/patient references, whose stored id the caller resolves), else the resource alone.
   */
  private dateShiftSubject(resource: Resource, context: DeidentifyContext): string | IdRequest {
    if (resource.resourceType === 'Patient') return `Patient/${context.id}`;
    for (const key of ['subject', 'patient']) {
      const reference = (resource[key] as { reference?: unknown } | undefined)?.reference;
      const match = typeof reference === 'string' ? /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(reference) : null;
      if (match) return { resourceType: 'Patient', id: match[1]! };
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

  /** Search values as stored (search-translation.ts): lookup only, never creates a pseudonym. */
  async translateSearch(resourceType: string | null, entries: [string, string][]): Promise<[string, string][]> {
    return this.searchTranslator ? this.searchTranslator.translate(resourceType, entries) : entries;
  }

  // ------------------------------------------------------------------ re-identification

  /**
   * The stored resource with what the vault holds put back: its id, the ids of its references and
   * its identifiers' values. Redacted, generalized and hashed content cannot come back.
   */
  async reidentify(resource: Resource): Promise<Resource> {
    const vault = this.requireVault();
    const out = structuredClone(resource);
    // Every place that may hold a pseudonym, then one reveal batch.
    const sites: { key: VaultEntryKey; put: (real: string) => void }[] = [];
    if (out.id) {
      const id = out.id;
      sites.push({ key: { domain: idDomain(out.resourceType), value: id }, put: (real) => { out.id = real; } });
    }
    const visit = (value: unknown, key: string | null): void => {
      if (Array.isArray(value)) {
        for (const item of value) visit(item, key);
        return;
      }
      if (typeof value !== 'object' || value === null) return;
      const obj = value as Record<string, unknown>;
      if ((key === 'identifier' || key === 'assigner') && typeof obj.value === 'string') {
        const domain = typeof obj.system === 'string' ? obj.system : NO_SYSTEM_DOMAIN;
        sites.push({ key: { domain, value: obj.value }, put: (real) => { obj.value = real; } });
      }
      if (typeof obj.reference === 'string') {
        const match = /^(.*?\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/.+)?$/.exec(obj.reference);
        if (match) {
          sites.push({
            key: { domain: idDomain(match[2]!), value: match[3]! },
            put: (real) => { obj.reference = `${match[1] ?? ''}${match[2]}/${real}${match[4] ?? ''}`; },
          });
        }
      }
      for (const [k, v] of Object.entries(obj)) if (k !== 'resourceType') visit(v, k);
    };
    for (const [k, v] of Object.entries(out)) if (k !== 'id' && k !== 'resourceType') visit(v, k);
    const reals = await vault.revealMany(sites.map((site) => site.key));
    sites.forEach((site, i) => {
      if (reals[i] !== undefined) site.put(reals[i]!);
    });
    return out;
  }
}

function vaultUnavailable(reason: string): FhirError {
  return new FhirError(503, {
    severity: 'error', code: 'transient',
    diagnostics: `De-identification is unavailable, so writes are refused rather than storing identified data: ${reason}`,
  });
}
