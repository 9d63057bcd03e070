/**
 * The Koa application: middleware (one job each) and the FHIR routes under /fhir.
 * FHIR R4 http.html is the map: one route per interaction, literal routes (`_history`,
 * `_search`, `$validate`) registered before the `:id` routes they would otherwise match.
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { FhirError } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import type { BundleService } from '../services/bundle-service.js';
import type { ResourceService } from '../services/resource-service.js';
import { resourceHandlers } from './handlers/resource-handlers.js';
import { contentNegotiation } from './middleware/content-negotiation.js';
import { errorHandler } from './middleware/error-handler.js';
import { requestLogger } from './middleware/request-logger.js';
import { fhirBaseUrl, preferences, sendJson } from './fhir-response.js';
import { readResourceBody, type BodyLimits } from './request-body.js';

export interface AppDependencies {
  logger: Logger;
  resources: ResourceService;
  bundles: BundleService;
  capabilityStatement: (baseUrl: string) => Resource;
  limits: BodyLimits;
  publicBaseUrl: string | undefined;
}

export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  const handlers = resourceHandlers(deps.resources, deps.limits);
  const router = new Router({ prefix: '/fhir' });

  router.get('/metadata', (ctx) => sendJson(ctx, 200, deps.capabilityStatement(fhirBaseUrl(ctx))));

  // http.html#transaction: POST [base] (with or without the trailing slash).
  const processBundle = async (ctx: Koa.Context) => {
    const bundle = await readResourceBody(ctx, deps.limits);
    sendJson(ctx, 200, await deps.bundles.process(bundle, {
      baseUrl: fhirBaseUrl(ctx), returnPreference: preferences(ctx).return,
    }));
  };
  // '/' under the '/fhir' prefix matches both `/fhir` and `/fhir/`.
  router.post('/', processBundle);
  router.get('/', handlers.systemSearch);
  router.get('/_history', handlers.systemHistory);
  router.post('/_search', handlers.systemSearchPost);

  router.get('/:type', handlers.search);
  router.post('/:type', handlers.create);
  router.put('/:type', requireQuery, handlers.conditionalUpdate);
  router.patch('/:type', requireQuery, handlers.conditionalPatch);
  router.delete('/:type', requireQuery, handlers.conditionalDelete);
  router.get('/:type/_history', handlers.typeHistory);
  router.post('/:type/_search', handlers.searchPost);
  router.post('/:type/$validate', handlers.validate);

  router.get('/:type/:id', handlers.read);
  router.put('/:type/:id', handlers.update);
  router.patch('/:type/:id', handlers.patch);
  router.delete('/:type/:id', handlers.delete);
  router.get('/:type/:id/_history', handlers.instanceHistory);
  router.get('/:type/:id/_history/:vid', handlers.vread);
  router.post('/:type/:id/$validate', handlers.validate);

  if (deps.publicBaseUrl !== undefined) app.context.publicBaseUrl = deps.publicBaseUrl;
  app.use(requestLogger(deps.logger));
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
async function requireQuery(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  if (ctx.querystring === '') {
    throw new FhirError(405, {
      severity: 'error', code: 'not-supported', diagnostics: `${ctx.method} on a type needs search criteria (conditional ${ctx.method.toLowerCase()})`,
    });
  }
  await next();
}
