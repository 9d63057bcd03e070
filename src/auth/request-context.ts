/**
 * The request context (DESIGN.md "The spine"): who asks, with which grants, confined to which
 * compartment, and how the server is addressed. Made once per HTTP request by the http layer
 * and carried by every interaction it runs, the entries of a batch or transaction included, so
 * that the access policy sees the same context however an interaction arrived.
 */
import { randomUUID } from 'node:crypto';

export interface RequestPrincipal {
  /** `sub` of the token, or a fixed name for unauthenticated requests. */
  subject: string;
  /** Granted scopes (SMART App Launch 2.x and the server's own, e.g. fhir-ledger/reidentify). */
  scopes: ReadonlySet<string>;
}

export interface CompartmentRestriction {
  /** R4 compartments: this server confines to the Patient compartment (compartmentdefinition-patient). */
  ownerType: 'Patient';
  /** Stored ids of the patients whose compartment the request is confined to. */
  ownerIds: readonly string[];
}

export interface RequestContext {
  /** Unique per HTTP request; bundle entries share their request's id. */
  readonly requestId: string;
  /** The FHIR base URL as clients address it (links, Location). */
  baseUrl: string;
  /** undefined: nobody authenticated (authorization off, or a public endpoint). */
  principal: RequestPrincipal | undefined;
  /** Set when every read, search and write is confined to these patients' compartments. */
  compartment: CompartmentRestriction | undefined;
  /** The `Authorization` header as sent, for operations that verify their own grants ($reidentify). */
  authorization: string | undefined;
  /** The client's network address, for audit records. */
  clientAddress: string | undefined;
  /** `Prefer: handling=strict` (http.html#prefer): unknown search parameters are errors. */
  strictHandling: boolean;
  /** `Prefer: return=` (http.html#prefer): what a write answers, over HTTP and in bundle entries. */
  returnPreference: ReturnPreference;
}

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

/** Request ids: unique in this process and cheap (a UUID per read showed in the read profile). */
const processPrefix = randomUUID().slice(0, 8);
let requestCounter = 0;

export function newRequestId(): string {
  return `${processPrefix}-${(++requestCounter).toString(36)}`;
}
