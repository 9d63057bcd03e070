/**
 * The Koa application: middleware (one job each) and the FHIR routes under /fhir.
 * FHIR R4 http.html is the map: one route per URL pattern with a handler per interaction,
 * literal routes (`_history`, `_search`, `$validate`) registered before the `:id` routes they
 * would otherwise match.
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { FhirError } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import type { BundleService } from '../services/bundle-service.js';
import type { DeidService } from '../services/deid-service.js';
import type { ResourceService } from '../services/resource-service.js';
import type { SearchService } from '../services/search-service.js';
import type { LedgerVerifier } from '../ledger/ledger-verifier.js';
import { ledgerHandlers } from './handlers/ledger-handlers.js';
import { resourceHandlers } from './handlers/resource-handlers.js';
import { contentNegotiation } from './middleware/content-negotiation.js';
import { errorHandler } from './middleware/error-handler.js';
import { requestLogger } from './middleware/request-logger.js';
import { unsupportedMethods } from './middleware/unsupported-methods.js';
import { fhirBaseUrl, preferences, sendJson } from './fhir-response.js';
import { readResourceBody, type BodyLimits } from './request-body.js';

export interface AppDependencies {
  logger: Logger;
  resources: ResourceService;
  search: SearchService;
  bundles: BundleService;
  capabilityStatement: (baseUrl: string) => Resource;
  limits: BodyLimits;
  publicBaseUrl: string | undefined;
  /** `$verify` and `$ledger` (absent: those routes do not exist). */
  ledger?: LedgerVerifier;
  /** `$deidentify` and `$reidentify`. */
  deid: DeidService;
}

type MethodTable = Partial<Record<'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', Koa.Middleware>>;

