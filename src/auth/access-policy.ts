/**
 * The access-policy port (DESIGN.md "The spine"). The executor asks it three times:
 *
 *  - before: may this context run this interaction at all (`authorize`)? A refusal throws
 *    FhirError 401 (no or bad credentials) or 403 (valid but insufficient);
 *  - inside: which restrictions are ANDed into every search the interaction makes
 *    (`searchRestriction`): the match itself, `_include`, `_revinclude`, conditional matches, so
 *    that what is not allowed is never counted, totalled or paged over;
 *  - after: may this resource be returned or written (`mayAccess`)? It filters reads, history
 *    and included resources, and checks what a write would store.
 *
 * With no authorization configured, `ALLOW_ALL` allows everything. The SMART policy (auth/)
 * implements the same port.
 */
import type { Interaction } from '../fhir/interaction.js';
import type { Resource } from '../fhir/resource.js';
import type { CompartmentRestriction, RequestContext } from './request-context.js';

/** What a policy ANDs into a search of one resource type. */
export interface SearchRestriction {
  /** Search parameters (`name`, `value`), parsed like the client's own and ANDed with them. */
  criteria: [string, string][];
  /** The resource must be in one of these patients' compartments. */
  compartment?: CompartmentRestriction;
}

export type AccessKind = 'read' | 'write' | 'delete';

export interface AccessPolicy {
  /** Before anything runs. Throws FhirError 401/403 to refuse. */
  authorize(interaction: Interaction, context: RequestContext): void;
  /**
   * Inside every search of `resourceType` (null: a system-level search) made for this context.
   * undefined: no restriction. Throws FhirError 403 when nothing of the type may be seen.
   */
  searchRestriction(resourceType: string | null, context: RequestContext): SearchRestriction | undefined;
  /** After: may this stored (or to-be-stored) resource be returned, written or deleted? */
  mayAccess(resource: Resource, access: AccessKind, context: RequestContext): boolean;
}

/** No authorization configured: everything is allowed (FHIR_AUTH=off). */
export const ALLOW_ALL: AccessPolicy = {
  authorize() {},
  searchRestriction() { return undefined; },
  mayAccess() { return true; },
};
