/**
 * `$validate` (R4 resource-operation-validate) at the type and instance levels: the resource in
 * the body, or in a Parameters `resource`; `mode` (create | update | delete,
 * resource-validation-mode) and `profile` from the Parameters or the URL. Always answers an
 * OperationOutcome (200); stores nothing.
 */
import { FhirError, operationOutcome } from '../fhir/fhir-error.js';
import type { Resource } from '../fhir/resource.js';
import { resourceResult } from './interaction-result.js';
import type { OperationDefinition } from './operation-registry.js';
import type { ResourceService } from './resource-service.js';

interface ValidateParameter { name?: string; resource?: unknown; valueCode?: string; valueUri?: string; valueCanonical?: string }

export function validateOperation(resources: ResourceService): OperationDefinition {
  return {
    name: 'validate',
    levels: ['type', 'instance'],
    methods: ['POST'],
    async run(interaction) {
      const type = interaction.resourceType!;
      const body = interaction.body as Resource | undefined;
      const fromParameters = body?.resourceType === 'Parameters' && type !== 'Parameters';
      const given = fromParameters ? body!.parameter ?? [] : [];
      if (!Array.isArray(given) || given.some((p) => typeof p !== 'object' || p === null || Array.isArray(p))) {
        throw FhirError.badRequest('Parameters.parameter must be an array of parameters', 'structure', ['Parameters.parameter']);
      }
      const parameters = given as ValidateParameter[];
      const parameter = (name: string) => parameters.find((p) => p.name === name);
      const fromUrl = (name: string) => interaction.query.find(([n]) => n === name)?.[1];
      const mode = parameter('mode')?.valueCode ?? fromUrl('mode');
      const profile = parameter('profile')?.valueUri ?? parameter('profile')?.valueCanonical ?? fromUrl('profile');
      const resource = fromParameters ? parameter('resource')?.resource as Resource | undefined : body;
      const issues = resources.validateForMode(type, resource, { mode, profile, urlId: interaction.id });
      return resourceResult(operationOutcome(issues.length > 0 ? issues
        : [{ severity: 'information', code: 'informational', diagnostics: 'Validation successful: no issues found' }]));
    },
  };
}