export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  const handlers = resourceHandlers(deps.resources, deps.search, deps.limits);
  const router = new Router({ prefix: '/fhir' });

  /**
   * One router layer per URL shape of the FHIR grammar (http.html): `[base]/x`, `[base]/x/y`,
   * `[base]/x/y/z`, …, each dispatching on its reserved segment (`metadata`, `_history`,
   * `_search`, `$operation`), else on what the segment means there (a type, an id, a
   * compartment), then on the method. @koa/router tests every layer's pattern on every request,
   * so a layer per path (18 of them) cost a read about 1 µs more than these six
   * (bench/read-layers.bench.ts). A method no table of a shape has is answered 405 by
   * allowedMethods below; one that the matched segment lacks, 405 here.
   */
  const shape = (path: string, segmentParam: string, literals: Record<string, MethodTable | undefined>, otherwise?: MethodTable) => {
    const tables = new Map<string, Record<string, Koa.Middleware>>();
    const methods = new Set<string>();
    const complete = (table: MethodTable): Record<string, Koa.Middleware> => {
      const full: Record<string, Koa.Middleware> = { ...table };
      if (table.GET) full.HEAD = table.GET;
      for (const method of Object.keys(full)) methods.add(method);
      return full;
    };
    for (const [segment, table] of Object.entries(literals)) if (table) tables.set(segment, complete(table));
    const fallback = otherwise ? complete(otherwise) : undefined;
    router.register(path, [...methods], (ctx, next) => {
      let table = tables.get(ctx.params[segmentParam]!);
      // A reserved segment is not a parameter: `Patient/$validate` has no id.
      if (table) delete ctx.params[segmentParam];
      else table = fallback;
      const handler = table?.[ctx.method];
      if (handler) return handler(ctx, next);
      if (!table) throw FhirError.notFound(`No FHIR interaction for ${ctx.method} on this URL`);
      throw new FhirError(405, { severity: 'error', code: 'not-supported', diagnostics: 'Method not allowed on this URL' });
    });
  };

  // http.html#transaction: POST [base]; '/' under the '/fhir' prefix matches `/fhir` and `/fhir/`.
  const processBundle = async (ctx: Koa.Context) => {
    const bundle = await readResourceBody(ctx, deps.limits);
    sendJson(ctx, 200, await deps.bundles.process(bundle, {
      baseUrl: fhirBaseUrl(ctx), returnPreference: preferences(ctx).return,
    }));
  };
  const ledger = deps.ledger ? ledgerHandlers(deps.ledger, deps.resources) : undefined;
  router.register('/', ['GET', 'HEAD', 'POST'], (ctx) => (ctx.method === 'POST' ? processBundle(ctx) : handlers.systemSearch(ctx)));
  // [base]/metadata | _history | _search | $ledger | $ledger-consistency | $deidentify | [type]
  shape('/:type', 'type', {
    metadata: { GET: (ctx) => sendJson(ctx, 200, deps.capabilityStatement(fhirBaseUrl(ctx))) },
    _history: { GET: handlers.systemHistory },
    _search: { POST: handlers.systemSearchPost },
    $ledger: ledger && { GET: ledger.status },
    '$ledger-consistency': ledger && { GET: ledger.consistency },
    $deidentify: { POST: async (ctx) => sendJson(ctx, 200, await deps.deid.preview(await readResourceBody(ctx, deps.limits))) },
  }, {
    GET: handlers.search,
    POST: handlers.create,
    PUT: requireQuery(handlers.conditionalUpdate),
    PATCH: requireQuery(handlers.conditionalPatch),
    DELETE: requireQuery(handlers.conditionalDelete),
  });
  // [type]/_history | _search | $validate | [id]
  shape('/:type/:id', 'id', {
    _history: { GET: handlers.typeHistory },
    _search: { POST: handlers.searchPost },
    $validate: { POST: handlers.validate },
  }, { GET: handlers.read, PUT: handlers.update, PATCH: handlers.patch, DELETE: handlers.delete });
  // [type]/[id]/_history | $validate | $verify | $reidentify | [compartment type]
  shape('/:type/:id/:compartmentType', 'compartmentType', {
    _history: { GET: handlers.instanceHistory },
    $validate: { POST: handlers.validate },
    $verify: ledger && { GET: ledger.verifyResource },
    $reidentify: {
      GET: async (ctx) => sendJson(ctx, 200, await deps.deid.reidentify({
        resourceType: ctx.params.type!, id: ctx.params.id!, authorization: ctx.get('authorization') || undefined, clientAddress: ctx.ip || undefined,
      })),
    },
  }, { GET: handlers.compartmentSearch });
  // [type]/[id]/_history/[vid]
  shape('/:type/:id/_history/:vid', 'vid', {}, { GET: handlers.vread });
  // [type]/[id]/_history/[vid]/$verify
  if (ledger) shape('/:type/:id/_history/:vid/$verify', 'vid', {}, { GET: ledger.verifyVersion });

  if (deps.publicBaseUrl !== undefined) app.context.publicBaseUrl = deps.publicBaseUrl;
  app.use(requestLogger(deps.logger, (segment) => deps.resources.isKnownType(segment)));
  app.use(errorHandler);
  app.use(unsupportedMethods);
  app.use(contentNegotiation);
  app.use(router.routes());
  app.use(router.allowedMethods({
    throw: true,
    methodNotAllowed: () => new FhirError(405, { severity: 'error', code: 'not-supported', diagnostics: 'Method not allowed on this URL' }),
    notImplemented: () => new FhirError(501, { severity: 'error', code: 'not-supported', diagnostics: 'Method not implemented' }),
  }));
  return app;
}

/** Conditional update/patch/delete on a type URL need search criteria (http.html#cond-update). */
function requireQuery(handler: (ctx: Koa.Context) => Promise<void>): Koa.Middleware {
  return async (ctx) => {
    if (ctx.querystring === '') {
      throw new FhirError(405, {
        severity: 'error', code: 'not-supported', diagnostics: `${ctx.method} on a type needs search criteria (conditional ${ctx.method.toLowerCase()})`,
      });
    }
    await handler(ctx);
  };
}
