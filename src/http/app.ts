/**
 * The Koa application: middleware with one job each, then one endpoint under /fhir that turns
 * every request into an interaction for the executor (http/interaction-adapter.ts). The URL
 * grammar of FHIR R4 http.html lives in fhir/interaction.ts, shared with bundle entries.
 */
import Koa from 'koa';
import type { Logger } from 'pino';
import type { InteractionExecutor } from '../services/interaction-executor.js';
import { interactionEndpoint } from './interaction-adapter.js';
import { contentNegotiation } from './middleware/content-negotiation.js';
import { errorHandler } from './middleware/error-handler.js';
import { requestLogger } from './middleware/request-logger.js';
import { unsupportedMethods } from './middleware/unsupported-methods.js';
import type { BodyLimits } from './request-body.js';

export interface AppDependencies {
  logger: Logger;
  executor: InteractionExecutor;
  /** For the request log: which path segments are resource types (the rest are masked). */
  isKnownType: (segment: string) => boolean;
  limits: BodyLimits;
  publicBaseUrl: string | undefined;
}

export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  const endpoint = interactionEndpoint(deps.executor, deps.limits);
  // One endpoint for the whole FHIR base: `/fhir`, `/fhir/` and everything below. Which
  // interaction a URL is, or that it is none (404) or takes another method (405), is
  // parseInteraction's answer, for HTTP and bundle entries alike; a router would only test the
  // prefix again (and compose its middleware per request, which showed on the read path).
  const fhirBase: Koa.Middleware = (ctx, next) => (ctx.path === '/fhir' || ctx.path.startsWith('/fhir/') ? endpoint(ctx) : next());

  if (deps.publicBaseUrl !== undefined) app.context.publicBaseUrl = deps.publicBaseUrl;
  app.use(requestLogger(deps.logger, deps.isKnownType));
  app.use(errorHandler);
  app.use(unsupportedMethods);
  app.use(contentNegotiation);
  app.use(fhirBase);
  return app;
}
