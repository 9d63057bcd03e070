/**
 * batch and transaction Bundles (FHIR R4 http.html#transaction): a thin adapter around the
 * executor. Each entry's request is parsed into the same interaction a REST request becomes
 * (fhir/bundle-plan.ts), so an entry can do everything REST can, with the same status codes.
 *
 * batch: each entry runs on its own through the executor; a failing entry fails alone.
 * transaction: all or nothing, in two phases.
 *  1. Outside the writer: targets and conditional references (`urn:uuid:` fullUrls, conditional
 *     creates, conditional updates) are resolved against the committed store, references are
 *     rewritten, and every write is planned: validated, de-identified and indexed.
 *  2. In ONE store transaction, in the order of http.html#trules (DELETE, POST, PUT/PATCH,
 *     GET/HEAD): each plan re-checks what can have changed meanwhile and commits. When a
 *     conditional target or a patched version changed, the whole transaction is planned again
 *     (services/resource-service.ts MAX_PLAN_ATTEMPTS), then fails with 409.
 */
import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { RequestContext } from '../auth/request-context.js';
import { FhirError, operationOutcome, successOutcome, type OutcomeIssue } from '../fhir/fhir-error.js';
import { statusLine, versionLocation, weakETag } from '../fhir/bundle-builders.js';
import { entryRequestOf, transactionOrder, transactionStep, type BundleEntryRequest } from '../fhir/bundle-plan.js';
import { referenceStrings, type Resource } from '../fhir/resource.js';
import type { Store, StoreTransaction } from '../store/store.js';
import type { InteractionExecutor } from './interaction-executor.js';
import { written } from './interaction-executor.js';
import type { InteractionResult } from './interaction-result.js';
import {
  MAX_PLAN_ATTEMPTS, staleConflict, StaleWritePlan, type ResourceService, type WriteGuard, type WritePlan,
} from './resource-service.js';

export interface BundleLimits {
  /** Entries per batch or transaction; more → 413. */
  maxEntries: number;
}

interface EntryResponse {
  response: Record<string, unknown>;
  resource?: unknown;
}

/** A batch yields to the event loop after this many entries, so a long one stalls nobody. */
const ENTRIES_PER_TURN = 8;

export class BundleService {
  constructor(
    private readonly resources: ResourceService,
    /** Where a transaction's writes commit together. */
    private readonly store: Store,
    /** The executor (built after this service: it runs bundles through it). */
    private readonly executor: () => InteractionExecutor,
    private readonly limits: BundleLimits,
    /** Told about an unexpected error that failed one batch entry (the server logs it). */
    private readonly onEntryError?: (error: unknown) => void,
  ) {}

  async process(bundle: Resource, context: RequestContext): Promise<Resource> {
    if (bundle.resourceType !== 'Bundle') {
      throw FhirError.badRequest('POST to the base takes a Bundle of type batch or transaction', 'invalid', ['resourceType']);
    }
    const type = bundle.type;
    if (type !== 'batch' && type !== 'transaction') {
      throw FhirError.badRequest('Bundle.type must be batch or transaction', 'value', ['Bundle.type']);
    }
    const entries = (bundle.entry ?? []) as unknown[];
    if (!Array.isArray(entries)) throw FhirError.badRequest('Bundle.entry must be an array', 'structure', ['Bundle.entry']);
    if (entries.length > this.limits.maxEntries) {
      throw new FhirError(413, {
        severity: 'error', code: 'too-costly', diagnostics: `A ${type} may have at most ${this.limits.maxEntries} entries (MAX_BUNDLE_ENTRIES); split it`,
      });
    }
    return type === 'transaction' ? this.transaction(entries, context) : this.batch(entries, context);
  }

  // ---------------------------------------------------------------- batch

