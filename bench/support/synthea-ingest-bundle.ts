/**
 * A Synthea-like patient record as a transaction Bundle, the way Synthea writes one to disk and an
 * ETL job POSTs it: every entry `POST Type` with a `urn:uuid` fullUrl, references between entries
 * by those fullUrls, the file pretty-printed. An identified Patient (names, address with a
 * geolocation, phone, SSN, MRN, driver's licence, passport, birth place; what safe-harbor has to
 * remove) and, per wellness visit, an Encounter, vital-sign and laboratory Observations (blood
 * pressure with components), a Condition on some visits, and an institutional Claim with a line per
 * service; meta.profile as Synthea claims it. Sized like Synthea's output: about 3.3 KB a resource as sent (issue 10, "Realistic
 * ingest"); `bundleStatistics` says what a generated set averages.
 * Unlike test/support/identified-synthea-bundle.ts (client-assigned ids, PUT, dates spread for
 * leak checks), this one models a first load: the server assigns every id.
 */
import { randomInt, randomUUID } from 'node:crypto';

export interface IngestRecordOptions {
  /** Wellness visits, one every ~6 months back from 2024. */
  encounters: number;
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!;
const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const digits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join('');

const GIVEN = ['Rosalind', 'Marcus', 'Evelyn', 'Tobias', 'Henrietta', 'Cornelius', 'Philippa', 'Bartholomew'];
const FAMILY = ['Abernathy', 'Lindqvist', 'Okonkwo', 'Fairweather', 'Castellanos', 'Haverbrook', 'Quennell'];
const STREETS = ['Kertzmann Gateway', 'Schowalter Mill', 'Runolfsdottir Light', 'Bergstrom Crossroad', 'Wintheiser Camp'];
const CITIES = ['Marshfield Hills', 'West Tisbury', 'Sturbridge', 'Hopedale', 'Chilmark'];
const PAYERS = ['Medicaid', 'Medicare', 'Blue Cross Blue Shield', 'Aetna', 'UnitedHealthcare', 'NO_INSURANCE'];
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const UCUM = 'http://unitsofmeasure.org';
const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const US_CORE = 'http://hl7.org/fhir/us/core/StructureDefinition';
/** The profiles Synthea claims in meta.profile (claimed, not enforced by this server). */
const profiles = (...names: string[]) => ({ profile: names.map((n) => (n.startsWith('http') ? n : `${US_CORE}/${n}`)) });

/** [LOINC code, display, UCUM unit, typical value, category] of each measurement a visit records. */
const MEASUREMENTS = [
  ['8302-2', 'Body Height', 'cm', 168, 'vital-signs'],
  ['72514-3', 'Pain severity - 0-10 verbal numeric rating [Score] - Reported', '{score}', 2, 'vital-signs'],
  ['29463-7', 'Body Weight', 'kg', 74, 'vital-signs'],
  ['39156-5', 'Body Mass Index', 'kg/m2', 26, 'vital-signs'],
  ['8867-4', 'Heart rate', '/min', 72, 'vital-signs'],
  ['9279-1', 'Respiratory rate', '/min', 14, 'vital-signs'],
  ['2339-0', 'Glucose [Mass/volume] in Blood', 'mg/dL', 92, 'laboratory'],
  ['6299-2', 'Urea nitrogen [Mass/volume] in Blood', 'mg/dL', 14, 'laboratory'],
  ['38483-4', 'Creatinine [Mass/volume] in Blood', 'mg/dL', 1, 'laboratory'],
  ['2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma', 'mg/dL', 180, 'laboratory'],
  ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', '%', 5.6, 'laboratory'],
] as const;

const CONDITIONS = [
  ['444814009', 'Viral sinusitis (disorder)'], ['195662009', 'Acute viral pharyngitis (disorder)'],
  ['10509002', 'Acute bronchitis (disorder)'], ['59621000', 'Essential hypertension (disorder)'],
  ['15777000', 'Prediabetes'], ['162864005', 'Body mass index 30+ - obesity (finding)'],
] as const;

const SERVICES = [
  ['430193006', 'Medication Reconciliation (procedure)', 42.0], ['710824005', 'Assessment of health and social care needs (procedure)', 88.5],
  ['454711000124102', 'Depression screening (procedure)', 31.2], ['171207006', 'Depression screening using PHQ-9 (procedure)', 64.9],
  ['428211000124100', 'Assessment of substance use (procedure)', 51.0], ['866148006', 'Screening for domestic abuse (procedure)', 47.3],
  ['314529007', 'Medication review due (situation)', 22.1], ['183627004', 'Alcohol screening (procedure)', 38.8],
] as const;

interface Entry { fullUrl: string; resource: any; request: { method: 'POST'; url: string } }

function entryOf(resource: any): Entry {
  return { fullUrl: `urn:uuid:${randomUUID()}`, resource, request: { method: 'POST', url: resource.resourceType } };
}

function codeable(system: string, code: string, display: string) {
  return { coding: [{ system, code, display }], text: display };
}

function identifiedPatient(): any {
  const given = `${pick(GIVEN)}${digits(3)}`;
  const middle = `${pick(GIVEN)}${digits(3)}`;
  const family = `${pick(FAMILY)}${digits(3)}`;
  const line = `${digits(3)} ${pick(STREETS)} Suite ${digits(2)}`;
  const city = `${pick(CITIES)} ${digits(2)}`;
  return {
    resourceType: 'Patient',
    meta: profiles('us-core-patient'),
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">Generated by <a href="https://github.com/synthetichealth/synthea">Synthea</a>. Version identifier: v3.2.0</div>` },
    extension: [
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race',
        extension: [{ url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2106-3', display: 'White' } }, { url: 'text', valueString: 'White' }],
      },
      {
        url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity',
        extension: [{ url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2186-5', display: 'Not Hispanic or Latino' } }, { url: 'text', valueString: 'Not Hispanic or Latino' }],
      },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName', valueString: `${pick(GIVEN)}${digits(3)} ${pick(FAMILY)}${digits(3)}` },
      { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex', valueCode: 'F' },
      { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: `${pick(CITIES)}ville`, state: 'Massachusetts', country: 'US' } },
      { url: 'http://synthetichealth.github.io/synthea/disability-adjusted-life-years', valueDecimal: randomInt(100) / 100 },
      { url: 'http://synthetichealth.github.io/synthea/quality-adjusted-life-years', valueDecimal: 40 + randomInt(3000) / 100 },
    ],
    identifier: [
      { system: 'https://github.com/synthetichealth/synthea', value: randomUUID() },
      { type: codeable(V2_0203, 'MR', 'Medical Record Number'), system: 'http://hospital.smarthealthit.org', value: randomUUID() },
      { type: codeable(V2_0203, 'SS', 'Social Security Number'), system: 'http://hl7.org/fhir/sid/us-ssn', value: `999-${digits(2)}-${digits(4)}` },
      { type: codeable(V2_0203, 'DL', "Driver's license number"), system: 'urn:oid:2.16.840.1.113883.4.3.25', value: `S999${digits(5)}` },
      { type: codeable(V2_0203, 'PPN', 'Passport Number'), system: 'http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber', value: `X${digits(8)}X` },
    ],
    name: [{ use: 'official', family, given: [given, middle], prefix: ['Mrs.'] }, { use: 'maiden', family: `${pick(FAMILY)}${digits(3)}`, given: [given, middle], prefix: ['Mrs.'] }],
    telecom: [{ system: 'phone', value: `555-${digits(3)}-${digits(4)}`, use: 'home' }],
    gender: 'female',
    birthDate: `${1940 + randomInt(50)}-${pad(randomInt(1, 13))}-${pad(randomInt(1, 29))}`,
    address: [{
      extension: [{
        url: 'http://hl7.org/fhir/StructureDefinition/geolocation',
        extension: [{ url: 'latitude', valueDecimal: 42 + randomInt(1_000_000) / 1_000_000 }, { url: 'longitude', valueDecimal: -71 - randomInt(1_000_000) / 1_000_000 }],
      }],
      line: [line], city, state: 'MA', postalCode: `0${digits(4)}`, country: 'US',
    }],
    maritalStatus: codeable('http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', 'M', 'Married'),
    multipleBirthBoolean: false,
    communication: [{ language: codeable('urn:ietf:bcp:47', 'en-US', 'English (United States)') }],
  };
}

export function syntheaIngestBundle(options: IngestRecordOptions): any {
  const patient = entryOf(identifiedPatient());
  const patientName = `${patient.resource.name[0].prefix[0]} ${patient.resource.name[0].given[0]} ${patient.resource.name[0].family}`;
  const subject = { reference: patient.fullUrl, display: patientName };
  const entries: Entry[] = [patient];
  const payer = pick(PAYERS);
  const practitioner = { reference: `Practitioner/${randomUUID()}`, display: `Dr. ${pick(GIVEN)}${digits(3)} ${pick(FAMILY)}${digits(3)}` };
  const organization = { reference: `Organization/${randomUUID()}`, display: 'HOPEDALE FAMILY PRACTICE' };
  const location = { reference: `Location/${randomUUID()}`, display: 'HOPEDALE FAMILY PRACTICE' };

  for (let visit = 0; visit < options.encounters; visit++) {
    const start = new Date(Date.UTC(2024, 0, 1) - visit * 182 * 86_400_000 + randomInt(8, 16) * 3_600_000);
    const end = new Date(start.getTime() + (15 + randomInt(30)) * 60_000);
    const instant = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, '-05:00');
    const period = { start: instant(start), end: instant(end) };
    const encounter = entryOf({
      resourceType: 'Encounter', meta: profiles('us-core-encounter'), status: 'finished',
      identifier: [{ use: 'official', system: 'https://github.com/synthetichealth/synthea', value: randomUUID() }],
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      type: [codeable(SNOMED, '410620009', 'Well child visit (procedure)')],
      subject,
      participant: [{
        type: [codeable('http://terminology.hl7.org/CodeSystem/v3-ParticipationType', 'PPRF', 'primary performer')],
        period, individual: practitioner,
      }],
      period,
      location: [{ location }],
      serviceProvider: organization,
    });
    entries.push(encounter);
    const encounterRef = { reference: encounter.fullUrl };

    for (const [code, display, unit, typical, category] of MEASUREMENTS) {
      entries.push(entryOf({
        resourceType: 'Observation',
        meta: category === 'laboratory' ? profiles('us-core-observation-lab') : profiles('us-core-vital-signs', 'http://hl7.org/fhir/StructureDefinition/vitalsigns'),
        status: 'final',
        category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: category, display: category === 'laboratory' ? 'Laboratory' : 'Vital signs' }] }],
        code: codeable(LOINC, code, display),
        subject, encounter: encounterRef,
        effectiveDateTime: period.start, issued: start.toISOString(),
        valueQuantity: { value: Math.round(typical * (0.85 + randomInt(30) / 100) * 100) / 100, unit, system: UCUM, code: unit },
      }));
    }
    entries.push(entryOf({
      resourceType: 'Observation', meta: profiles('us-core-blood-pressure', 'http://hl7.org/fhir/StructureDefinition/bp', 'http://hl7.org/fhir/StructureDefinition/vitalsigns'),
      status: 'final',
      category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: 'vital-signs', display: 'Vital signs' }] }],
      code: codeable(LOINC, '85354-9', 'Blood pressure panel with all children optional'),
      subject, encounter: encounterRef, effectiveDateTime: period.start, issued: start.toISOString(),
      component: [
        { code: codeable(LOINC, '8462-4', 'Diastolic Blood Pressure'), valueQuantity: { value: 70 + randomInt(20), unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
        { code: codeable(LOINC, '8480-6', 'Systolic Blood Pressure'), valueQuantity: { value: 110 + randomInt(30), unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } },
      ],
    }));

    const diagnosis: any[] = [];
    if (visit % 2 === 0) {
      const [code, display] = pick(CONDITIONS);
      const condition = entryOf({
        resourceType: 'Condition', meta: profiles('us-core-condition-encounter-diagnosis'),
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
        verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis', display: 'Encounter Diagnosis' }] }],
        code: codeable(SNOMED, code, display),
        subject, encounter: encounterRef,
        onsetDateTime: period.start, abatementDateTime: instant(new Date(start.getTime() + 14 * 86_400_000)), recordedDate: period.start,
      });
      entries.push(condition);
      diagnosis.push({ sequence: 1, diagnosisReference: { reference: condition.fullUrl } });
    }

    // An institutional claim, a line per service of the visit and per laboratory test.
    const lines = [
      ['410620009', 'Well child visit (procedure)', 136.8] as const,
      ...SERVICES,
      ...MEASUREMENTS.filter((m) => m[4] === 'laboratory').map(([code, display]) => [code, display, 12.5] as const),
    ];
    const item = lines.map(([code, display, price], i) => ({
      sequence: i + 1,
      ...(i === 0 && diagnosis.length ? { diagnosisSequence: [1] } : {}),
      category: codeable('https://bluebutton.cms.gov/resources/variables/line_cms_type_srvc_cd', '1', 'Medical care'),
      productOrService: codeable(i < SERVICES.length + 1 ? SNOMED : LOINC, code, display),
      servicedPeriod: period,
      locationCodeableConcept: codeable('http://terminology.hl7.org/CodeSystem/ex-serviceplace', '21', 'Inpatient Hospital'),
      unitPrice: { value: price, currency: 'USD' },
      net: { value: price, currency: 'USD' },
      encounter: [encounterRef],
    }));
    entries.push(entryOf({
      resourceType: 'Claim', status: 'active',
      identifier: [{ system: 'https://bluebutton.cms.gov/resources/variables/clm_id', value: randomUUID() }],
      type: codeable('http://terminology.hl7.org/CodeSystem/claim-type', 'institutional', 'Institutional'),
      use: 'claim', patient: subject, billablePeriod: period, created: period.end,
      provider: organization,
      priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
      facility: location,
      careTeam: [{ sequence: 1, provider: practitioner, role: codeable('http://terminology.hl7.org/CodeSystem/claimcareteamrole', 'primary', 'Primary provider') }],
      ...(diagnosis.length ? { diagnosis } : {}),
      insurance: [{ sequence: 1, focal: true, coverage: { display: payer } }],
      item,
      total: { value: Math.round(item.reduce((sum, i) => sum + i.net.value, 0) * 100) / 100, currency: 'USD' },
    }));
  }
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

/** The text a bundle is sent as: pretty-printed, as Synthea writes its files. */
export function bundleText(bundle: any, pretty = true): string {
  return pretty ? JSON.stringify(bundle, null, 2) : JSON.stringify(bundle);
}

export interface BundleStatistics { resources: number; bytesSent: number; bytesPerResource: number; compactBytesPerResource: number; byType: Record<string, number> }

export function bundleStatistics(bundles: any[], pretty = true): BundleStatistics {
  let resources = 0;
  let bytesSent = 0;
  let compact = 0;
  const byType: Record<string, number> = {};
  for (const bundle of bundles) {
    resources += bundle.entry.length;
    bytesSent += Buffer.byteLength(bundleText(bundle, pretty));
    compact += Buffer.byteLength(JSON.stringify(bundle));
    for (const e of bundle.entry) byType[e.resource.resourceType] = (byType[e.resource.resourceType] ?? 0) + 1;
  }
  return { resources, bytesSent, bytesPerResource: bytesSent / resources, compactBytesPerResource: compact / resources, byType };
}
