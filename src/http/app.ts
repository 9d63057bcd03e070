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

export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  const handlers = resourceHandlers(deps.resources, deps.search, deps.limits);
  const router = new Router({ prefix: '/fhir' });

  /**
   * One router layer per path, dispatching on the method: @koa/router tests every layer's
   * pattern on every request, so one layer per (path, method) pair would cost a read several
   * pattern tests and closures (see bench/read-layers.bench.ts). Methods not in the table are
   * answered 405 by allowedMethods below.
   */
  const route = (path: string, byMethod: Partial<Record<'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', Koa.Middleware>>) => {
    const table: Record<string, Koa.Middleware> = { ...byMethod };
    if (byMethod.GET) table.HEAD = byMethod.GET;
    router.register(path, Object.keys(table), (ctx, next) => table[ctx.method]!(ctx, next));
  };

  // http.html#transaction: POST [base]; '/' under the '/fhir' prefix matches `/fhir` and `/fhir/`.
  const processBundle = async (ctx: Koa.Context) => {
    const bundle = await readResourceBody(ctx, deps.limits);
    sendJson(ctx, 200, await deps.bundles.process(bundle, {
      baseUrl: fhirBaseUrl(ctx), returnPreference: preferences(ctx).return,
    }));
  };
  route('/metadata', { GET: (ctx) => sendJson(ctx, 200, deps.capabilityStatement(fhirBaseUrl(ctx))) });
  route('/', { GET: handlers.systemSearch, POST: processBundle });
  route('/_history', { GET: handlers.systemHistory });
  route('/_search', { POST: handlers.systemSearchPost });
  // The ledger's literal operations, before the `:type` / `:id` / compartment patterns they would match.
  if (deps.ledger) {
    const ledger = ledgerHandlers(deps.ledger, deps.resources);
    route('/$ledger', { GET: ledger.status });
    route('/:type/:id/$verify', { GET: ledger.verifyResource });
    route('/:type/:id/_history/:vid/$verify', { GET: ledger.verifyVersion });
  }
  // De-identification operations (deid-service.ts), before the patterns they would match.
  route('/$deidentify', {
    POST: async (ctx) => sendJson(ctx, 200, await deps.deid.preview(await readResourceBody(ctx, deps.limits))),
  });
  route('/:type/:id/$reidentify', {
    GET: async (ctx) => sendJson(ctx, 200, await deps.deid.reidentify({
      resourceType: ctx.params.type!, id: ctx.params.id!, authorization: ctx.get('authorization') || undefined, clientAddress: ctx.ip || undefined,
    })),
  });
  route('/:type', {
    GET: handlers.search,
    POST: handlers.create,
    PUT: requireQuery(handlers.conditionalUpdate),
    PATCH: requireQuery(handlers.conditionalPatch),
    DELETE: requireQuery(handlers.conditionalDelete),
  });
  route('/:type/_history', { GET: handlers.typeHistory });
  route('/:type/_search', { POST: handlers.searchPost });
  route('/:type/$validate', { POST: handlers.validate });
  route('/:type/:id', { GET: handlers.read, PUT: handlers.update, PATCH: handlers.patch, DELETE: handlers.delete });
  route('/:type/:id/_history', { GET: handlers.instanceHistory });
  route('/:type/:id/_history/:vid', { GET: handlers.vread });
  route('/:type/:id/$validate', { POST: handlers.validate });
  route('/:type/:id/:compartmentType', { GET: handlers.compartmentSearch });

  if (deps.publicBaseUrl !== undefined) app.context.publicBaseUrl = deps.publicBaseUrl;
  app.use(requestLogger(deps.logger, (segment) => deps.resources.isKnownType(segment)));
  app.use(errorHandler);
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
