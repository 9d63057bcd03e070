/**
 * The one executor (DESIGN.md "The spine"): runs an interaction for a request context, whether
 * it came over HTTP or as a bundle entry. It asks the access policy before running anything,
 * lets the services AND the policy's restrictions into searches, and filters what is returned.
 * Koa (http/) and the bundle service are thin adapters around it.
 */
import { ALLOW_ALL, type AccessPolicy } from '../auth/access-policy.js';
import type { RequestContext } from '../auth/request-context.js';
import { historyBundle, pagingLinks } from '../fhir/bundle-builders.js';
import { FhirError } from '../fhir/fhir-error.js';
import { interactionPath, type Interaction } from '../fhir/interaction.js';
import type { Resource } from '../fhir/resource.js';
import type { StoredVersion, StoreReader, StoreTransaction } from '../store/store.js';
import { resourceResult, type InteractionResult } from './interaction-result.js';
import type { OperationRegistry } from './operation-registry.js';
import type { ResourceService, WriteGuard, WriteResult } from './resource-service.js';
import type { SearchAccess, SearchService } from './search-service.js';

export interface InteractionExecutorDependencies {
  resources: ResourceService;
  search: SearchService;
  operations: OperationRegistry;
  policy: AccessPolicy;
  capabilityStatement: (baseUrl: string) => Resource;
  /** Runs a batch or transaction Bundle; its entries come back here, one interaction each. */
  processBundle: (bundle: Resource, context: RequestContext) => Promise<Resource>;
}

export class InteractionExecutor {
  constructor(private readonly deps: InteractionExecutorDependencies) {}

  /**
   * Runs one interaction. `tx`: inside a transaction Bundle, reads and writes happen in its
   * store transaction (the bundle service commits or rolls back the whole).
   */
  async execute(interaction: Interaction, context: RequestContext, tx?: StoreTransaction): Promise<InteractionResult> {
    const { resources } = this.deps;
    this.authorize(interaction, context);
    switch (interaction.kind) {
      case 'capabilities':
        return resourceResult(this.deps.capabilityStatement(context.baseUrl));
      case 'bundle':
        if (tx) throw FhirError.badRequest('A Bundle entry may not itself POST a batch or transaction', 'not-supported');
        return resourceResult(await this.deps.processBundle(resourceBody(interaction), context));
      case 'read':
        return this.readable(interaction, await this.readCurrent(interaction, context, tx), context);
      case 'vread':
        return this.readable(interaction, await resources.vread(interaction.resourceType!, interaction.id!, interaction.versionId!, tx), context);
      case 'search-type':
      case 'search-system':
      case 'search-compartment':
        return resourceResult(await this.search(interaction, context, tx));
      case 'history-instance':
      case 'history-type':
      case 'history-system':
        return resourceResult(await this.history(interaction, context, tx));
      case 'operation': {
        const operation = this.deps.operations.resolve(interaction);
        if (tx && operation.writes) {
          throw FhirError.badRequest(`$${operation.name} records an audit event and cannot run inside a transaction; use a batch or a plain request`, 'not-supported');
        }
        // An operation on an instance is a read of it: what may not be seen is absent.
        if (interaction.id !== undefined) await this.assertTargetReadable(interaction, context, tx);
        return operation.run(interaction, context, tx);
      }
      default:
        return this.write(interaction, context, tx);
    }
  }

  /** Before anything runs: the type is one this server has, the id is well-formed, and the policy allows it. */
  authorize(interaction: Interaction, context: RequestContext): void {
    const { resources, policy } = this.deps;
    if (interaction.resourceType !== undefined) resources.assertKnownType(interaction.resourceType);
    if (interaction.compartmentType !== undefined) resources.assertKnownType(interaction.compartmentType);
    if (interaction.id !== undefined) resources.assertValidId(interaction.id);
    policy.authorize(interaction, context);
  }

  /** The policy's search hooks for this context: restrictions ANDed in, results filtered. */
  searchAccess(context: RequestContext): SearchAccess {
    const { policy } = this.deps;
    return {
      restriction: (type) => policy.searchRestriction(type, context),
      mayReturn: (resource) => policy.mayAccess(resource, 'read', context),
    };
  }

