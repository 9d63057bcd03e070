/**
 * One handler per FHIR interaction on resources (FHIR R4 http.html). Handlers translate HTTP
 * into service calls and service results into HTTP; no SQL, no business rules.
 */
import type { Context } from 'koa';
import { operationOutcome } from '../../fhir/fhir-error.js';
import { historyBundle, pagingLinks } from '../../fhir/bundle-builders.js';
import type { ResourceService } from '../../services/resource-service.js';
import type { SearchService } from '../../services/search-service.js';
import {
  fhirBaseUrl, preferences, sendJson, sendVersion, sendWriteResult,
} from '../fhir-response.js';
import { readFormBody, readJsonPatchBody, readResourceBody, type BodyLimits } from '../request-body.js';

/** The raw query string after `?`, for conditional operations. */
function conditionalQuery(ctx: Context): string {
  const params = new URLSearchParams(ctx.querystring);
  params.delete('_format');
  params.delete('_pretty');
  return params.toString();
}

function queryEntries(ctx: Context): [string, string][] {
  return [...new URLSearchParams(ctx.querystring)].filter(([name]) => name !== '_format' && name !== '_pretty');
}

interface ValidateParameter { name?: string; resource?: unknown; valueCode?: string; valueUri?: string; valueCanonical?: string }

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function resourceHandlers(service: ResourceService, search: SearchService, limits: BodyLimits) {
  const typeOf = (ctx: Context): string => {
    const type = ctx.params.type as string;
    service.assertKnownType(type);
    return type;
  };

  async function runSearch(ctx: Context, resourceType: string | null, entries: [string, string][],
    compartment?: { ownerType: string; ownerId: string }): Promise<void> {
    sendJson(ctx, 200, await search.searchBundleJson({
      resourceType, entries, strict: preferences(ctx).strict, baseUrl: fhirBaseUrl(ctx), ...(compartment ? { compartment } : {}),
    }));
  }

  async function runHistory(ctx: Context, resourceType?: string, id?: string): Promise<void> {
    const baseUrl = fhirBaseUrl(ctx);
    const page = await service.history({
      ...(resourceType !== undefined ? { resourceType } : {}),
      ...(id !== undefined ? { id } : {}),
      ...(ctx.query._since !== undefined ? { since: single(ctx.query._since)! } : {}),
      ...(ctx.query._count !== undefined ? { count: single(ctx.query._count)! } : {}),
      ...(ctx.query._offset !== undefined ? { offset: single(ctx.query._offset)! } : {}),
    });
    const path = [resourceType, id, '_history'].filter((p) => p !== undefined).join('/');
    const links = pagingLinks(`${baseUrl}/${path}`, queryEntries(ctx), page.offset, page.count, page.versions.length, page.total);
    sendJson(ctx, 200, historyBundle(baseUrl, page.versions, page.total, links));
  }

  return {
    async read(ctx: Context): Promise<void> {
      const version = await service.read(typeOf(ctx), ctx.params.id!);
      sendVersion(ctx, ctx.querystring === '' ? version : await search.shapeForRead(version, queryEntries(ctx)));
    },

    async vread(ctx: Context): Promise<void> {
      const version = await service.vread(typeOf(ctx), ctx.params.id!, ctx.params.vid!);
      sendVersion(ctx, ctx.querystring === '' ? version : await search.shapeForRead(version, queryEntries(ctx)));
    },

    async create(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const body = await readResourceBody(ctx, limits);
      const ifNoneExist = ctx.get('If-None-Exist') || undefined;
      const result = await service.create(type, body, ifNoneExist);
      sendWriteResult(ctx, result, result.matchedExisting ? 'A matching resource exists; nothing created' : 'Created');
    },

    async update(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const body = await readResourceBody(ctx, limits);
      const result = await service.update(type, ctx.params.id!, body, ctx.get('If-Match') || undefined);
      sendWriteResult(ctx, result, result.status === 201 ? 'Created' : 'Updated');
    },

    async conditionalUpdate(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const body = await readResourceBody(ctx, limits);
      const result = await service.conditionalUpdate(type, conditionalQuery(ctx), body);
      sendWriteResult(ctx, result, result.status === 201 ? 'Created' : 'Updated');
    },

    async patch(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const operations = await readJsonPatchBody(ctx, limits);
      const result = await service.patch(type, ctx.params.id!, operations, ctx.get('If-Match') || undefined);
      sendWriteResult(ctx, result, 'Patched');
    },

    async conditionalPatch(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const operations = await readJsonPatchBody(ctx, limits);
      sendWriteResult(ctx, await service.conditionalPatch(type, conditionalQuery(ctx), operations), 'Patched');
    },

    async delete(ctx: Context): Promise<void> {
      sendWriteResult(ctx, await service.delete(typeOf(ctx), ctx.params.id!, undefined, ctx.get('If-Match') || undefined), 'Deleted');
    },

    async conditionalDelete(ctx: Context): Promise<void> {
      sendWriteResult(ctx, await service.conditionalDelete(typeOf(ctx), conditionalQuery(ctx)), 'Deleted');
    },

    async search(ctx: Context): Promise<void> {
      await runSearch(ctx, typeOf(ctx), queryEntries(ctx));
    },

    /** http.html#search: POST Type/_search with a form body; URL and body parameters combine. */
    async searchPost(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      await runSearch(ctx, type, [...queryEntries(ctx), ...(await readFormBody(ctx, limits))]);
    },

    /** Compartment search, R4 http.html#search: `GET Patient/{id}/Observation`. */
    async compartmentSearch(ctx: Context): Promise<void> {
      const ownerType = typeOf(ctx);
      service.assertValidId(ctx.params.id!);
      const type = ctx.params.compartmentType!;
      service.assertKnownType(type);
      await runSearch(ctx, type, queryEntries(ctx), { ownerType, ownerId: ctx.params.id! });
    },

    async systemSearch(ctx: Context): Promise<void> {
      await runSearch(ctx, null, queryEntries(ctx));
    },

    async systemSearchPost(ctx: Context): Promise<void> {
      await runSearch(ctx, null, [...queryEntries(ctx), ...(await readFormBody(ctx, limits))]);
    },

    async instanceHistory(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      service.assertValidId(ctx.params.id!);
      await runHistory(ctx, type, ctx.params.id!);
    },

    async typeHistory(ctx: Context): Promise<void> {
      await runHistory(ctx, typeOf(ctx));
    },

    async systemHistory(ctx: Context): Promise<void> {
      await runHistory(ctx);
    },

    /**
     * `$validate` (R4 resource-operation-validate): the body is the resource, or a Parameters
     * with a `resource` parameter; the answer is always 200 with an OperationOutcome.
     */
    /**
     * $validate (R4 resource-operation-validate): the resource in the body or in a Parameters
     * `resource`; `mode` (create | update | delete, resource-validation-mode) and `profile`
     * from the Parameters or the URL. Answers an OperationOutcome; stores nothing.
     */
    async validate(ctx: Context): Promise<void> {
      const type = typeOf(ctx);
      const body = await readResourceBody(ctx, limits);
      const fromParameters = body.resourceType === 'Parameters' && type !== 'Parameters';
      const parameters = fromParameters ? (body.parameter as ValidateParameter[] | undefined) ?? [] : [];
      const parameter = (name: string) => parameters.find((p) => p.name === name);
      const mode = parameter('mode')?.valueCode ?? single(ctx.query.mode);
      const profile = parameter('profile')?.valueUri ?? parameter('profile')?.valueCanonical ?? single(ctx.query.profile);
      const resource = fromParameters ? parameter('resource')?.resource as typeof body | undefined : body;
      const issues = service.validateForMode(type, resource, { mode, profile, urlId: ctx.params.id });
      sendJson(ctx, 200, operationOutcome(issues.length > 0 ? issues
        : [{ severity: 'information', code: 'informational', diagnostics: 'Validation successful: no issues found' }]));
    },
  };
}
