/**
 * Property tests of de-identification on ingest, under the Safe Harbor table, through the real
 * server over HTTP.
 *
 * fast-check generates Patients and Observations that carry long random tokens in every place
 * mappings/safe-harbor.json covers: names (family, given, prefix, text), addresses (line, city,
 * district, text, postal code), telecom (phone, email, fax, url), identifiers (MRN, SSN, other
 * systems, none), narrative, Annotation notes, Reference.display and Reference.identifier,
 * Patient.contact, the photo Attachment, the mothersMaidenName extension, a contained resource's
 * names, client-assigned ids (PUT Patient/<id>, PUT Observation/<id>, referenced Practitioner ids),
 * Observation.valueString and component valueString; and full dates everywhere a date can be.
 *
 * For every generated case: no token occurs in what the server answers (writes, reads, searches by
 * other criteria and by the identifier itself, which must still find the patient, history), no
 * full input date survives in the stored JSON, and the generalizations are the table's (birth year
 * with the 90-or-older aggregation, ZIP3). After all cases: no token in any log line (info level),
 * nor in the bytes of any file under the data folder, while the server runs (SQLite -wal/-shm
 * included) and after it stopped.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  describeHits, fullDatesIn, memoryLogger, secretsIn, secretsInFiles, withoutLinks, type Secret,
} from '../support/leak-scan.js';
import { startTestServer, temporaryDataDir, type TestResponse, type TestServer } from '../support/test-server.js';

const SEED = 20_240_611;
const RUNS = 100;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SAFE_HARBOR_FILE = path.join(repoRoot, 'mappings', 'safe-harbor.json');
const SAFE_HARBOR_SHA256 = createHash('sha256').update(fs.readFileSync(SAFE_HARBOR_FILE)).digest('hex');
const RESTRICTED_ZIP3: ReadonlySet<string> = new Set(
  (JSON.parse(fs.readFileSync(SAFE_HARBOR_FILE, 'utf8')) as { restrictedZip3: { prefixes: string[] } }).restrictedZip3.prefixes);

const TABLE_TAG_SYSTEM = 'urn:fhir-ledger:deid-mapping-table';
const MRN_SYSTEM = 'http://hospital.example.org/mrn';
const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
const DL_SYSTEM = 'urn:oid:2.16.840.1.113883.4.3.25';
const NPI_SYSTEM = 'http://hl7.org/fhir/sid/us-npi';
const OBS_ID_SYSTEM = 'urn:oid:1.2.840.114350.1.13.0.1.7.1.1';
const MAIDEN_NAME_URL = 'http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName';

// ------------------------------------------------------------------------------ arbitraries

const ALNUM = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
const DIGITS = [...'0123456789'];

/**
 * A long random alphanumeric token: no accidental match anywhere is possible. Built from an array
 * of characters rather than fc.string, which mixes in well-known words (toString, __proto__…).
 */
const token = fc.array(fc.constantFrom(...ALNUM), { minLength: 14, maxLength: 22 }).map((chars) => chars.join(''));
/** Two tokens around a character that search values must escape, or one that JSON or URLs treat specially. */
const separator = fc.constantFrom('', '-', '.', ' ', ',', '|', '\\', '$', '/', "'", 'é', 'ß', '中');
const identifierValue = fc.record({ a: token, sep: separator, b: token });

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
/** A calendar date; never January 1, so that an instant generalized to YYYY-01-01T00:00:00Z cannot repeat it. */
const date = (minYear: number, maxYear: number) => fc.record({
  y: fc.integer({ min: minYear, max: maxYear }), m: fc.integer({ min: 1, max: 12 }), d: fc.integer({ min: 2, max: 28 }),
}).map(({ y, m, d }) => `${y}-${pad(m)}-${pad(d)}`);
const time = fc.record({ h: fc.integer({ min: 0, max: 23 }), mi: fc.integer({ min: 0, max: 59 }), s: fc.integer({ min: 0, max: 59 }) })
  .map(({ h, mi, s }) => `${pad(h)}:${pad(mi)}:${pad(s)}`);
