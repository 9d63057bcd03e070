/**
 * The de-identification operations (deid/ does the work):
 *  - `$deidentify`: what the table in force would store for posted resources, storing nothing;
 *  - `$reidentify`: a stored resource with what the vault holds put back, only for a bearer
 *    token with the re-identification scope, and every call, granted or not, recorded as an
 *    AuditEvent (FHIR R4 auditevent.html) so disclosures can be accounted for (45 CFR 164.528).
 */
import { REIDENTIFY_SCOPE, type BearerTokenVerifier, type Principal } from '../auth/bearer-tokens.js';
import { FhirError } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import type { Deidentification } from '../deid/deidentification.js';
import type { ResourceService } from './resource-service.js';
import { resourceResult } from './interaction-result.js';
import type { OperationDefinition } from './operation-registry.js';

export interface ReidentifyRequest {
  resourceType: string;
  id: string;
  authorization: string | undefined;
  /** The client's network address, for the audit record. */
  clientAddress: string | undefined;
}

/** AuditEvent.outcome (R4 audit-event-outcome): 0 success, 4 minor failure (refused), 8 serious failure. */
type AuditOutcome = '0' | '4' | '8';

export class DeidService {
  constructor(
    private readonly resources: ResourceService,
    private readonly deid: Deidentification,
    private readonly tokens: BearerTokenVerifier,
  ) {}

  async preview(body: Resource): Promise<Resource> {
    const deid = this.deid;
    if (!deid.table) return body;
    const resources = body.resourceType === 'Bundle' && Array.isArray(body.entry)
      ? (body.entry as { resource?: Resource }[]).flatMap((e) => (e.resource ? [e.resource] : []))
      : [body];
    // The table walks what the definitions describe: input must be valid R4 first.
    const issues = resources.flatMap((r) => this.resources.validateOnly(r.resourceType, r))
      .filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (issues.length > 0) throw FhirError.unprocessable(issues);
    return deid.preview(body);
  }

  async reidentify(request: ReidentifyRequest): Promise<Resource> {
    this.resources.assertKnownType(request.resourceType);
    this.resources.assertValidId(request.id);
    let principal: Principal | undefined;
    try {
      principal = await this.tokens.verify(request.authorization);
      if (!principal.scopes.has(REIDENTIFY_SCOPE)) {
        throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: `Re-identification needs the ${REIDENTIFY_SCOPE} scope` });
      }
      const deid = this.deid;
      if (!deid.table) throw FhirError.notSupported('Nothing to re-identify: this server stores data as sent (DEID_MAPPING=none)', 400);
      const stored = await this.resources.read(request.resourceType, request.id);
      const restored = await deid.reidentify(JSON.parse(stored.json!) as Resource);
      await this.audit(request, principal, '0', 'Re-identified', stored.id);
      return restored;
    } catch (error) {
      const status = error instanceof FhirError ? error.status : 500;
      // The URL's id is the client's: only the stored id it names may be recorded (see storedIdIfKnown).
      const storedId = await this.deid.storedIdIfKnown(request.resourceType, request.id);
      await this.audit(request, principal, status >= 500 ? '8' : '4', `Refused (${status})`, storedId);
      throw error;
    }
  }

  /**
   * The AuditEvent of one call. It is a server record (ResourceService.createServerRecord), which
   * skips the mapping table, so nothing a client wrote goes in as it was sent: the resource is
   * named by its stored id only, or not at all when the URL's id names nothing stored.
   */
  private async audit(request: ReidentifyRequest, principal: Principal | undefined, outcome: AuditOutcome,
    description: string, storedId: string | undefined): Promise<void> {
    await this.resources.createServerRecord({
      resourceType: 'AuditEvent',
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
      subtype: [{ system: 'urn:fhir-ledger:operation', code: 'reidentify', display: '$reidentify' }],
      action: 'E',
      recorded: new Date().toISOString(),
      outcome,
      outcomeDesc: description,
      purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HOPERAT', display: 'healthcare operations' }] }],
      agent: [this.requester(request, principal)],
      source: {
        observer: { display: 'fhir-ledger' },
        type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
      },
      entity: [storedId === undefined
        ? { description: '$reidentify of an id that names no stored resource' }
        : { what: { reference: `${request.resourceType}/${storedId}` }, description: '$reidentify' }],
    });
  }

  /**
   * Who asked. The re-identification scope is a dedicated permission the covered entity grants to
   * workforce members or honest-broker services, never to patients: for its holders the token's
   * subject and network address are kept in clear, as accounting for disclosures needs (45 CFR
   * 164.528; audit controls, 164.312(b)). Anyone else may be a patient (a patient-facing app's
   * token, a caller from a home address): their subject and address are kept only as keyed hashes
   * (Deidentification.requesterPseudonym), enough to tell repeated attempts apart.
   */
  private requester(request: ReidentifyRequest, principal: Principal | undefined): Record<string, unknown> {
    if (principal?.scopes.has(REIDENTIFY_SCOPE)) {
      return {
        requestor: true, altId: principal.subject,
        ...(request.clientAddress ? { network: { address: request.clientAddress, type: '2' } } : {}),
      };
    }
    const deid = this.deid;
    const subject = principal ? deid.requesterPseudonym('token-subject', principal.subject) : undefined;
    const address = request.clientAddress ? deid.requesterPseudonym('network-address', request.clientAddress) : undefined;
    return {
      requestor: true,
      // No valid token: nobody known.
      altId: principal ? subject ?? 'token subject not kept' : 'anonymous',
      // A hash is no address of any network type (R4 network-type), so it carries none.
      ...(address ? { network: { address } } : {}),
    };
  }
}

/**
 * `$deidentify` (POST [base]/$deidentify: what storing would make of a resource or Bundle) and
 * `$reidentify` (GET [type]/[id]/$reidentify, audited).
 */
export function deidOperations(deid: DeidService): OperationDefinition[] {
  return [
    {
      name: 'deidentify', levels: ['system'], methods: ['POST'],
      async run(interaction) {
        const body = interaction.body as Resource | undefined;
        if (body === undefined) throw FhirError.badRequest('$deidentify takes a resource or a Bundle in the body', 'required');
        return resourceResult(await deid.preview(body));
      },
    },
    {
      name: 'reidentify', levels: ['instance'], methods: ['GET'], writes: true,
      async run(interaction, context) {
        return resourceResult(await deid.reidentify({
          resourceType: interaction.resourceType!, id: interaction.id!, authorization: context.authorization, clientAddress: context.clientAddress,
        }));
      },
    },
  ];
}
