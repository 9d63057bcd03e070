/**
 * Response helpers shared by the handlers: ETag / Last-Modified / Location headers
 * (FHIR R4 http.html#versioning) and the Prefer header (http.html#prefer).
 */
import type { Context } from 'koa';
import { operationOutcome, successOutcome, type OperationOutcome } from '../fhir/fhir-error.js';
import { versionLocation, weakETag } from '../fhir/bundle-builders.js';
import type { BaseUrlPolicy } from './base-url-policy.js';
import type { StoredVersion } from '../store/store.js';
import type { WriteResult } from '../services/resource-service.js';
import { FHIR_JSON } from './middleware/content-negotiation.js';

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

/** Parses `Prefer: return=…, handling=…` (RFC 7240 as used by FHIR R4 http.html#prefer). */
export function preferences(ctx: Context): { return: ReturnPreference; strict: boolean } {
  const header = ctx.get('Prefer');
  let ret: ReturnPreference = 'representation';
  let strict = false;
  for (const part of header.split(/[,;]/)) {
    const [key, value] = part.trim().split('=').map((s) => s?.trim());
    if (key === 'return' && (value === 'minimal' || value === 'representation' || value === 'OperationOutcome')) ret = value;
    if (key === 'handling' && value === 'strict') strict = true;
  }
  return { return: ret, strict };
}

/**
 * The FHIR base URL as clients address it: PUBLIC_BASE_URL, else the request's Host when it is
 * an allowed host, else the server's own base (http/base-url-policy.ts).
 */
export function fhirBaseUrl(ctx: Context): string {
  // Both are set once on the app's context prototype: PUBLIC_BASE_URL by http/app.ts, the policy
  // by server.ts once the port is known.
  const { publicBaseUrl, baseUrlPolicy } = ctx as { publicBaseUrl?: string; baseUrlPolicy?: BaseUrlPolicy };
  if (publicBaseUrl !== undefined) return publicBaseUrl;
  // Koa 3's ctx.origin is the Origin request header, so the URL is built from protocol and Host.
  // Without a policy (an app not started by server.ts, e.g. a benchmark) the Host is taken as is.
  return baseUrlPolicy ? baseUrlPolicy.baseUrlFor(ctx.protocol, ctx.host) : `${ctx.protocol}://${ctx.host}/fhir`;
}

/**
 * The ETag and Last-Modified values of a version object, made once: a hot read serves the same
 * cached object again and again, and parsing and formatting its date per request showed in the
 * read profile.
 */
const versionHeaders = new WeakMap<StoredVersion, { etag: string; lastModified: string }>();

export function setVersionHeaders(ctx: Context, version: StoredVersion): void {
  let headers = versionHeaders.get(version);
  if (!headers) {
    headers = { etag: weakETag(version.versionId), lastModified: new Date(version.lastUpdated).toUTCString() };
    versionHeaders.set(version, headers);
  }
  ctx.set('ETag', headers.etag);
  ctx.set('Last-Modified', headers.lastModified);
}

export function sendJson(ctx: Context, status: number, body: string | object): void {
  ctx.status = status;
  ctx.type = FHIR_JSON;
  ctx.body = typeof body === 'string' ? body : JSON.stringify(body);
}

/** A read: the stored JSON bytes as they are, no re-serialization. */
export function sendVersion(ctx: Context, version: StoredVersion): void {
  setVersionHeaders(ctx, version);
  sendJson(ctx, 200, version.json!);
}

/** A write's response, shaped by `Prefer: return=`. */
export function sendWriteResult(ctx: Context, result: WriteResult, message: string): void {
  const { version } = result;
  if (result.status === 204 || !version) {
    ctx.status = 204;
    ctx.body = null;
    return;
  }
  setVersionHeaders(ctx, version);
  if (result.status === 201) ctx.set('Location', versionLocation(fhirBaseUrl(ctx), version));
  const preference = preferences(ctx).return;
  if (preference === 'minimal') {
    // Koa turns a null body into 204 unless the status is set afterwards.
    ctx.body = null;
    ctx.status = result.status;
  } else if (preference === 'OperationOutcome') {
    sendJson(ctx, result.status, successOutcome(message));
  } else {
    sendJson(ctx, result.status, version.json!);
  }
}

export function sendOutcome(ctx: Context, status: number, outcome: OperationOutcome | ReturnType<typeof operationOutcome>): void {
  sendJson(ctx, status, outcome);
}