const zone = fc.constantFrom('Z', '+02:00', '-05:00', '+05:30');
const dateTime = (minYear: number, maxYear: number) => fc.tuple(date(minYear, maxYear), time, zone).map(([d, t, z]) => `${d}T${t}${z}`);

/** A US ZIP+4 (generalized to its ZIP3) or a foreign postal code (redacted). */
const postalCode = fc.oneof(
  fc.array(fc.constantFrom(...DIGITS), { minLength: 9, maxLength: 9 }).map((d) => ({ us: true as const, value: `${d.slice(0, 5).join('')}-${d.slice(5).join('')}` })),
  token.map((t) => ({ us: false as const, value: `PC ${t}` })),
  // A ZIP whose three-digit area holds 20,000 people or fewer: 000.
  fc.tuple(fc.constantFrom(...RESTRICTED_ZIP3), fc.array(fc.constantFrom(...DIGITS), { minLength: 6, maxLength: 6 }))
    .map(([zip3, d]) => ({ us: true as const, value: `${zip3}${d.slice(0, 2).join('')}-${d.slice(2).join('')}` })),
);

const caseArb = fc.record({
  patientId: token, observationId: token, practitionerId: token, gpId: token,
  mrn: identifierValue, ssn: identifierValue, driversLicence: identifierValue, noSystem: identifierValue,
  npi: identifierValue, observationIdentifier: identifierValue, referenceIdentifier: identifierValue,
  family: token, given1: token, given2: token, prefix: token, nameText: token,
  line1: token, line2: token, city: token, district: token, addressText: token, postalCode,
  phone: token, email: token, fax: token, url: token,
  narrative: token, observationNarrative: token, maidenName: token,
  contactFamily: token, contactGiven: token, contactPhone: token, contactLine: token, contactCity: token,
  photoUrl: token, photoTitle: token, assigner: token, gpDisplay: token, subjectDisplay: token, performerDisplay: token,
  noteText: token, noteAuthor: token, valueString: token, componentValue: token, containedFamily: token,
  gender: fc.constantFrom('male', 'female', 'other', 'unknown'),
  birthDate: date(1900, 2015),
  deceased: fc.option(dateTime(2016, 2019), { nil: undefined }),
  identifierStart: date(1990, 2015), addressStart: date(1990, 2015), namePeriodStart: date(1990, 2015),
  effective: dateTime(2016, 2019), issued: dateTime(2016, 2019), noteTime: dateTime(2016, 2019), containedBirthDate: date(1920, 2010),
  update: fc.option(fc.record({ family: token, phone: token, line1: token }), { nil: undefined }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

// ------------------------------------------------------------------------------ the resources of a case

interface Built {
  patientId: string;
  observationId: string;
  patient: any;
  observation: any;
  updatedPatient: any | undefined;
  secrets: Secret[];
  /** Every full date (YYYY-MM-DD) the input carries. */
  inputDates: string[];
  mrn: string;
  ssn: string;
  driversLicence: string;
  observationIdentifier: string;
}

/** search.html#escaping */
const escapeSearch = (value: string) => value.replace(/[\\,|$]/g, (c) => `\\${c}`);
const q = encodeURIComponent;

function build(c: Case, nonce: string): Built {
  const secrets: Secret[] = [];
  /** A token made unique to this execution (shrinking re-runs reuse values) and recorded as a secret. */
  const s = (label: string, value: string): string => {
    const v = `${value}${nonce}`;
    secrets.push({ label, value: v });
    return v;
  };
  /** An identifier value with a separator: the whole value, and each side of the separator, are secrets. */
  const idv = (label: string, v: { a: string; sep: string; b: string }): string => {
    const value = `${v.a}${v.sep}${v.b}${nonce}`;
    secrets.push({ label, value }, { label: `${label} (first part)`, value: v.a }, { label: `${label} (last part)`, value: `${v.b}${nonce}` });
    return value;
  };
  const div = (text: string) => `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text}</p></div>`;

  const patientId = s('client-assigned Patient id', `${c.patientId}-`);
  const observationId = s('client-assigned Observation id', `${c.observationId}.`);
  const practitionerId = s('referenced Practitioner id', c.practitionerId);
  const gpId = s('generalPractitioner id', c.gpId);
  const mrn = idv('MRN', c.mrn);
  const ssn = idv('SSN', c.ssn);
  const driversLicence = idv("driver's licence number", c.driversLicence);
  const observationIdentifier = idv('Observation identifier', c.observationIdentifier);
  const postal = c.postalCode.us ? c.postalCode.value : s('postal code', c.postalCode.value);
  if (c.postalCode.us) secrets.push({ label: 'ZIP+4', value: c.postalCode.value });

  const patient: any = {
    resourceType: 'Patient',
    id: patientId,
    text: { status: 'generated', div: div(`Patient ${s('Patient narrative', c.narrative)}`) },
    extension: [{ url: MAIDEN_NAME_URL, valueString: s("mother's maiden name", c.maidenName) }],
    identifier: [
      { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: MRN_SYSTEM, value: mrn, period: { start: c.identifierStart }, assigner: { display: s('identifier assigner', c.assigner) } },
      { system: SSN_SYSTEM, value: ssn },
      { system: DL_SYSTEM, value: driversLicence },
      { value: idv('identifier without system', c.noSystem) },
    ],
    name: [{
      use: 'official', text: s('name text', c.nameText), family: s('family name', c.family),
      given: [s('given name', c.given1), s('second given name', c.given2)], prefix: [s('name prefix', c.prefix)],
      period: { start: c.namePeriodStart },
    }],
    telecom: [
      { system: 'phone', value: s('phone', c.phone), use: 'home' },
      { system: 'email', value: `${s('email', c.email)}@mail.example.com` },
      { system: 'fax', value: s('fax', c.fax) },
      { system: 'url', value: `https://${s('url', c.url)}.example.net/home` },
    ],
    gender: c.gender,
    birthDate: c.birthDate,
    ...(c.deceased ? { deceasedDateTime: c.deceased } : {}),
    address: [{
      use: 'home', type: 'both', text: s('address text', c.addressText),
      line: [s('address line', c.line1), s('second address line', c.line2)],
      city: s('city', c.city), district: s('district', c.district), state: 'MA', postalCode: postal, country: 'US',
      period: { start: c.addressStart },
    }],
    contact: [{
      relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N' }] }],
      name: { family: s('contact family name', c.contactFamily), given: [s('contact given name', c.contactGiven)] },
      telecom: [{ system: 'phone', value: s('contact phone', c.contactPhone) }],
      address: { line: [s('contact address line', c.contactLine)], city: s('contact city', c.contactCity) },
    }],
    photo: [{ contentType: 'image/jpeg', url: `https://photos.example.org/${s('photo url', c.photoUrl)}.jpg`, title: s('photo title', c.photoTitle) }],
    generalPractitioner: [{ reference: `Practitioner/${gpId}`, display: s('generalPractitioner display', c.gpDisplay) }],
  };

  const observation: any = {
    resourceType: 'Observation',
    id: observationId,
    text: { status: 'generated', div: div(`Observation ${s('Observation narrative', c.observationNarrative)}`) },
    contained: [{
      resourceType: 'Patient', id: 'mother',
      name: [{ family: s('contained resource family name', c.containedFamily) }], birthDate: c.containedBirthDate,
    }],
    identifier: [{ system: OBS_ID_SYSTEM, value: observationIdentifier }],
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8310-5', display: 'Body temperature' }] },
    subject: { reference: `Patient/${patientId}`, display: s('subject display', c.subjectDisplay) },
    performer: [
      { reference: `Practitioner/${practitionerId}`, display: s('performer display', c.performerDisplay),
        identifier: { system: NPI_SYSTEM, value: idv('performer NPI', c.npi) } },
      { identifier: { system: MRN_SYSTEM, value: idv('logical reference identifier', c.referenceIdentifier) } },
      { reference: '#mother' },
    ],
    effectiveDateTime: c.effective,
    issued: c.issued.replace(/[+-]\d\d:\d\d$/, 'Z'),
    valueString: s('valueString', c.valueString),
    note: [{ authorString: s('note author', c.noteAuthor), time: c.noteTime, text: s('note text', c.noteText) }],
    component: [{ code: { text: 'free-text component' }, valueString: s('component valueString', c.componentValue) }],
  };

  const updatedPatient = c.update ? {
    ...patient,
    name: [{ family: s('updated family name', c.update.family), given: patient.name[0].given }],
    telecom: [{ system: 'phone', value: s('updated phone', c.update.phone) }],
    address: [{ ...patient.address[0], line: [s('updated address line', c.update.line1)] }],
  } : undefined;

  const inputDates = [...new Set(fullDatesIn(JSON.stringify([patient, observation])))];
  return { patientId, observationId, patient, observation, updatedPatient, secrets, inputDates, mrn, ssn, driversLicence, observationIdentifier };
}

/** Safe Harbor birth year: the year, or (this year − 90) for anyone older than 89. */
function expectedBirthYear(birthDate: string, now = new Date()): string {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  const nowYear = now.getUTCFullYear();
  const reached = now.getUTCMonth() + 1 > m || (now.getUTCMonth() + 1 === m && now.getUTCDate() >= d);
  const age = nowYear - y - (reached ? 0 : 1);
  return String(age > 89 ? nowYear - 90 : y);
}

function expectedZip3(postal: { us: boolean; value: string }): string | undefined {
  if (!postal.us) return undefined;
  const zip3 = postal.value.slice(0, 3);
  return RESTRICTED_ZIP3.has(zip3) ? '000' : zip3;
}

// ------------------------------------------------------------------------------ assertions

function assertNoSecret(text: string, secrets: readonly Secret[], where: string): void {
  const hits = secretsIn(text, secrets, where);
  expect(hits, `identifying input found in ${where}:\n${describeHits(hits)}`).to.deep.equal([]);
}

function assertNoSecretInResponse(res: TestResponse, secrets: readonly Secret[], where: string): void {
  assertNoSecret(res.text, secrets, `${where} (body)`);
  const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
  assertNoSecret(headers, secrets, `${where} (headers)`);
}

/** Stored content (meta aside) holds no full date except the YYYY-01-01 of a generalized instant. */
function assertOnlyYears(resource: any, inputDates: readonly string[], where: string): void {
  const { meta: _meta, ...content } = resource;
  const text = JSON.stringify(content);
  for (const d of inputDates) expect(text, `${where} keeps the input date ${d}`).to.not.include(d);
  for (const d of fullDatesIn(text)) expect(d, `${where} holds a full date`).to.match(/^\d{4}-01-01$/);
}

function assertStamped(resource: any, where: string): void {
  expect(resource.meta?.tag, `${where} meta.tag`).to.deep.include({
    system: TABLE_TAG_SYSTEM, code: SAFE_HARBOR_SHA256, display: 'safe-harbor mapping table',
  });
}

function entryIds(bundle: any): string[] {
  return (bundle?.entry ?? []).map((e: any) => e.resource?.id);
}

// ------------------------------------------------------------------------------ the tests

describe('de-identification properties under safe-harbor (e2e, fast-check)', function () {
  this.timeout(180_000);
  let server: TestServer;
  let dataDir: string;
  let stopped = false;
  const log = memoryLogger('info');
  const allSecrets: Secret[] = [];
  const allInputDates = new Set<string>();
  let patientsWritten = 0;
  let versionsWritten = 0;

  before(async () => {
    dataDir = temporaryDataDir('fhir-ledger-deid-property-');
    server = await startTestServer({ deidMapping: 'safe-harbor', dataDir }, log.logger);
  });
  after(async () => {
    if (!stopped) await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it(`no generated identifier reaches any response, and no full input date the stored JSON (${RUNS} cases, seed ${SEED})`, async () => {
    let execution = 0;
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      const nonce = `Zq${(++execution).toString(36)}`;
      const b = build(c, nonce);
      allSecrets.push(...b.secrets);
      for (const d of b.inputDates) allInputDates.add(d);
      const since = new Date(Date.now() - 2000).toISOString().slice(0, 19) + 'Z';

      // --- writes
      const putPatient = await server.request('PUT', `/fhir/Patient/${b.patientId}`, { body: b.patient });
      expect(putPatient.status, putPatient.text).to.equal(201);
      assertNoSecretInResponse(putPatient, b.secrets, 'PUT Patient response');
      const storedPatientId: string = putPatient.json.id;
      expect(storedPatientId).to.not.equal(b.patientId);
      patientsWritten++;
      versionsWritten++;

      const putObservation = await server.request('PUT', `/fhir/Observation/${b.observationId}`, { body: b.observation });
      expect(putObservation.status, putObservation.text).to.equal(201);
      assertNoSecretInResponse(putObservation, b.secrets, 'PUT Observation response');
      const storedObservationId: string = putObservation.json.id;
      expect(storedObservationId).to.not.equal(b.observationId);
      versionsWritten++;

      const versions = 1;
      if (b.updatedPatient) {
        const again = await server.request('PUT', `/fhir/Patient/${b.patientId}`, { body: b.updatedPatient });
        expect(again.status, again.text).to.equal(200);
        expect(again.json.id).to.equal(storedPatientId);
        // The update changes only a name, a phone and an address line, which safe-harbor
        // removes: the stored content is the same, so no version is written (no-op update).
        expect(again.json.meta.versionId).to.equal('1');
        assertNoSecretInResponse(again, b.secrets, 'second PUT Patient response');
      }

      // --- reads
      const readPatient = await server.request('GET', `/fhir/Patient/${b.patientId}`);
      expect(readPatient.status, readPatient.text).to.equal(200);
      assertNoSecretInResponse(readPatient, b.secrets, 'GET Patient/<client id>');
      const p = readPatient.json;
      expect(p.id).to.equal(storedPatientId);
      assertStamped(p, 'stored Patient');
      assertOnlyYears(p, b.inputDates, 'stored Patient');
      expect(p.birthDate).to.equal(expectedBirthYear(c.birthDate));
      expect(p.gender).to.equal(c.gender);
      for (const gone of ['text', 'name', 'telecom', 'contact', 'photo', 'extension']) expect(p, `Patient.${gone}`).to.not.have.property(gone);
      expect(p.address).to.have.length(1);
      const zip3 = expectedZip3(c.postalCode);
      expect(p.address[0]).to.deep.equal({
        use: 'home', type: 'both', state: 'MA', country: 'US', period: { start: c.addressStart.slice(0, 4) }, ...(zip3 ? { postalCode: zip3 } : {}),
      });
      expect(p.identifier.map((i: any) => i.system)).to.deep.equal([MRN_SYSTEM, SSN_SYSTEM, DL_SYSTEM, undefined]);
      expect(p.identifier[0].period).to.deep.equal({ start: c.identifierStart.slice(0, 4) });
      // A reference with nothing left but its display says it was masked (data-absent-reason).
      expect(p.identifier[0].assigner).to.deep.equal({
        extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
      });
      expect(p.generalPractitioner).to.have.length(1);
      expect(p.generalPractitioner[0]).to.have.all.keys('reference');
      expect(p.generalPractitioner[0].reference).to.match(/^Practitioner\/[0-9a-f-]{36}$/);

      const readObservation = await server.request('GET', `/fhir/Observation/${b.observationId}`);
      expect(readObservation.status, readObservation.text).to.equal(200);
      assertNoSecretInResponse(readObservation, b.secrets, 'GET Observation/<client id>');
      const o = readObservation.json;
      expect(o.id).to.equal(storedObservationId);
      assertStamped(o, 'stored Observation');
      assertOnlyYears(o, b.inputDates, 'stored Observation');
      expect(o.subject).to.deep.equal({ reference: `Patient/${storedPatientId}` });
      expect(o.issued).to.equal(`${c.issued.slice(0, 4)}-01-01T00:00:00Z`);
      expect(o.effectiveDateTime).to.equal(c.effective.slice(0, 4));
      for (const gone of ['text', 'valueString', 'note']) expect(o, `Observation.${gone}`).to.not.have.property(gone);
      expect(o.component).to.deep.equal([{ code: { text: 'free-text component' } }]);
      expect(o.contained[0]).to.not.have.property('name');
      expect(o.performer[0].reference).to.match(/^Practitioner\/[0-9a-f-]{36}$/);

      // --- searches: by the identifiers themselves (they must still find the patient) and by other criteria
      const searches: { url: string; expected: string; what: string; only: boolean }[] = [
        { url: `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${escapeSearch(b.mrn)}`)}`, expected: storedPatientId, what: 'MRN with its system', only: true },
        { url: `/fhir/Patient?identifier=${q(escapeSearch(b.ssn))}`, expected: storedPatientId, what: 'SSN without a system', only: true },
        { url: `/fhir/Patient?identifier=${q(`${DL_SYSTEM}|${escapeSearch(b.driversLicence)}`)}`, expected: storedPatientId, what: "driver's licence", only: true },
        { url: `/fhir/Patient?_id=${b.patientId}`, expected: storedPatientId, what: '_id = the client id', only: true },
        { url: `/fhir/Patient?gender=${c.gender}&_lastUpdated=ge${since}&_count=1000`, expected: storedPatientId, what: 'gender and _lastUpdated', only: false },
        { url: `/fhir/Observation?subject=${q(`Patient/${b.patientId}`)}`, expected: storedObservationId, what: 'subject = Patient/<client id>', only: true },
        { url: `/fhir/Observation?identifier=${q(`${OBS_ID_SYSTEM}|${escapeSearch(b.observationIdentifier)}`)}`, expected: storedObservationId, what: 'Observation identifier', only: true },
        { url: `/fhir/Observation?_lastUpdated=ge${since}&_count=1000`, expected: storedObservationId, what: 'Observation _lastUpdated', only: false },
      ];
      for (const { url, expected, what, only } of searches) {
        const res = await server.request('GET', url);
        expect(res.status, `${what}: ${res.text}`).to.equal(200);
        if (only) expect(entryIds(res.json), `search by ${what}`).to.deep.equal([expected]);
        else expect(entryIds(res.json), `search by ${what}`).to.include(expected);
        assertNoSecret(withoutLinks(res.json), b.secrets, `search by ${what}`);
      }

      // --- history
      for (const [url, total] of [[`/fhir/Patient/${b.patientId}/_history`, versions], [`/fhir/Observation/${b.observationId}/_history`, 1]] as const) {
        const res = await server.request('GET', url);
        expect(res.status, res.text).to.equal(200);
        expect(res.json.total, url).to.equal(total);
        assertNoSecret(withoutLinks(res.json), b.secrets, `instance history ${url.split('/')[2]}`);
        for (const e of res.json.entry) assertOnlyYears(e.resource, b.inputDates, 'a version in history');
      }
      const typeHistory = await server.request('GET', `/fhir/Patient/_history?_since=${since}&_count=1000`);
      expect(typeHistory.status).to.equal(200);
      assertNoSecret(withoutLinks(typeHistory.json), b.secrets, 'Patient type history');
    // endOnFailure: the server is shared by every case, so shrinking would only pile data up; the
    // assertion message names the field that leaked and fast-check prints the failing case.
    }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
    expect(patientsWritten).to.be.at.least(RUNS);
  });

  it('no generated identifier anywhere in the system history, and every version is stamped with the table', async () => {
    const res = await server.request('GET', `/fhir/_history?_count=1000`);
    expect(res.status).to.equal(200);
    expect(res.json.total).to.equal(versionsWritten);
    assertNoSecret(withoutLinks(res.json), allSecrets, 'system history');
    for (const e of res.json.entry) {
      assertStamped(e.resource, `${e.resource.resourceType} in history`);
      assertOnlyYears(e.resource, [...allInputDates], `${e.resource.resourceType} in history`);
    }
  });

  it('no generated identifier in any log line', () => {
    expect(log.lines().length, 'the server logged its requests').to.be.greaterThan(versionsWritten);
    assertNoSecret(log.text(), allSecrets, 'the log');
  });

  it('no generated identifier nor full input date in the bytes of any file under DATA_DIR while the server runs', () => {
    const { files, hits } = secretsInFiles(dataDir, [
      ...allSecrets,
      ...[...allInputDates].map((d) => ({ label: 'full input date', value: d })),
    ]);
    const names = files.map((f) => path.relative(dataDir, f));
    expect(names).to.include.members(['fhir.sqlite', path.join('vault', 'pseudonyms.sqlite'), path.join('vault', 'vault.key')]);
    expect(names.some((n) => n.endsWith('-wal')), `a write-ahead log is scanned too: ${names.join(', ')}`).to.equal(true);
    expect(hits, `identifying input in the data folder:\n${describeHits(hits)}`).to.deep.equal([]);
  });

  it('…and after it stopped (checkpointed files, the vault, the keys)', async () => {
    await server.close();
    stopped = true;
    const { files, hits } = secretsInFiles(dataDir, [
      ...allSecrets,
      ...[...allInputDates].map((d) => ({ label: 'full input date', value: d })),
    ]);
    expect(files.length).to.be.greaterThan(2);
    expect(hits, `identifying input in the data folder:\n${describeHits(hits)}`).to.deep.equal([]);
    assertNoSecret(log.text(), allSecrets, 'the log, shutdown included');
  });
});

/**
 * 45 CFR 164.514(b)(2)(i) removes the identifiers "of the individual or of relatives, employers, or
 * household members", (C) included: ages over 89 and every date element, the year too, that shows
 * such an age. The table aggregates the birth year of a Patient, and of a RelatedPerson, Person or
 * Practitioner, into one 90-or-older year.
 */
describe('Safe Harbor birth years of relatives over 89 (e2e, fast-check)', function () {
  this.timeout(60_000);
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ deidMapping: 'safe-harbor' });
  });
  after(async () => server.stop());

  it('a RelatedPerson.birthDate is generalized like Patient.birthDate: its year, or (this year − 90) over 89', async () => {
    const patient = await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', gender: 'female' } });
    expect(patient.status).to.equal(201);
    await fc.assert(fc.asyncProperty(date(1900, 2015), async (birthDate) => {
      const res = await server.request('POST', '/fhir/RelatedPerson', { body: {
        resourceType: 'RelatedPerson', patient: { reference: `Patient/${patient.json.id}` },
        relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'MTH' }] }],
        birthDate,
      } });
      expect(res.status, res.text).to.equal(201);
      expect(res.json.birthDate, `RelatedPerson born ${birthDate}`).to.equal(expectedBirthYear(birthDate));
    }), { seed: SEED, numRuns: 40, endOnFailure: true });
  });
});
