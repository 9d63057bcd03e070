/**
 * An *identified* Synthea-style patient record as a transaction Bundle, the way an EHR export or
 * Synthea's own output carries it: names (official and maiden), a narrative, addresses with a
 * geolocation, phone and e-mail, SSN, MRN, driver's licence and passport numbers, the
 * mothersMaidenName and birthPlace extensions, a full birth date, and Encounters, Observations and
 * Conditions with full dateTimes. Every resource has a client-assigned id (`PUT Type/<uuid>`,
 * fullUrl `urn:uuid:<uuid>`, references by that fullUrl), so sending the same Bundle again updates
 * the same resources instead of creating new ones.
 *
 * The dates are laid out so that any two distinct calendar days of the record are more than two
 * years apart: a date shift of at most 365 days can then never turn one original date into
 * another, and "no original date survives" can be checked on whole texts and files.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { Secret } from './leak-scan.js';

export interface IdentifiedRecordOptions {
  /** Encounters, each on its own day, each with its observations and one condition. */
  encounters: number;
  observationsPerEncounter: number;
}

export interface RecordDates {
  birthDate: string;
  /** Every date/dateTime/instant the record holds, by resource: [resourceType, client id, element, value]. */
  all: { resourceType: string; id: string; element: string; value: string }[];
}

