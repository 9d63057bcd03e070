/**
 * An identified Synthea-style record (test/support/identified-synthea-bundle.ts: names, address
 * with geolocation, phone, e-mail, SSN, MRN, licence and passport numbers, full birth date,
 * Encounters, Observations and Conditions with full dateTimes, every resource with a client id)
 * sent as one transaction through the real server.
 *
 * Safe Harbor: nothing identifying and no full date survives in any stored resource (read through
 * search and history) nor in the bytes of the data folder; the same Bundle sent again matches the
 * same resources and writes nothing (one Patient still at versionId 1, no duplicated Observations).
 *
 * Research: every date of the patient moves by one non-zero number of days, no original date
 * survives, and the intervals between the patient's dates are exactly what they were.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { identifiedSyntheaBundle, type IdentifiedRecord } from '../support/identified-synthea-bundle.js';
import { describeHits, fullDatesIn, memoryLogger, secretsIn, secretsInFiles, withoutLinks, type Secret } from '../support/leak-scan.js';
import { startTestServer, temporaryDataDir, type TestServer } from '../support/test-server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(path.join(repoRoot, 'mappings', file))).digest('hex');
const TABLE_TAG_SYSTEM = 'urn:fhir-ledger:deid-mapping-table';
const q = encodeURIComponent;

const ENCOUNTERS = 4;
const OBSERVATIONS_PER_ENCOUNTER = 5;

function assertNoSecret(text: string, secrets: readonly Secret[], where: string): void {
  const hits = secretsIn(text, secrets, where);
  expect(hits, `identifying input found in ${where}:\n${describeHits(hits)}`).to.deep.equal([]);
}

function dateSecrets(record: IdentifiedRecord): Secret[] {
  return record.fullDates.map((d) => ({ label: 'full input date', value: d }));
}

/** Every resource the server holds for the record: current versions by type, and every version in the system history. */
async function storedResources(server: TestServer, record: IdentifiedRecord): Promise<{ current: any[]; history: any[] }> {
  const current: any[] = [];
  const patient = await server.request('GET', `/fhir/Patient/${record.patientId}`);
  expect(patient.status, patient.text).to.equal(200);
  current.push(patient.json);
  for (const type of ['Encounter', 'Observation', 'Condition']) {
    const res = await server.request('GET', `/fhir/${type}?patient=${q(record.patientId)}&_count=1000`);
    expect(res.status, res.text).to.equal(200);
    current.push(...(res.json.entry ?? []).map((e: any) => e.resource));
  }
  const history = await server.request('GET', '/fhir/_history?_count=1000');
  expect(history.status).to.equal(200);
  return { current, history: (history.json.entry ?? []).map((e: any) => e.resource) };
}

async function count(server: TestServer, type: string): Promise<number> {
  const res = await server.request('GET', `/fhir/${type}?_summary=count`);
  expect(res.status, res.text).to.equal(200);
  return res.json.total;
}

/** The value at a dotted path (`period.start`). */
function at(resource: any, dotted: string): unknown {
  return dotted.split('.').reduce((v: any, k) => v?.[k], resource);
}

/** Calendar days from a to b, on the YYYY-MM-DD part only. */
function daysBetween(a: string, b: string): number {
  const day = (s: string) => Date.UTC(Number(s.slice(0, 4)), Number(s.slice(5, 7)) - 1, Number(s.slice(8, 10)));
  return Math.round((day(b) - day(a)) / 86_400_000);
}