  /**
   * http.html#read: a deleted resource is 410. Under a restricting policy a delete version has no
   * content to judge, so the version before it is: a hidden resource's deletion reads as 404.
   */
  private async readCurrent(interaction: Interaction, context: RequestContext, reader: StoreReader | undefined): Promise<StoredVersion> {
    const { resources, policy } = this.deps;
    try {
      return await resources.read(interaction.resourceType!, interaction.id!, reader);
    } catch (error) {
      if (!(error instanceof FhirError) || error.status !== 410 || policy === ALLOW_ALL) throw error;
      const current = await resources.readCurrentVersion(interaction.resourceType!, interaction.id!, reader);
      const before = current && current.versionId > 1
        ? await resources.readStoredVersion(current.resourceType, current.id, current.versionId - 1, reader)
        : undefined;
      if (!before?.json || !policy.mayAccess(JSON.parse(before.json) as Resource, 'read', context)) {
        throw FhirError.notFound(`No ${interaction.resourceType} with this id exists`);
      }
      throw error;
    }
  }

  /** Under a restricting policy, the target of an instance operation must be one the context may read. */
  private async assertTargetReadable(interaction: Interaction, context: RequestContext, reader: StoreReader | undefined): Promise<void> {
    if (this.deps.policy === ALLOW_ALL) return;
    const current = await this.deps.resources.readCurrentVersion(interaction.resourceType!, interaction.id!, reader);
    if (!current || current.json === null || !this.deps.policy.mayAccess(JSON.parse(current.json) as Resource, 'read', context)) {
      throw FhirError.notFound(`No ${interaction.resourceType} with this id exists`);
    }
  }

  /** http.html#read: `_summary` and `_elements` shape a read as they shape a search's matches. */
  private async readable(interaction: Interaction, version: StoredVersion, context: RequestContext): Promise<InteractionResult> {
    // Not allowed reads as absent: a 404 says nothing about what exists (SMART: no leak by error).
    if (this.deps.policy !== ALLOW_ALL && !this.deps.policy.mayAccess(JSON.parse(version.json!) as Resource, 'read', context)) {
      throw FhirError.notFound(`No ${version.resourceType} with this id exists`);
    }
    const shaped = interaction.query.length === 0 ? version : await this.deps.search.shapeForRead(version, interaction.query);
    return { kind: 'version', status: 200, version: shaped };
  }

  private async search(interaction: Interaction, context: RequestContext, reader: StoreReader | undefined): Promise<string> {
    const form = interaction.method === 'POST' ? (interaction.body as [string, string][] | undefined) ?? [] : [];
    return this.deps.search.searchBundleJson({
      resourceType: interaction.kind === 'search-system' ? null
        : interaction.kind === 'search-compartment' ? interaction.compartmentType! : interaction.resourceType!,
      entries: [...interaction.query, ...form],
      strict: context.strictHandling,
      baseUrl: context.baseUrl,
      ...(interaction.kind === 'search-compartment'
        ? { compartment: { ownerType: interaction.resourceType!, ownerId: interaction.id! } } : {}),
      access: this.searchAccess(context),
    }, reader);
  }

