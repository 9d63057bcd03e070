/**
 * A Synthea-style patient transaction bundle: one Patient with an MRN, and many Encounters,
 * Observations and Conditions referencing it (and the Encounters) by urn:uuid fullUrls.
 */
import { randomUUID } from 'node:crypto';

export interface SyntheaBundleOptions {
  observations: number;
  encounters: number;
  conditions: number;
  mrn?: string;
}

export function syntheaStylePatientBundle(options: SyntheaBundleOptions): any {
  const patientUrl = `urn:uuid:${randomUUID()}`;
  const mrn = options.mrn ?? randomUUID();
  const entry: any[] = [{
    fullUrl: patientUrl,
    resource: {
      resourceType: 'Patient',
      identifier: [{ system: 'https://github.com/synthetichealth/synthea', value: mrn }],
      name: [{ use: 'official', family: 'Walker', given: ['Rosa'] }],
      gender: 'female',
      birthDate: '1961-04-12',
      address: [{ line: ['12 Elm St'], city: 'Springfield', state: 'MA', postalCode: '01103' }],
    },
    request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=https://github.com/synthetichealth/synthea|${mrn}` },
  }];
  const encounterUrls: string[] = [];
  for (let i = 0; i < options.encounters; i++) {
    const url = `urn:uuid:${randomUUID()}`;
    encounterUrls.push(url);
    const day = new Date(Date.UTC(2015, 0, 1) + i * 86_400_000 * 7).toISOString();
    entry.push({
      fullUrl: url,
      resource: {
        resourceType: 'Encounter', status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        type: [{ coding: [{ system: 'http://snomed.info/sct', code: '185349003', display: 'Encounter for check up' }] }],
        subject: { reference: patientUrl },
        period: { start: day, end: day },
      },
      request: { method: 'POST', url: 'Encounter' },
    });
  }
  const loinc = [['8867-4', 'Heart rate', '/min', 72], ['29463-7', 'Body weight', 'kg', 70], ['8302-2', 'Body height', 'cm', 168], ['2339-0', 'Glucose', 'mg/dL', 95]] as const;
  for (let i = 0; i < options.observations; i++) {
    const [code, display, unit, base] = loinc[i % loinc.length]!;
    entry.push({
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: {
        resourceType: 'Observation', status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
        code: { coding: [{ system: 'http://loinc.org', code, display }], text: display },
        subject: { reference: patientUrl },
        ...(encounterUrls.length ? { encounter: { reference: encounterUrls[i % encounterUrls.length] } } : {}),
        effectiveDateTime: new Date(Date.UTC(2015, 0, 1) + i * 3_600_000).toISOString(),
        valueQuantity: { value: base + (i % 7), unit, system: 'http://unitsofmeasure.org', code: unit },
      },
      request: { method: 'POST', url: 'Observation' },
    });
  }
  for (let i = 0; i < options.conditions; i++) {
    entry.push({
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: {
        resourceType: 'Condition',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006', display: 'Diabetes' }] },
        subject: { reference: patientUrl },
        onsetDateTime: '2010-06-01T00:00:00Z',
      },
      request: { method: 'POST', url: 'Condition' },
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}