  private async batch(rawEntries: unknown[], context: RequestContext): Promise<Resource> {
    const responses: EntryResponse[] = [];
    for (let index = 0; index < rawEntries.length; index++) {
      if (index > 0 && index % ENTRIES_PER_TURN === 0) await yieldToEventLoop();
      try {
        const request = entryRequestOf(rawEntries[index], index, context.baseUrl);
        if (request.resource && referenceStrings(request.resource).some((r) => r.startsWith('urn:uuid:'))) {
          // http.html#brules: batch entries may not depend on each other.
          throw FhirError.badRequest('A batch entry may not reference other entries by urn:uuid; use a transaction', 'invalid');
        }
        const entry = entryResponse(await this.executor().execute(request.interaction, context), context);
        // HEAD is GET without the body (http.html#read), in a batch entry too.
        if (request.interaction.method === 'HEAD') delete entry.resource;
        responses.push(entry);
      } catch (error) {
        // An unexpected error fails its entry alone (http.html#brules), without its details.
        const failure = error instanceof FhirError ? error
          : new FhirError(500, { severity: 'fatal', code: 'exception', diagnostics: 'Internal server error' });
        if (!(error instanceof FhirError)) this.onEntryError?.(error);
        responses.push({ response: { status: statusLine(failure.status), outcome: operationOutcome(failure.issues) } });
      }
    }
    return { resourceType: 'Bundle', type: 'batch-response', entry: responses };
  }

  // ---------------------------------------------------------------- transaction

