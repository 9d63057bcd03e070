/**
 * The ledger's operations (issue: tamper-evident history):
 *   GET [base]/$ledger                               the log's status
 *   GET [base]/$ledger-consistency?first=N[&second=M] RFC 9162 consistency proof between sizes
 *   GET [base]/[type]/[id]/$verify                   every version of a resource
 *   GET [base]/[type]/[id]/_history/[vid]/$verify    one version
 * Each answers a Parameters resource (ledger/ledger-parameters.ts). A version that fails
 * verification is still a 200: the answer is the verdict, not an error.
 */
import type { Context } from 'koa';
import { FhirError } from '../../fhir/fhir-error.js';
import {
  consistencyParameters, ledgerStatusParameters, resourceVerificationParameters, versionVerificationParameters,
} from '../../ledger/ledger-parameters.js';
import type { LedgerVerifier } from '../../ledger/ledger-verifier.js';
import type { ResourceService } from '../../services/resource-service.js';
import { sendJson } from '../fhir-response.js';

export function ledgerHandlers(verifier: LedgerVerifier, resources: ResourceService) {
  const target = async (ctx: Context): Promise<{ type: string; id: string }> => {
    const type = ctx.params.type as string;
    const id = ctx.params.id as string;
    resources.assertKnownType(type);
    resources.assertValidId(id);
    return { type, id: await resources.deidentification.storedIdForRead(type, id) };
  };

  return {
    async status(ctx: Context): Promise<void> {
      sendJson(ctx, 200, ledgerStatusParameters(await verifier.status()));
    },

    /** `second` defaults to the latest anchored tree size. */
    async consistency(ctx: Context): Promise<void> {
      const size = (name: string): number | undefined => {
        const raw = ctx.query[name];
        if (raw === undefined) return undefined;
        if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) throw FhirError.badRequest(`${name} must be a tree size (a whole number)`, 'value');
        return Number(raw);
      };
      const first = size('first');
      if (first === undefined) throw FhirError.badRequest('first (the earlier tree size) is required', 'required');
      const evidence = await verifier.consistency(first, size('second'));
      if (!evidence) {
        throw FhirError.badRequest('The sizes must satisfy 0 < first <= second <= the log\'s size (and second defaults to the latest anchored size)', 'value');
      }
      sendJson(ctx, 200, consistencyParameters(evidence));
    },

    async verifyResource(ctx: Context): Promise<void> {
      const { type, id } = await target(ctx);
      const versions = await verifier.verifyResource(type, id);
      if (!versions) throw FhirError.notFound(`No ${type} with this id is known`);
      sendJson(ctx, 200, resourceVerificationParameters(versions));
    },

    async verifyVersion(ctx: Context): Promise<void> {
      const { type, id } = await target(ctx);
      const vid = ctx.params.vid as string;
      const version = /^\d{1,15}$/.test(vid) ? await verifier.verifyVersion(type, id, Number(vid)) : undefined;
      if (!version) throw FhirError.notFound(`This ${type} version does not exist`);
      sendJson(ctx, 200, versionVerificationParameters(version));
    },
  };
}
