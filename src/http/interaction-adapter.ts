/**
 * The HTTP adapter of the executor: a Koa request becomes an interaction (fhir/interaction.ts)
 * and a request context (auth/request-context.ts); the executor's result becomes the response
 * (FHIR R4 http.html: ETag, Last-Modified, Location, Prefer). No business rules here.
 */
import type { Context } from 'koa';
import { newRequestId, type RequestContext, type ReturnPreference } from '../auth/request-context.js';
import { successOutcome } from '../fhir/fhir-error.js';
import { versionLocation } from '../fhir/bundle-builders.js';
import { bodyKindOf, parseInteraction, type Interaction } from '../fhir/interaction.js';
import type { InteractionExecutor } from '../services/interaction-executor.js';
import type { InteractionResult } from '../services/interaction-result.js';
import { fhirBaseUrl, preferences, sendJson, setVersionHeaders } from './fhir-response.js';
import { readFormBody, readJsonPatchBody, readOptionalResourceBody, readResourceBody, type BodyLimits } from './request-body.js';

const FHIR_PREFIX = '/fhir';

export function interactionEndpoint(executor: InteractionExecutor, limits: BodyLimits) {
  return async function runInteraction(ctx: Context): Promise<void> {
    const relative = ctx.path.slice(FHIR_PREFIX.length);
    const url = ctx.querystring === '' ? relative : `${relative}?${ctx.querystring}`;
    const interaction = parseInteraction(ctx.method, url, conditionsOf(ctx));
    interaction.body = await readBody(ctx, interaction, limits);
    const context = requestContextOf(ctx);
    sendResult(ctx, await executor.execute(interaction, context), context);
  };
}

function conditionsOf(ctx: Context): Interaction['conditions'] {
  const conditions: Interaction['conditions'] = {};
  const ifMatch = ctx.get('If-Match');
  const ifNoneExist = ctx.get('If-None-Exist');
  if (ifMatch !== '') conditions.ifMatch = ifMatch;
  if (ifNoneExist !== '') conditions.ifNoneExist = ifNoneExist;
  return conditions;
}

async function readBody(ctx: Context, interaction: Interaction, limits: BodyLimits): Promise<unknown> {
  switch (bodyKindOf(interaction)) {
    case 'resource': return readResourceBody(ctx, limits);
    case 'json-patch': return readJsonPatchBody(ctx, limits);
    case 'form': return readFormBody(ctx, limits);
    case 'optional-resource': return readOptionalResourceBody(ctx, limits);
    default: return undefined;
  }
}

/**
 * The request context of an HTTP request. What a read never needs (the base URL, `Prefer`, the
 * client's address) is worked out on first use: a read by id is the hot path.
 */
export function requestContextOf(ctx: Context): RequestContext {
  return new HttpRequestContext(ctx);
}

class HttpRequestContext implements RequestContext {
  readonly requestId = newRequestId();
  readonly principal = undefined;
  readonly compartment = undefined;
  private cachedBaseUrl: string | undefined;
  private cachedPrefer: ReturnType<typeof preferences> | undefined;

  constructor(private readonly ctx: Context) {}

  get baseUrl(): string {
    return (this.cachedBaseUrl ??= fhirBaseUrl(this.ctx));
  }

  get strictHandling(): boolean {
    return (this.cachedPrefer ??= preferences(this.ctx)).strict;
  }

  get returnPreference(): ReturnPreference {
    return (this.cachedPrefer ??= preferences(this.ctx)).return;
  }

  get authorization(): string | undefined {
    return this.ctx.get('Authorization') || undefined;
  }

  get clientAddress(): string | undefined {
    return this.ctx.ip || undefined;
  }
}

function sendResult(ctx: Context, result: InteractionResult, context: RequestContext): void {
  switch (result.kind) {
    case 'resource':
      sendJson(ctx, result.status, result.resource);
      return;
    case 'deleted':
      ctx.status = 204;
      ctx.body = null;
      return;
    case 'version': {
      const { version } = result;
      setVersionHeaders(ctx, version);
      if (!result.written) {
        sendJson(ctx, 200, version.json!);
        return;
      }
      if (result.status === 201) ctx.set('Location', versionLocation(context.baseUrl, version));
      if (context.returnPreference === 'minimal') {
        // Koa turns a null body into 204 unless the status is set afterwards.
        ctx.body = null;
        ctx.status = result.status;
      } else if (context.returnPreference === 'OperationOutcome') {
        sendJson(ctx, result.status, successOutcome(result.written.message));
      } else {
        sendJson(ctx, result.status, version.json!);
      }
    }
  }
}
