/**
 * The ledger's operations (tamper-evident history):
 *   GET [base]/$ledger                               the log's status
 *   GET [base]/$ledger-consistency?first=N[&second=M] RFC 9162 consistency proof between sizes
 *   GET [base]/[type]/[id]/$verify                   every version of a resource
 *   GET [base]/[type]/[id]/_history/[vid]/$verify    one version
 * Each answers a Parameters resource (ledger/ledger-parameters.ts). A version that fails
 * verification is still a 200: the answer is the verdict, not an error.
 */
import { FhirError } from '../fhir/fhir-error.js';
import type { Interaction } from '../fhir/interaction.js';
import {
  consistencyParameters, ledgerStatusParameters, resourceVerificationParameters, versionVerificationParameters,
} from '../ledger/ledger-parameters.js';
import type { LedgerVerifier } from '../ledger/ledger-verifier.js';
import { resourceResult } from './interaction-result.js';
import type { OperationDefinition } from './operation-registry.js';
import type { ResourceService } from './resource-service.js';

export function ledgerOperations(verifier: LedgerVerifier, resources: ResourceService): OperationDefinition[] {
  const storedTarget = async (interaction: Interaction) => ({
    type: interaction.resourceType!,
    id: await resources.storedIdFor(interaction.resourceType!, interaction.id!),
  });
  return [
    {
      name: 'ledger', levels: ['system'], methods: ['GET'],
      async run() { return resourceResult(ledgerStatusParameters(await verifier.status())); },
    },
    {
      // `second` defaults to the latest anchored tree size.
      name: 'ledger-consistency', levels: ['system'], methods: ['GET'],
      async run(interaction) {
        const size = (name: string): number | undefined => {
          const raw = interaction.query.filter(([n]) => n === name).map(([, v]) => v);
          if (raw.length === 0) return undefined;
          if (raw.length > 1 || !/^\d{1,15}$/.test(raw[0]!)) throw FhirError.badRequest(`${name} must be a tree size (a whole number)`, 'value');
          return Number(raw[0]);
        };
        const first = size('first');
        if (first === undefined) throw FhirError.badRequest('first (the earlier tree size) is required', 'required');
        const evidence = await verifier.consistency(first, size('second'));
        if (!evidence) {
          throw FhirError.badRequest('The sizes must satisfy 0 < first <= second <= the log\'s size (and second defaults to the latest anchored size)', 'value');
        }
        return resourceResult(consistencyParameters(evidence));
      },
    },
    {
      name: 'verify', levels: ['instance', 'version'], methods: ['GET'],
      async run(interaction) {
        const { type, id } = await storedTarget(interaction);
        if (interaction.operation!.level === 'instance') {
          const versions = await verifier.verifyResource(type, id);
          if (!versions) throw FhirError.notFound(`No ${type} with this id is known`);
          return resourceResult(resourceVerificationParameters(versions));
        }
        const vid = interaction.versionId!;
        const version = /^\d{1,15}$/.test(vid) ? await verifier.verifyVersion(type, id, Number(vid)) : undefined;
        if (!version) throw FhirError.notFound(`This ${type} version does not exist`);
        return resourceResult(versionVerificationParameters(version));
      },
    },
  ];
}