  private async history(interaction: Interaction, context: RequestContext, reader: StoreReader | undefined): Promise<Resource> {
    const { resources, policy } = this.deps;
    const get = (name: string) => interaction.query.find(([n]) => n === name)?.[1];
    const since = get('_since');
    const count = get('_count');
    const offset = get('_offset');
    const page = await resources.history({
      ...(interaction.resourceType !== undefined ? { resourceType: interaction.resourceType } : {}),
      ...(interaction.id !== undefined ? { id: interaction.id } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(count !== undefined ? { count } : {}),
      ...(offset !== undefined ? { offset } : {}),
    }, reader);
    // A restricted context sees only the versions it may read; the total would count the others.
    const restricted = policy.searchRestriction(interaction.resourceType ?? null, context) !== undefined;
    const versions = restricted ? page.versions.filter((v) => v.json === null
      ? this.deleteVisible(v, page.versions, context) : policy.mayAccess(JSON.parse(v.json) as Resource, 'read', context)) : page.versions;
    // A hidden resource's history reads as the history of nothing: 404, as for an unknown id.
    if (restricted && interaction.kind === 'history-instance' && versions.length === 0 && page.versions.length > 0) {
      throw FhirError.notFound(`No ${interaction.resourceType} with this id exists`);
    }
    const total = restricted ? versions.length : page.total;
    const base = context.baseUrl;
    const path = interactionPath(interaction);
    const links = pagingLinks(`${base}/${path}`, interaction.query, page.offset, page.count, page.versions.length, restricted ? undefined : page.total,
      restricted ? page.versions.length === page.count : undefined);
    return historyBundle(base, versions, total, links);
  }

  /** A delete version carries no content: it is visible when a version of the same resource on the page is. */
  private deleteVisible(deleted: StoredVersion, page: StoredVersion[], context: RequestContext): boolean {
    return page.some((v) => v.resourceType === deleted.resourceType && v.id === deleted.id && v.json !== null
      && this.deps.policy.mayAccess(JSON.parse(v.json) as Resource, 'read', context));
  }

  private async write(interaction: Interaction, context: RequestContext, tx: StoreTransaction | undefined): Promise<InteractionResult> {
    const { resources } = this.deps;
    const type = interaction.resourceType!;
    const { ifMatch, ifNoneExist } = interaction.conditions;
    const options = { ...(tx ? { tx } : {}), guard: this.writeGuard(context) };
    switch (interaction.kind) {
      case 'create': {
        const result = await resources.create(type, resourceBody(interaction), ifNoneExist, options);
        return written(result, result.matchedExisting ? 'A matching resource exists; nothing created' : 'Created');
      }
      case 'update':
        return written(await resources.update(type, interaction.id!, resourceBody(interaction), ifMatch, options), 'Updated');
      case 'conditional-update':
        return written(await resources.conditionalUpdate(type, interaction.rawQuery, resourceBody(interaction), options, ifMatch), 'Updated');
      case 'patch':
        return written(await resources.patch(type, interaction.id!, interaction.body, ifMatch, options), 'Patched');
      case 'conditional-patch':
        return written(await resources.conditionalPatch(type, interaction.rawQuery, interaction.body, options, ifMatch), 'Patched');
      case 'delete':
        return written(await resources.delete(type, interaction.id!, ifMatch, options), 'Deleted');
      case 'conditional-delete':
        return written(await resources.conditionalDelete(type, interaction.rawQuery, options, ifMatch), 'Deleted');
      default:
        throw new Error(`internal: no executor branch for ${interaction.kind}`);
    }
  }

  /** What a write may touch under the policy: the stored resource before and after. */
  writeGuard(context: RequestContext): WriteGuard {
    const { policy } = this.deps;
    return {
      mayRead: (resource) => policy.mayAccess(resource, 'read', context),
      mayWrite: (resource) => policy.mayAccess(resource, 'write', context),
      mayDelete: (resource) => policy.mayAccess(resource, 'delete', context),
      searchRestriction: (type) => policy.searchRestriction(type, context),
    };
  }
}

/** A write's result as an interaction result; `message` is said for `Prefer: return=OperationOutcome`. */
export function written(result: WriteResult, message: string): InteractionResult {
  if (result.status === 204 || !result.version || result.version.deleted) {
    return { kind: 'deleted', status: 204, version: result.version };
  }
  const said = result.status === 201 ? 'Created'
    : result.unchanged ? 'Unchanged: the content equals the current version; no version was written' : message;
  return { kind: 'version', status: result.status, version: result.version, written: { message: said } };
}

function resourceBody(interaction: Interaction): Resource {
  const body = interaction.body as Resource | undefined;
  if (body === undefined) throw FhirError.badRequest(`A ${interaction.kind} needs a resource`, 'required');
  return body;
}