export interface IdentifiedRecord {
  bundle: any;
  patientId: string;
  encounterIds: string[];
  observationIds: string[];
  conditionIds: string[];
  /** The identifying strings the record carries (names, address lines, phone, SSN, MRN, …). */
  identifying: Secret[];
  /** Every distinct full calendar date (YYYY-MM-DD) in the record. */
  fullDates: string[];
  dates: RecordDates;
  mrn: { system: string; value: string };
  ssn: { system: string; value: string };
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!;
const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const digits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join('');

const GIVEN = ['Rosalind', 'Marcus', 'Evelyn', 'Tobias', 'Henrietta', 'Cornelius', 'Philippa', 'Bartholomew'];
const FAMILY = ['Abernathy', 'Lindqvist', 'Okonkwo', 'Fairweather', 'Castellanos', 'Haverbrook', 'Quennell'];
const STREETS = ['Kertzmann Gateway', 'Schowalter Mill', 'Runolfsdottir Light', 'Bergstrom Crossroad', 'Wintheiser Camp'];
const CITIES = ['Marshfield Hills', 'West Tisbury', 'Sturbridge', 'Hopedale', 'Chilmark'];

const MRN_SYSTEM = 'http://hospital.smarthealthit.org';
const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** A day that is not January 1 (an instant generalized to YYYY-01-01T00:00:00Z must not repeat an input date). */
function dayIn(year: number): string {
  return `${year}-${pad(randomInt(2, 13))}-${pad(randomInt(2, 29))}`;
}

export function identifiedSyntheaBundle(options: IdentifiedRecordOptions): IdentifiedRecord {
  const identifying: Secret[] = [];
  const secret = (label: string, value: string) => {
    identifying.push({ label, value });
    return value;
  };
  const all: RecordDates['all'] = [];
  const date = (resourceType: string, id: string, element: string, value: string) => {
    all.push({ resourceType, id, element, value });
    return value;
  };

  const patientId = randomUUID();
  const given = secret('given name', `${pick(GIVEN)}${digits(3)}`);
  const middle = secret('middle name', `${pick(GIVEN)}${digits(3)}`);
  const family = secret('family name', `${pick(FAMILY)}${digits(3)}`);
  const maiden = secret('maiden name', `${pick(FAMILY)}${digits(3)}`);
  const mothersMaiden = secret("mother's maiden name", `${pick(FAMILY)}${digits(3)}`);
  const line = secret('address line', `${digits(3)} ${pick(STREETS)} Suite ${digits(2)}`);
  const city = secret('city', `${pick(CITIES)} ${digits(2)}`);
  const birthCity = secret('birth place city', `${pick(CITIES)}ville ${digits(2)}`);
  const phone = secret('phone', `555-${digits(3)}-${digits(4)}`);
  const email = secret('email', `${given.toLowerCase()}.${family.toLowerCase()}@example.com`);
  const ssn = secret('SSN', `999-${digits(2)}-${digits(4)}`);
  const mrn = secret('MRN', randomUUID());
  const syntheaId = secret('Synthea id', randomUUID());
  const licence = secret("driver's licence", `S999${digits(5)}`);
  const passport = secret('passport', `X${digits(8)}X`);
  // The last digit is not 0, so the number prints back exactly as written.
  const latitude = secret('latitude', `42.${digits(11)}${randomInt(1, 10)}`);
  const longitude = secret('longitude', `-71.${digits(11)}${randomInt(1, 10)}`);
  const doctor = secret('practitioner name', `Dr. ${pick(GIVEN)}${digits(3)} ${pick(FAMILY)}${digits(3)}`);

  const birthYear = 1940 + randomInt(30);
  const birthDate = date('Patient', patientId, 'birthDate', dayIn(birthYear));

  const patient = {
    resourceType: 'Patient',
    id: patientId,
    text: {
      status: 'generated',
      div: `<div xmlns="http://www.w3.org/1999/xhtml">Generated by <a href="https://github.com/synthetichealth/synthea">Synthea</a>. ${given} ${family}, ${line}, ${city}</div>`,
    },
    extension: [
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
        extension: [
          { url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2106-3', display: 'White' } },
          { url: 'text', valueString: 'White' },
        ],
      },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: mothersMaiden },
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: birthCity, state: 'Massachusetts', country: 'US' } },
      { url: 'http://synthetichealth.github.io/synthea/disability-adjusted-life-years', valueDecimal: 0.0 },
    ],
    identifier: [
      { system: 'https://github.com/synthetichealth/synthea', value: syntheaId },
      { type: { coding: [{ system: V2_0203, code: 'MR', display: 'Medical Record Number' }], text: 'Medical Record Number' }, system: MRN_SYSTEM, value: mrn },
      { type: { coding: [{ system: V2_0203, code: 'SS', display: 'Social Security Number' }], text: 'Social Security Number' }, system: SSN_SYSTEM, value: ssn },
      { type: { coding: [{ system: V2_0203, code: 'DL', display: "Driver's License" }], text: "Driver's License" }, system: 'urn:oid:2.16.840.1.113883.4.3.25', value: licence },
      { type: { coding: [{ system: V2_0203, code: 'PPN', display: 'Passport Number' }], text: 'Passport Number' }, system: 'http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber', value: passport },
    ],
    name: [
      { use: 'official', family, given: [given, middle], prefix: ['Mrs.'] },
      { use: 'maiden', family: maiden, given: [given, middle], prefix: ['Mrs.'] },
    ],
    telecom: [{ system: 'phone', value: phone, use: 'home' }, { system: 'email', value: email }],
    gender: 'female',
    birthDate,
    address: [{
      extension: [{
        url: 'http://hl7.org/fhir/StructureDefinition/geolocation',
        extension: [{ url: 'latitude', valueDecimal: Number(latitude) }, { url: 'longitude', valueDecimal: Number(longitude) }],
      }],
      line: [line], city, state: 'MA', postalCode: '01060', country: 'US',
    }],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M', display: 'M' }], text: 'M' },
    multipleBirthBoolean: false,
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US', display: 'English' }], text: 'English' } }],
  };

  const patientRef = { reference: `urn:uuid:${patientId}`, display: `Mrs. ${given} ${family}` };
  const entry: any[] = [{ fullUrl: `urn:uuid:${patientId}`, resource: patient, request: { method: 'PUT', url: `Patient/${patientId}` } }];
  const encounterIds: string[] = [];
  const observationIds: string[] = [];
  const conditionIds: string[] = [];
  const loinc = [['8867-4', 'Heart rate', '/min', 72], ['29463-7', 'Body Weight', 'kg', 70], ['8302-2', 'Body Height', 'cm', 168], ['2339-0', 'Glucose', 'mg/dL', 95]] as const;

  for (let e = 0; e < options.encounters; e++) {
    // Three years between encounter days: two distinct days are always more than 730 days apart.
    const day = dayIn(2005 + 3 * e);
    const zone = pick(['-05:00', '-04:00']);
    const hour = 8 + randomInt(4);
    const at = (h: number, m: number, s: number, ms?: number) => `${day}T${pad(h)}:${pad(m)}:${pad(s)}${ms === undefined ? '' : `.${pad(ms, 3)}`}${zone}`;
    const encounterId = randomUUID();
    encounterIds.push(encounterId);
    const practitionerId = randomUUID();
    entry.push({
      fullUrl: `urn:uuid:${encounterId}`,
      resource: {
        resourceType: 'Encounter', id: encounterId, status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        type: [{ coding: [{ system: 'http://snomed.info/sct', code: '185349003', display: 'Encounter for check up (procedure)' }], text: 'Encounter for check up (procedure)' }],
        subject: patientRef,
        participant: [{ individual: { reference: `Practitioner/${practitionerId}`, display: doctor } }],
        period: {
          start: date('Encounter', encounterId, 'period.start', at(hour, randomInt(60), randomInt(60))),
          end: date('Encounter', encounterId, 'period.end', at(hour + 1, randomInt(60), randomInt(60))),
        },
        serviceProvider: { reference: `Organization/${randomUUID()}`, display: 'HOPEDALE FAMILY PRACTICE' },
      },
      request: { method: 'PUT', url: `Encounter/${encounterId}` },
    });
    for (let o = 0; o < options.observationsPerEncounter; o++) {
      const [code, display, unit, base] = loinc[o % loinc.length]!;
      const observationId = randomUUID();
      observationIds.push(observationId);
      const minute = randomInt(60);
      entry.push({
        fullUrl: `urn:uuid:${observationId}`,
        resource: {
          resourceType: 'Observation', id: observationId, status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'vital-signs' }] }],
          code: { coding: [{ system: 'http://loinc.org', code, display }], text: display },
          subject: patientRef,
          encounter: { reference: `urn:uuid:${encounterId}` },
          effectiveDateTime: date('Observation', observationId, 'effectiveDateTime', at(hour + 2, minute, randomInt(60))),
          issued: date('Observation', observationId, 'issued', at(hour + 2, minute, randomInt(60), randomInt(1000))),
          valueQuantity: { value: base + randomInt(10), unit, system: 'http://unitsofmeasure.org', code: unit },
        },
        request: { method: 'PUT', url: `Observation/${observationId}` },
      });
    }
    const conditionId = randomUUID();
    conditionIds.push(conditionId);
    entry.push({
      fullUrl: `urn:uuid:${conditionId}`,
      resource: {
        resourceType: 'Condition', id: conditionId,
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis' }] }],
        code: { coding: [{ system: 'http://snomed.info/sct', code: '444814009', display: 'Viral sinusitis (disorder)' }], text: 'Viral sinusitis (disorder)' },
        subject: patientRef,
        encounter: { reference: `urn:uuid:${encounterId}` },
        onsetDateTime: date('Condition', conditionId, 'onsetDateTime', at(hour, 5, 0)),
        recordedDate: date('Condition', conditionId, 'recordedDate', at(hour, 6, 0)),
      },
      request: { method: 'PUT', url: `Condition/${conditionId}` },
    });
  }

  // The EHR's own ids identify the patient in the EHR too.
  for (const e of entry) identifying.push({ label: `client-assigned ${e.resource.resourceType} id`, value: e.resource.id });
  const fullDates = [...new Set(all.map((d) => d.value.slice(0, 10)))];
  return {
    bundle: { resourceType: 'Bundle', type: 'transaction', entry },
    patientId, encounterIds, observationIds, conditionIds, identifying, fullDates,
    dates: { birthDate, all },
    mrn: { system: MRN_SYSTEM, value: mrn },
    ssn: { system: SSN_SYSTEM, value: ssn },
  };
}