  private async transaction(rawEntries: unknown[], context: RequestContext): Promise<Resource> {
    // Every entry is read and authorized before anything runs: one bad entry fails the whole.
    const requests = rawEntries.map((entry, index) => {
      const request = asBundleError(() => entryRequestOf(entry, index, context.baseUrl));
      located(index, () => this.executor().authorize(request.interaction, context));
      return request;
    });
    const guard = this.executor().writeGuard(context);
    const staleEntries: number[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        const plan = await this.planTransaction(requests, guard);
        const responses = await this.store.transaction((tx) => this.commitTransaction(requests, plan, tx, context));
        return { resourceType: 'Bundle', type: 'transaction-response', entry: responses };
      } catch (error) {
        if (!(error instanceof StaleWritePlan)) throw error;
        staleEntries.push(error.entryIndex ?? -1);
        if (attempt >= MAX_PLAN_ATTEMPTS) {
          const index = staleEntries[0]!;
          // The same entry stale on every attempt: what its conditional criteria match changes
          // within this transaction, so another of its entries writes what they match.
          if (index >= 0 && staleEntries.every((i) => i === index)) {
            throw locate(FhirError.badRequest('Its conditional criteria match a resource that another entry of this transaction writes; identities may not overlap (http.html#trules)', 'invalid'), index);
          }
          throw staleConflict();
        }
      }
    }
  }

  /** Phase 1, outside the writer: every write entry's plan, by entry index. */
  private async planTransaction(requests: BundleEntryRequest[], guard: WriteGuard): Promise<TransactionPlan> {
    const deleting = await this.assertNoOverlappingTargets(requests, guard);
    const resolution = await this.resolveFullUrls(requests, deleting, guard);
    assertLocalReferencesResolve(requests, resolution.references);
    const plans = new Map<number, WritePlan>();
    for (const request of transactionOrder(requests)) {
      if (transactionStep(request) > 2) continue;
      // Validation and de-identification are CPU work: let other requests in between entries.
      if (plans.size > 0 && plans.size % ENTRIES_PER_TURN === 0) await yieldToEventLoop();
      // A fresh copy per attempt: references are rewritten in it.
      const interaction = { ...request.interaction };
      if (interaction.body !== undefined) {
        // The resource, or a PATCH entry's decoded JSON Patch: its values may reference entries too.
        interaction.body = structuredClone(interaction.body);
        replaceReferences(interaction.body, resolution.references);
      }
      plans.set(request.index, await located(request.index, () => this.planEntry(request, interaction, resolution, guard)));
    }
    return { plans, resolution, guard };
  }

  private planEntry(request: BundleEntryRequest, interaction: BundleEntryRequest['interaction'], resolution: Resolution,
    guard: WriteGuard): Promise<WritePlan> {
    const type = interaction.resourceType!;
    const body = interaction.body as Resource;
    const { ifMatch, ifNoneExist } = interaction.conditions;
    const options = { issuedIds: resolution.storedIds, guard };
    const assigned = resolution.assigned.get(request.index);
    switch (interaction.kind) {
      case 'delete': return this.resources.planDelete(type, interaction.id!, ifMatch, options);
      case 'conditional-delete': return this.resources.planConditionalDelete(type, interaction.rawQuery, { ...options, expectedMatch: null }, ifMatch);
      case 'create':
        if (assigned?.matched) return Promise.resolve(this.matchedCreatePlan(type, ifNoneExist!, assigned.id, guard));
        return this.resources.planCreate(type, body, ifNoneExist, {
          ...options, newId: assigned!.id, ...(ifNoneExist !== undefined ? { expectedMatch: null } : {}),
        });
      case 'update': return this.resources.planUpdate(type, interaction.id!, body, ifMatch, options);
      case 'conditional-update':
        return this.resources.planConditionalUpdate(type, interaction.rawQuery, body, {
          ...options, ...(assigned ? { newId: assigned.id } : {}), expectedMatch: resolution.conditionalUpdateMatches.get(request.index) ?? null,
        }, ifMatch);
      case 'patch': return this.resources.planPatch(type, interaction.id!, interaction.body, ifMatch, options);
      case 'conditional-patch': return this.resources.planConditionalPatch(type, interaction.rawQuery, interaction.body, options, ifMatch);
      default: throw new Error(`internal: ${interaction.kind} is not a transaction write`);
    }
  }

  /** A conditional create that matched: nothing to write, as long as the match still holds. */
  private matchedCreatePlan(resourceType: string, ifNoneExist: string, matchedId: string, guard: WriteGuard): WritePlan {
    return {
      resourceType, id: matchedId,
      commit: async (tx) => {
        const matches = await this.resources.conditionalMatches(tx, resourceType, ifNoneExist, 2, guard);
        if (matches.length !== 1 || matches[0]!.id !== matchedId) throw new StaleWritePlan();
        return { status: 200, version: matches[0], matchedExisting: true };
      },
    };
  }

  /** Phase 2, in the store transaction: commit in http.html#trules order, then the reads. */
  private async commitTransaction(requests: BundleEntryRequest[], { plans, resolution, guard }: TransactionPlan, tx: StoreTransaction,
    context: RequestContext): Promise<EntryResponse[]> {
    await this.recheckConditionalReferences(tx, resolution, guard);
    const out = new Array<EntryResponse>(requests.length);
    // What each write finally touched must not overlap (a conditional create that matched a
    // resource another entry also writes).
    const touched = new Map<string, number>();
    for (const request of transactionOrder(requests)) {
      const plan = plans.get(request.index);
      out[request.index] = await located(request.index, async () => {
        if (!plan) return entryResponse(await this.executor().execute(request.interaction, context, tx), context);
        let result;
        try {
          result = await plan.commit(tx);
        } catch (error) {
          if (error instanceof StaleWritePlan) error.entryIndex = request.index;
          throw error;
        }
        if (result.version) {
          const identity = `${plan.resourceType}/${result.version.id}`;
          const earlier = touched.get(identity);
          if (earlier !== undefined) {
            throw FhirError.badRequest(`Bundle.entry[${earlier}] and Bundle.entry[${request.index}] resolve to the same resource`, 'invalid');
          }
          touched.set(identity, request.index);
        }
        return entryResponse(written(result, request.interaction.kind === 'create' ? 'Created' : 'Updated'), context);
      });
    }
    return out;
  }

  /**
   * http.html#trules: "If any resource identities (including resolved identities from
   * conditional update/delete) overlap in steps 1-3, then the transaction SHALL fail." The
   * DELETE, PUT and PATCH entries' targets, conditional ones resolved against the committed
   * store, compared as stored ids. Returns what the DELETE entries remove.
   */
  private async assertNoOverlappingTargets(requests: BundleEntryRequest[], guard: WriteGuard): Promise<Set<string>> {
    const seen = new Map<string, number>();
    const deleting = new Set<string>();
    const { store } = this;
    for (const { interaction, index } of requests) {
      if (interaction.method !== 'DELETE' && interaction.method !== 'PUT' && interaction.method !== 'PATCH') continue;
      const type = interaction.resourceType!;
      let id: string | undefined;
      if (interaction.id !== undefined) {
        id = await this.resources.storedIdFor(type, interaction.id);
      } else {
        const matches = await located(index, () => this.resources.conditionalMatches(store, type, interaction.rawQuery, 2, guard));
        if (matches.length === 1) id = matches[0]!.id;
      }
      if (id === undefined) continue;
      const key = `${type}/${id}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        throw FhirError.badRequest(`Bundle.entry[${earlier}] and Bundle.entry[${index}] both modify the same ${type}`, 'invalid', [`Bundle.entry[${index}]`]);
      }
      seen.set(key, index);
      if (interaction.method === 'DELETE') deleting.add(key);
    }
    return deleting;
  }

  /**
   * Maps every entry's fullUrl to the `Type/id` it resolves to (http.html#trules): a POST gets a
   * new id, or the match of its If-None-Exist; a conditional PUT (`Type?identifier=…`, the
   * upsert of EHR and ETL jobs) its match, or a new id; an instance PUT its own URL. Matches
   * that a DELETE entry removes do not count (step 1 runs first).
   */
  private async resolveFullUrls(requests: BundleEntryRequest[], deleting: Set<string>, guard: WriteGuard): Promise<Resolution> {
    const references = new Map<string, string>();
    const assigned = new Map<number, { id: string; matched: boolean }>();
    const conditionalUpdateMatches = new Map<number, string | null>();
    // Ids the transaction assigned or resolved: references to them are stored ids, not client ids to pseudonymize.
    const storedIds = new Set<string>();
    const { store } = this;
    const liveMatch = async (request: BundleEntryRequest, criteria: string, what: string) => {
      const type = request.interaction.resourceType!;
      const matches = (await located(request.index, () => this.resources.conditionalMatches(store, type, criteria, 3, guard)))
        .filter((m) => !deleting.has(`${type}/${m.id}`));
      if (matches.length > 1) throw locate(FhirError.preconditionFailed(`Multiple resources match the ${what} criteria`, 'multiple-matches'), request.index);
      return matches[0];
    };
    for (const request of requests) {
      const { interaction } = request;
      const type = interaction.resourceType;
      let target: string | undefined;
      if (interaction.kind === 'create') {
        const match = interaction.conditions.ifNoneExist !== undefined ? await liveMatch(request, interaction.conditions.ifNoneExist, 'conditional create') : undefined;
        const id = match?.id ?? randomUUID();
        assigned.set(request.index, { id, matched: match !== undefined });
        storedIds.add(id);
        target = `${type}/${id}`;
      } else if (interaction.kind === 'conditional-update') {
        const match = await liveMatch(request, interaction.rawQuery, 'conditional update');
        conditionalUpdateMatches.set(request.index, match?.id ?? null);
        const bodyId = (interaction.body as Resource | undefined)?.id;
        if (match) {
          storedIds.add(match.id);
          target = `${type}/${match.id}`;
        } else if (bodyId !== undefined) {
          target = `${type}/${bodyId}`; // update-as-create under the client's id
        } else {
          const id = randomUUID();
          assigned.set(request.index, { id, matched: false });
          storedIds.add(id);
          target = `${type}/${id}`;
        }
      } else if (interaction.kind === 'update') {
        target = `${type}/${interaction.id}`;
      }
      if (target !== undefined && request.fullUrl) references.set(request.fullUrl, target);
    }
    // Conditional references (http.html#trules): `Type?query` must match exactly one resource.
    const conditionalReferences: ConditionalReference[] = [];
    for (const request of requests) {
      if (!request.resource) continue;
      for (const reference of referenceStrings(request.resource)) {
        if (references.has(reference) || !/^[A-Z][A-Za-z]+\?/.test(reference)) continue;
        const type = reference.slice(0, reference.indexOf('?'));
        const criteria = reference.slice(reference.indexOf('?') + 1);
        const matches = await located(request.index, () => {
          this.resources.assertKnownType(type);
          return this.resources.conditionalMatches(store, type, criteria, 2, guard);
        });
        if (matches.length !== 1) {
          throw locate(FhirError.preconditionFailed(
            `Conditional reference ${type}?… matched ${matches.length === 0 ? 'no' : 'several'} resources; exactly one is required`,
            matches.length === 0 ? 'not-found' : 'multiple-matches'), request.index);
        }
        storedIds.add(matches[0]!.id);
        references.set(reference, `${type}/${matches[0]!.id}`);
        conditionalReferences.push({ type, criteria, id: matches[0]!.id });
      }
    }
    return { references, assigned, storedIds, conditionalReferences, conditionalUpdateMatches };
  }

  /** Inside the transaction: each conditional reference still names the resource it was resolved to. */
  private async recheckConditionalReferences(tx: StoreTransaction, resolution: Resolution, guard: WriteGuard): Promise<void> {
    for (const { type, criteria, id } of resolution.conditionalReferences) {
      const matches = await this.resources.conditionalMatches(tx, type, criteria, 2, guard);
      if (matches.length !== 1 || matches[0]!.id !== id) throw new StaleWritePlan();
    }
  }
}

interface Resolution {
  /** fullUrl → `Type/id`. */
  references: Map<string, string>;
  /** By entry index: the id a create (or an unmatched conditional update) gets, and whether it matched. */
  assigned: Map<number, { id: string; matched: boolean }>;
  storedIds: Set<string>;
  conditionalReferences: ConditionalReference[];
  /** By entry index: what a conditional update matched when its fullUrl was resolved (null: nothing). */
  conditionalUpdateMatches: Map<number, string | null>;
}

interface TransactionPlan {
  /** Each write entry's plan, by entry index. */
  plans: Map<number, WritePlan>;
  resolution: Resolution;
  guard: WriteGuard;
}

interface ConditionalReference { type: string; criteria: string; id: string }

/** An interaction's result as a `Bundle.entry.response` (http.html#transaction-response). */
function entryResponse(result: InteractionResult, context: RequestContext): EntryResponse {
  switch (result.kind) {
    case 'resource':
      return { resource: typeof result.resource === 'string' ? JSON.parse(result.resource) : result.resource, response: { status: '200 OK' } };
    case 'deleted':
      return { response: { status: statusLine(204) } };
    case 'version': {
      const { version } = result;
      const response: Record<string, unknown> = {
        status: statusLine(result.status), etag: weakETag(version.versionId), lastModified: version.lastUpdated,
      };
      if (!result.written) return { resource: JSON.parse(version.json!), response };
      response.location = versionLocation(context.baseUrl, version);
      const entry: EntryResponse = { response };
      if (context.returnPreference === 'representation') entry.resource = JSON.parse(version.json!);
      if (context.returnPreference === 'OperationOutcome') response.outcome = successOutcome(result.written.message);
      return entry;
    }
  }
}

function locateIssue(issue: OutcomeIssue, index: number): OutcomeIssue {
  const prefix = `Bundle.entry[${index}]`;
  if (issue.diagnostics?.startsWith(prefix)) return issue;
  return {
    ...issue,
    diagnostics: `${prefix}: ${issue.diagnostics ?? issue.code}`,
    expression: issue.expression?.length
      ? issue.expression.map((e) => (e.startsWith(prefix) ? e : `${prefix}.resource.${e.replace(/^[A-Z][A-Za-z]+\.?/, '') || ''}`.replace(/\.$/, '')))
      : [prefix],
  };
}

function locate(error: FhirError, index: number): FhirError {
  return new FhirError(error.status, error.issues.map((i) => locateIssue(i, index)), error.headers);
}

/**
 * An entry URL that names no interaction (404) or a method it does not take (405) makes the
 * transaction Bundle a bad request: the Bundle's URL itself exists and takes POST.
 */
function asBundleError<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof FhirError && (error.status === 404 || error.status === 405)) throw new FhirError(400, error.issues);
    throw error;
  }
}

/** Runs `work` for entry `index`; a FhirError it throws fails the transaction, located at that entry. */
async function located<T>(index: number, work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw error instanceof FhirError ? locate(error, index) : error;
  }
}

/**
 * A `urn:uuid:` / `urn:oid:` reference names an entry of this bundle (http.html#trules); one
 * that no entry has as its fullUrl would be stored as a reference to nothing.
 */
function assertLocalReferencesResolve(requests: BundleEntryRequest[], references: Map<string, string>): void {
  for (const request of requests) {
    const body = request.interaction.body;
    if (body === undefined) continue;
    for (const reference of referenceStrings(body)) {
      if ((reference.startsWith('urn:uuid:') || reference.startsWith('urn:oid:')) && !references.has(reference)) {
        throw FhirError.badRequest(`Bundle.entry[${request.index}]: the reference ${reference.slice(0, 9)}… names no entry of this transaction (no entry has it as fullUrl)`,
          'invalid', [`Bundle.entry[${request.index}]`]);
      }
    }
  }
}

/** Rewrites `reference` strings (and exact urn:uuid strings, e.g. in uri elements) in place. */
function replaceReferences(value: unknown, references: Map<string, string>): void {
  if (references.size === 0) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === 'string') { const r = references.get(item); if (r && item.startsWith('urn:')) value[i] = r; } else replaceReferences(item, references);
    }
  } else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(record)) {
      if (typeof child === 'string') {
        const replacement = references.get(child);
        if (replacement && (key === 'reference' || child.startsWith('urn:'))) record[key] = replacement;
      } else if (typeof child === 'object') {
        replaceReferences(child, references);
      }
    }
  }
}