describe('an identified Synthea-style record under safe-harbor (e2e)', function () {
  this.timeout(60_000);
  let server: TestServer;
  let dataDir: string;
  let stopped = false;
  const log = memoryLogger('info');
  const record = identifiedSyntheaBundle({ encounters: ENCOUNTERS, observationsPerEncounter: OBSERVATIONS_PER_ENCOUNTER });
  const total = 1 + ENCOUNTERS * (OBSERVATIONS_PER_ENCOUNTER + 2);
  let storedPatientId: string;

  before(async () => {
    dataDir = temporaryDataDir('fhir-ledger-deid-synthea-');
    server = await startTestServer({ deidMapping: 'safe-harbor', dataDir }, log.logger);
  });
  after(async () => {
    if (!stopped) await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('the transaction creates every resource of the record', async () => {
    const res = await server.request('POST', '/fhir', { body: record.bundle });
    expect(res.status, res.text.slice(0, 2000)).to.equal(200);
    expect(res.json.type).to.equal('transaction-response');
    expect(res.json.entry).to.have.length(total);
    for (const e of res.json.entry) expect(e.response.status).to.match(/^201/);
    assertNoSecret(res.text, [...record.identifying, ...dateSecrets(record)], 'the transaction-response');
    storedPatientId = (await server.request('GET', `/fhir/Patient/${record.patientId}`)).json.id;
    expect(storedPatientId).to.be.a('string').and.not.equal(record.patientId);
    expect(await count(server, 'Patient')).to.equal(1);
  });

  it('no name, address, phone, SSN, MRN, client id or full date survives in any stored resource (search and history)', async () => {
    const { current, history } = await storedResources(server, record);
    expect(current).to.have.length(total);
    expect(history).to.have.length(total);
    for (const resource of [...current, ...history]) {
      const where = `stored ${resource.resourceType}`;
      assertNoSecret(JSON.stringify(resource), [...record.identifying, ...dateSecrets(record)], where);
      expect(resource.meta.tag).to.deep.include({ system: TABLE_TAG_SYSTEM, code: sha256Of('safe-harbor.json'), display: 'safe-harbor mapping table' });
      const { meta: _meta, ...content } = resource;
      // Only years are left; an instant keeps its type as YYYY-01-01T00:00:00Z.
      for (const d of fullDatesIn(JSON.stringify(content))) expect(d, `${where} holds a full date`).to.match(/^\d{4}-01-01$/);
    }
    const patient = current.find((r) => r.resourceType === 'Patient');
    expect(patient).to.not.have.any.keys('name', 'telecom', 'text');
    expect(patient.birthDate).to.equal(record.dates.birthDate.slice(0, 4));
    expect(patient.address).to.deep.equal([{ state: 'MA', postalCode: '010', country: 'US' }]);
    // mothersMaidenName and birthPlace (its city) go; the other extensions stay.
    const urls = patient.extension.map((e: any) => e.url);
    expect(urls).to.not.include('http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName');
    const birthPlace = patient.extension.find((e: any) => e.url === 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace');
    expect(birthPlace.valueAddress).to.deep.equal({ state: 'Massachusetts', country: 'US' });
    expect(urls).to.include('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race');
    for (const r of current.filter((x) => x.resourceType !== 'Patient')) {
      expect(r.subject, `${r.resourceType}.subject`).to.deep.equal({ reference: `Patient/${storedPatientId}` });
    }
  });

  it('the patient is found by its MRN and its SSN, and the record by the EHR patient id', async () => {
    for (const token of [`${record.mrn.system}|${record.mrn.value}`, record.ssn.value]) {
      const res = await server.request('GET', `/fhir/Patient?identifier=${q(token)}`);
      expect(res.status).to.equal(200);
      expect(res.json.entry.map((e: any) => e.resource.id)).to.deep.equal([storedPatientId]);
      assertNoSecret(withoutLinks(res.json), record.identifying, 'search by identifier');
    }
    const observations = await server.request('GET', `/fhir/Patient/${record.patientId}/Observation?_count=1000`);
    expect(observations.json.entry).to.have.length(ENCOUNTERS * OBSERVATIONS_PER_ENCOUNTER);
  });

  it('the same Bundle sent again matches the same resources and writes nothing: one Patient still at versionId 1, nothing duplicated', async () => {
    const res = await server.request('POST', '/fhir', { body: record.bundle });
    expect(res.status, res.text.slice(0, 2000)).to.equal(200);
    for (const e of res.json.entry) expect(e.response.status).to.match(/^200/);
    expect(await count(server, 'Patient')).to.equal(1);
    expect(await count(server, 'Encounter')).to.equal(ENCOUNTERS);
    expect(await count(server, 'Observation')).to.equal(ENCOUNTERS * OBSERVATIONS_PER_ENCOUNTER);
    expect(await count(server, 'Condition')).to.equal(ENCOUNTERS);
    const patient = await server.request('GET', `/fhir/Patient/${record.patientId}`);
    expect(patient.json.id).to.equal(storedPatientId);
    // De-identified again, the content equals what is stored: no-op updates, no new versions.
    expect(patient.json.meta.versionId).to.equal('1');
    for (const id of record.observationIds) {
      const o = await server.request('GET', `/fhir/Observation/${id}`);
      expect(o.json.meta.versionId).to.equal('1');
    }
    const { history } = await storedResources(server, record);
    expect(history).to.have.length(total);
    for (const resource of history) assertNoSecret(JSON.stringify(resource), [...record.identifying, ...dateSecrets(record)], 'history after the resend');
  });

  it('no identifying string or full date in the log, nor in the bytes of the data folder (running, then stopped)', async () => {
    const secrets = [...record.identifying, ...dateSecrets(record)];
    const running = secretsInFiles(dataDir, secrets);
    expect(running.hits, describeHits(running.hits)).to.deep.equal([]);
    await server.close();
    stopped = true;
    const after = secretsInFiles(dataDir, secrets);
    expect(after.hits, describeHits(after.hits)).to.deep.equal([]);
    assertNoSecret(log.text(), secrets, 'the log');
  });
});

describe('an identified Synthea-style record under research (e2e)', function () {
  this.timeout(60_000);
  let server: TestServer;
  let dataDir: string;
  let stopped = false;
  const record = identifiedSyntheaBundle({ encounters: ENCOUNTERS, observationsPerEncounter: OBSERVATIONS_PER_ENCOUNTER });
  /** [original, stored] for every date of the record. */
  let pairs: { element: string; original: string; stored: string }[] = [];

  async function storedDates(): Promise<typeof pairs> {
    const out: typeof pairs = [];
    const cache = new Map<string, any>();
    for (const d of record.dates.all) {
      const key = `${d.resourceType}/${d.id}`;
      if (!cache.has(key)) {
        const res = await server.request('GET', `/fhir/${key}`);
        expect(res.status, res.text).to.equal(200);
        cache.set(key, res.json);
      }
      const stored = at(cache.get(key), d.element);
      expect(stored, `${key} ${d.element}`).to.be.a('string');
      out.push({ element: `${d.resourceType}.${d.element}`, original: d.value, stored: stored as string });
    }
    return out;
  }

  before(async () => {
    dataDir = temporaryDataDir('fhir-ledger-deid-research-');
    server = await startTestServer({ deidMapping: 'research', dataDir });
    const res = await server.request('POST', '/fhir', { body: record.bundle });
    expect(res.status, res.text.slice(0, 2000)).to.equal(200);
    pairs = await storedDates();
  });
  after(async () => {
    if (!stopped) await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('every date of the patient moves by the same non-zero number of days, within ±365, keeping its time and zone', () => {
    expect(pairs.length).to.equal(record.dates.all.length);
    const shifts = new Set(pairs.map((p) => daysBetween(p.original, p.stored)));
    expect([...shifts], 'one shift for the whole record').to.have.length(1);
    const [shift] = [...shifts] as [number];
    expect(shift).to.not.equal(0);
    expect(Math.abs(shift)).to.be.at.most(365);
    for (const p of pairs) {
      expect(p.stored.length, p.element).to.equal(p.original.length);
      expect(p.stored.slice(10), `${p.element}: the time and zone stay as written`).to.equal(p.original.slice(10));
    }
  });

  it('the intervals between the patient\'s dates are preserved exactly: birth → encounter → observation in days, date-times to the millisecond', () => {
    const birth = pairs.find((p) => p.element === 'Patient.birthDate')!;
    const encounters = pairs.filter((p) => p.element === 'Encounter.period.start');
    const observations = pairs.filter((p) => p.element === 'Observation.effectiveDateTime');
    expect(encounters).to.have.length(ENCOUNTERS);
    expect(observations).to.have.length(ENCOUNTERS * OBSERVATIONS_PER_ENCOUNTER);
    for (const e of encounters) {
      expect(daysBetween(birth.stored, e.stored), 'birth → encounter').to.equal(daysBetween(birth.original, e.original));
      for (const o of observations) {
        expect(daysBetween(e.stored, o.stored), 'encounter → observation').to.equal(daysBetween(e.original, o.original));
        expect(daysBetween(birth.stored, o.stored), 'birth → observation').to.equal(daysBetween(birth.original, o.original));
      }
    }
    const timed = pairs.filter((p) => p.original.length > 10);
    for (const a of timed) {
      for (const b of timed) {
        expect(Date.parse(b.stored) - Date.parse(a.stored), `${a.element} → ${b.element}`).to.equal(Date.parse(b.original) - Date.parse(a.original));
      }
    }
  });

  it('no original full date and nothing identifying survives in the stored resources, and the research table is named in meta.tag', async () => {
    const history = await server.request('GET', '/fhir/_history?_count=1000');
    expect(history.json.entry).to.have.length(record.bundle.entry.length);
    for (const e of history.json.entry) {
      assertNoSecret(JSON.stringify(e.resource), [...record.identifying, ...dateSecrets(record)], `stored ${e.resource.resourceType}`);
      expect(e.resource.meta.tag).to.deep.include({ system: TABLE_TAG_SYSTEM, code: sha256Of('research.json'), display: 'research mapping table' });
    }
  });

  it('the same Bundle sent again keeps the same shift: the dates it would store are the ones stored, so nothing is written', async () => {
    const res = await server.request('POST', '/fhir', { body: record.bundle });
    expect(res.status, res.text.slice(0, 2000)).to.equal(200);
    for (const e of res.json.entry) expect(e.response.status).to.match(/^200/);
    const again = await storedDates();
    expect(again).to.deep.equal(pairs);
    expect(await count(server, 'Patient')).to.equal(1);
    expect(await count(server, 'Observation')).to.equal(ENCOUNTERS * OBSERVATIONS_PER_ENCOUNTER);
  });

  it('no original full date nor identifying string in the bytes of the data folder (running, then stopped)', async () => {
    const secrets = [...record.identifying, ...dateSecrets(record)];
    const running = secretsInFiles(dataDir, secrets);
    expect(running.hits, describeHits(running.hits)).to.deep.equal([]);
    await server.close();
    stopped = true;
    const after = secretsInFiles(dataDir, secrets);
    expect(after.hits, describeHits(after.hits)).to.deep.equal([]);
  });
});
