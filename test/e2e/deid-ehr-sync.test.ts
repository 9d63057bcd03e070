/**
 * The EHR workflow under the Safe Harbor table, through the real server (fetch and
 * fhir-kit-client): an EHR keeps using its own ids and MRNs while the server stores pseudonyms.
 *
 *  - PUT Patient/<ehr-id> with an MRN; GET Patient/<ehr-id> finds it under another stored id,
 *    with no MRN in clear;
 *  - PUT Observation/<ehr-obs-id> with subject Patient/<ehr-id>: found by subject=Patient/<ehr-id>,
 *    patient=<ehr-id>, Patient/<ehr-id>/Observation (and the other reference search forms);
 *  - conditional update PUT Patient?identifier=<system>|<mrn> → 200 on the same patient;
 *    POST with If-None-Exist identifier=<system>|<mrn> → 200, no second patient;
 *    GET Patient?identifier=<mrn> without a system finds it;
 *  - an Observation sent before its Patient links to the pseudonym the later PUT Patient gets;
 *  - server-assigned ids (POST) keep working in references, unchanged;
 *  - DELETE Patient/<ehr-id> → later GET → 410.
 *
 * The last blocks: a reference the table cannot pseudonymize (a conditional reference outside a
 * transaction, an id that is not an R4 id) is refused with 422 rather than stored in clear; and
 * every search form that reaches a resource through an identifier or a client id answers what a
 * server storing as sent answers.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Client } from 'fhir-kit-client';
import { memoryLogger } from '../support/leak-scan.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const MRN_SYSTEM = 'http://ehr.example.org/fhir/sid/mrn';
const q = encodeURIComponent;
const digits = (n: number) => Array.from({ length: n }, () => randomInt(10)).join('');

const patientBody = (id: string | undefined, mrn: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  ...(id !== undefined ? { id } : {}),
  identifier: [{ system: MRN_SYSTEM, value: mrn }],
  name: [{ family: 'Okafor', given: ['Adaeze'] }],
  gender: 'female',
  birthDate: '1974-06-15',
  ...extra,
});

const observationBody = (id: string | undefined, subject: string) => ({
  resourceType: 'Observation',
  ...(id !== undefined ? { id } : {}),
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: subject },
  effectiveDateTime: '2021-03-04T10:11:12Z',
  valueQuantity: { value: 71, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

const ids = (bundle: any): string[] => (bundle?.entry ?? []).map((e: any) => e.resource.id);

describe('EHR synchronisation with client ids and MRNs under safe-harbor (e2e)', function () {
  this.timeout(60_000);
  let server: TestServer;
  let client: Client;
  const log = memoryLogger('info');

  const EHR_ID = `ehr-pat-${digits(10)}`;
  const MRN = `MRN${digits(9)}`;
  const EHR_OBS_ID = `ehr-obs-${digits(10)}`;
  let storedPatientId: string;
  let storedObservationId: string;

  async function patientCount(): Promise<number> {
    const res = await server.request('GET', '/fhir/Patient?_summary=count');
    return res.json.total;
  }

  before(async () => {
    server = await startTestServer({ deidMapping: 'safe-harbor' }, log.logger);
    client = new Client({ baseUrl: server.baseUrl });
  });
  after(async () => server.stop());

  it('PUT Patient/<ehr-id> creates it; GET Patient/<ehr-id> finds it under another stored id, without the MRN in clear', async () => {
    const put = await server.request('PUT', `/fhir/Patient/${EHR_ID}`, { body: patientBody(EHR_ID, MRN) });
    expect(put.status, put.text).to.equal(201);
    storedPatientId = put.json.id;
    expect(storedPatientId).to.be.a('string').and.not.equal(EHR_ID);
    expect(put.headers.get('location')).to.equal(`${server.baseUrl}/Patient/${storedPatientId}/_history/1`);

    const read = await client.read({ resourceType: 'Patient', id: EHR_ID }) as any;
    expect(read.id).to.equal(storedPatientId);
    expect(read.identifier).to.have.length(1);
    expect(read.identifier[0].system).to.equal(MRN_SYSTEM);
    expect(read.identifier[0].value).to.be.a('string').and.not.equal(MRN);
    const text = JSON.stringify(read);
    for (const clear of [MRN, EHR_ID, 'Okafor', 'Adaeze', '1974-06-15']) expect(text).to.not.include(clear);

    // The stored id reads too (what a consumer of the de-identified data has).
    const byStoredId = await server.request('GET', `/fhir/Patient/${storedPatientId}`);
    expect(byStoredId.status).to.equal(200);
    expect(byStoredId.json).to.deep.equal(read);
  });

  it('PUT Observation/<ehr-obs-id> referencing Patient/<ehr-id> is found by every form of the patient reference', async () => {
    const put = await server.request('PUT', `/fhir/Observation/${EHR_OBS_ID}`, { body: observationBody(EHR_OBS_ID, `Patient/${EHR_ID}`) });
    expect(put.status, put.text).to.equal(201);
    storedObservationId = put.json.id;
    expect(storedObservationId).to.not.equal(EHR_OBS_ID);
    expect(put.json.subject).to.deep.equal({ reference: `Patient/${storedPatientId}` });

    for (const query of [
      `subject=${q(`Patient/${EHR_ID}`)}`,
      `patient=${q(EHR_ID)}`,
      `patient=${q(`Patient/${EHR_ID}`)}`,
      `subject:Patient=${q(EHR_ID)}`,
      `subject=${q(EHR_ID)}`,
      `subject=${q(`${server.baseUrl}/Patient/${EHR_ID}`)}`,
      `subject=${q(`Patient/${storedPatientId}`)}`,
      `_id=${q(EHR_OBS_ID)}`,
    ]) {
      const res = await server.request('GET', `/fhir/Observation?${query}`);
      expect(res.status, `${query}: ${res.text}`).to.equal(200);
      expect(ids(res.json), query).to.deep.equal([storedObservationId]);
    }
    const compartment = await server.request('GET', `/fhir/Patient/${EHR_ID}/Observation`);
    expect(compartment.status, compartment.text).to.equal(200);
    expect(ids(compartment.json)).to.deep.equal([storedObservationId]);

    const viaClient = await client.compartmentSearch({ resourceType: 'Observation', compartment: { resourceType: 'Patient', id: EHR_ID } }) as any;
    expect(ids(viaClient)).to.deep.equal([storedObservationId]);
    const searched = await client.search({ resourceType: 'Observation', searchParams: { patient: EHR_ID, _include: 'Observation:subject' } }) as any;
    expect(searched.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`))
      .to.have.members([`Observation/${storedObservationId}`, `Patient/${storedPatientId}`]);

    const read = await client.read({ resourceType: 'Observation', id: EHR_OBS_ID }) as any;
    expect(read.id).to.equal(storedObservationId);
    const again = await server.request('PUT', `/fhir/Observation/${EHR_OBS_ID}`, { body: { ...observationBody(EHR_OBS_ID, `Patient/${EHR_ID}`), status: 'amended' } });
    expect(again.status, again.text).to.equal(200);
    expect(again.json.id).to.equal(storedObservationId);
    expect(again.json.meta.versionId).to.equal('2');
  });

  it('PUT Patient?identifier=<system>|<mrn> updates the same patient: 200, not 201', async () => {
    const res = await server.request('PUT', `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`, {
      body: patientBody(undefined, MRN, { gender: 'other' }),
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.json.id).to.equal(storedPatientId);
    expect(res.json.meta.versionId).to.equal('2');
    expect(res.json.gender).to.equal('other');

    // The same through fhir-kit-client's conditional update, with the EHR id in the body.
    const viaClient = await client.update({
      resourceType: 'Patient', searchParams: { identifier: `${MRN_SYSTEM}|${MRN}` }, body: patientBody(EHR_ID, MRN, { gender: 'female' }),
    }) as any;
    expect(viaClient.id).to.equal(storedPatientId);
    expect(viaClient.meta.versionId).to.equal('3');
    expect(await patientCount()).to.equal(1);
  });

  it('POST with If-None-Exist: identifier=<system>|<mrn> matches the existing patient: 200, no second patient', async () => {
    const res = await server.request('POST', '/fhir/Patient', {
      body: patientBody(undefined, MRN), headers: { 'If-None-Exist': `identifier=${q(`${MRN_SYSTEM}|${MRN}`)}` },
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.json.id).to.equal(storedPatientId);
    expect(res.json.meta.versionId).to.equal('3');
    expect(await patientCount()).to.equal(1);

    // Inside a transaction too.
    const tx = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [{
        fullUrl: `urn:uuid:${randomUUID()}`, resource: patientBody(undefined, MRN),
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN_SYSTEM}|${MRN}` },
      }],
    } });
    expect(tx.status, tx.text).to.equal(200);
    expect(tx.json.entry[0].response.status).to.match(/^200/);
    expect(await patientCount()).to.equal(1);
  });

  it('GET Patient?identifier=<mrn> without a system finds it', async () => {
    const res = await server.request('GET', `/fhir/Patient?identifier=${q(MRN)}`);
    expect(res.status).to.equal(200);
    expect(ids(res.json)).to.deep.equal([storedPatientId]);
    const viaClient = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${MRN_SYSTEM}|${MRN}` } }) as any;
    expect(ids(viaClient)).to.deep.equal([storedPatientId]);
    const unknown = await server.request('GET', `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|MRN${digits(9)}`)}`);
    expect(ids(unknown.json)).to.deep.equal([]);
  });

  it('an Observation sent before its Patient links to the same pseudonym the later PUT Patient gets', async () => {
    const ehrId = `ehr-pat-${digits(10)}`;
    const obsId = `ehr-obs-${digits(10)}`;
    const first = await server.request('PUT', `/fhir/Observation/${obsId}`, { body: observationBody(obsId, `Patient/${ehrId}`) });
    expect(first.status, first.text).to.equal(201);
    const referenced = /^Patient\/([0-9a-f-]{36})$/.exec(first.json.subject.reference)?.[1];
    expect(referenced, first.json.subject.reference).to.be.a('string').and.not.equal(ehrId);

    const patient = await server.request('PUT', `/fhir/Patient/${ehrId}`, { body: patientBody(ehrId, `MRN${digits(9)}`) });
    expect(patient.status, patient.text).to.equal(201);
    expect(patient.json.id).to.equal(referenced);
    const compartment = await server.request('GET', `/fhir/Patient/${ehrId}/Observation`);
    expect(ids(compartment.json)).to.deep.equal([first.json.id]);

    // The same order inside one transaction: the Observation entry first, the Patient after it.
    const ehrId2 = `ehr-pat-${digits(10)}`;
    const obsId2 = `ehr-obs-${digits(10)}`;
    const tx = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: observationBody(obsId2, `Patient/${ehrId2}`), request: { method: 'PUT', url: `Observation/${obsId2}` } },
        { resource: patientBody(ehrId2, `MRN${digits(9)}`), request: { method: 'PUT', url: `Patient/${ehrId2}` } },
      ],
    } });
    expect(tx.status, tx.text).to.equal(200);
    const storedObs = await server.request('GET', `/fhir/Observation/${obsId2}`);
    const storedPat = await server.request('GET', `/fhir/Patient/${ehrId2}`);
    expect(storedObs.json.subject.reference).to.equal(`Patient/${storedPat.json.id}`);
    expect(storedPat.json.id).to.not.equal(ehrId2);
  });

  it('server-assigned ids (POST) keep working in references: the stored reference is the id as sent', async () => {
    const patient = await server.request('POST', '/fhir/Patient', { body: patientBody(undefined, `MRN${digits(9)}`) });
    expect(patient.status, patient.text).to.equal(201);
    const serverId: string = patient.json.id;
    const obs = await server.request('POST', '/fhir/Observation', { body: observationBody(undefined, `Patient/${serverId}`) });
    expect(obs.status, obs.text).to.equal(201);
    expect(obs.json.subject).to.deep.equal({ reference: `Patient/${serverId}` });
    for (const url of [`/fhir/Observation?subject=Patient/${serverId}`, `/fhir/Observation?patient=${serverId}`, `/fhir/Patient/${serverId}/Observation`]) {
      const res = await server.request('GET', url);
      expect(ids(res.json), url).to.deep.equal([obs.json.id]);
    }
    // Updating by the server-assigned id updates that resource; no pseudonym of it is made.
    const update = await server.request('PUT', `/fhir/Patient/${serverId}`, { body: { ...patient.json, gender: 'male' } });
    expect(update.status, update.text).to.equal(200);
    expect(update.json.id).to.equal(serverId);
    expect(update.json.meta.versionId).to.equal('2');
    const obsUpdate = await server.request('PUT', `/fhir/Observation/${obs.json.id}`, { body: { ...obs.json, status: 'amended' } });
    expect(obsUpdate.status, obsUpdate.text).to.equal(200);
    expect(obsUpdate.json.id).to.equal(obs.json.id);
    expect(obsUpdate.json.subject).to.deep.equal({ reference: `Patient/${serverId}` });

    // A transaction's POST entries: references by urn:uuid become the ids the server assigned.
    const patientUrl = `urn:uuid:${randomUUID()}`;
    const tx = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: patientUrl, resource: patientBody(undefined, `MRN${digits(9)}`), request: { method: 'POST', url: 'Patient' } },
        { resource: observationBody(undefined, patientUrl), request: { method: 'POST', url: 'Observation' } },
      ],
    } });
    expect(tx.status, tx.text).to.equal(200);
    const txPatientId = /Patient\/([^/]+)\/_history/.exec(tx.json.entry[0].response.location)![1]!;
    const txObsId = /Observation\/([^/]+)\/_history/.exec(tx.json.entry[1].response.location)![1]!;
    const txObs = await server.request('GET', `/fhir/Observation/${txObsId}`);
    expect(txObs.json.subject).to.deep.equal({ reference: `Patient/${txPatientId}` });
  });

  it('DELETE Patient/<ehr-id> → a later GET answers 410, the MRN finds nothing, and a new PUT re-creates it under the same stored id', async () => {
    const del = await server.request('DELETE', `/fhir/Patient/${EHR_ID}`);
    expect(del.status, del.text).to.equal(204);
    for (const id of [EHR_ID, storedPatientId]) {
      const read = await server.request('GET', `/fhir/Patient/${id}`);
      expect(read.status, read.text).to.equal(410);
    }
    const byMrn = await server.request('GET', `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`);
    expect(ids(byMrn.json)).to.deep.equal([]);
    const history = await server.request('GET', `/fhir/Patient/${EHR_ID}/_history`);
    expect(history.status).to.equal(200);
    expect(history.json.total).to.equal(4);
    expect(history.json.entry[0].request.method).to.equal('DELETE');

    const again = await server.request('PUT', `/fhir/Patient/${EHR_ID}`, { body: patientBody(EHR_ID, MRN) });
    expect(again.status, again.text).to.equal(201);
    expect(again.json.id).to.equal(storedPatientId);
    expect(again.json.meta.versionId).to.equal('5');
  });

  it('no request log line names an EHR id or the MRN', () => {
    const text = log.text();
    expect(log.lines().length).to.be.greaterThan(20);
    for (const clear of [EHR_ID, EHR_OBS_ID, MRN]) expect(text).to.not.include(clear);
  });
});

describe('references the de-identification cannot parse are refused, not stored in clear (e2e)', function () {
  this.timeout(60_000);
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ deidMapping: 'safe-harbor' });
  });
  after(async () => server.stop());

  it('a conditional reference sent outside a transaction (Patient?identifier=<system>|<mrn>) does not store the MRN in clear', async () => {
    const mrn = `MRN${digits(9)}`;
    const res = await server.request('POST', '/fhir/Observation', {
      body: observationBody(undefined, `Patient?identifier=${MRN_SYSTEM}|${mrn}`),
    });
    expect(res.status).to.equal(422);
    expect(res.json.issue[0].expression).to.deep.equal(['Observation.subject']);
    expect(res.text, 'the OperationOutcome').to.not.include(mrn);
    const all = await server.request('GET', '/fhir/Observation?_count=1000');
    expect(all.text, 'the store').to.not.include(mrn);
  });

  it('a reference whose id is not a FHIR id (Patient/<mrn with an underscore>) is not stored verbatim', async () => {
    const mrn = `MRN_${digits(9)}`;
    const res = await server.request('POST', '/fhir/Observation', { body: observationBody(undefined, `Patient/${mrn}`) });
    expect(res.status).to.equal(422);
    expect(res.json.issue[0].expression).to.deep.equal(['Observation.subject']);
    expect(res.text, 'the OperationOutcome').to.not.include(mrn);
    const all = await server.request('GET', '/fhir/Observation?_count=1000');
    expect(all.text, 'the store').to.not.include(mrn);
  });
});

/**
 * Search forms that reach a resource through an identifier or a client id. Each query runs on two
 * servers holding the same data, one storing as sent (DEID_MAPPING=none) and one under
 * safe-harbor: the de-identified store must answer what the identified one answers.
 *
 * Translated: `identifier:of-type=<type system>|<type code>|<value>`, reverse chains
 * `_has:Observation:patient:identifier=…` and `_has:…:_id=<client id>`, typed chains
 * `subject:Patient.identifier=…`, chained ids `patient._id=<client id>`.
 */
describe('search forms through identifiers and client ids: the same answers as without de-identification (e2e)', function () {
  this.timeout(60_000);
  const servers: Record<'none' | 'safe-harbor', TestServer | undefined> = { none: undefined, 'safe-harbor': undefined };
  const MRN = `MRN${digits(9)}`;
  const OBS_IDENTIFIER = `LAB${digits(9)}`;
  const PATIENT_ID = `ehr-pat-${digits(10)}`;
  const OBS_ID = `ehr-obs-${digits(10)}`;
  const V2 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
  /** resourceType/stored id of the Patient and the Observation, per server. */
  const stored: Record<string, { patient: string; observation: string }> = {};

  before(async () => {
    for (const mapping of ['none', 'safe-harbor'] as const) {
      const server = await startTestServer({ deidMapping: mapping });
      servers[mapping] = server;
      const p = await server.request('PUT', `/fhir/Patient/${PATIENT_ID}`, { body: {
        ...patientBody(PATIENT_ID, MRN), identifier: [{ type: { coding: [{ system: V2, code: 'MR' }] }, system: MRN_SYSTEM, value: MRN }],
      } });
      expect(p.status, p.text).to.equal(201);
      const o = await server.request('PUT', `/fhir/Observation/${OBS_ID}`, { body: {
        ...observationBody(OBS_ID, `Patient/${PATIENT_ID}`), identifier: [{ system: 'urn:oid:1.2.3.4.5', value: OBS_IDENTIFIER }],
      } });
      expect(o.status, o.text).to.equal(201);
      stored[mapping] = { patient: `Patient/${p.json.id}`, observation: `Observation/${o.json.id}` };
    }
  });
  after(async () => {
    for (const server of Object.values(servers)) await server?.stop();
  });

  const cases: { query: string; finds: 'patient' | 'observation' }[] = [
    { query: `Patient?identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`, finds: 'patient' },
    { query: `Patient?identifier=${q(MRN)}`, finds: 'patient' },
    { query: `Observation?patient.identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`, finds: 'observation' },
    { query: `Patient?identifier:of-type=${q(`${V2}|MR|${MRN}`)}`, finds: 'patient' },
    { query: `Observation?subject:Patient.identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`, finds: 'observation' },
    { query: `Observation?patient._id=${PATIENT_ID}`, finds: 'observation' },
    { query: `Observation?subject:Patient._id=${PATIENT_ID}`, finds: 'observation' },
    { query: `Patient?_has:Observation:patient:identifier=${q(`urn:oid:1.2.3.4.5|${OBS_IDENTIFIER}`)}`, finds: 'patient' },
    { query: `Patient?_has:Observation:patient:_id=${OBS_ID}`, finds: 'patient' },
  ];
  for (const c of cases) {
    it(`${decodeURIComponent(c.query).replace(/[0-9]{9,}/g, '…')} finds the ${c.finds}`, async () => {
      for (const mapping of ['none', 'safe-harbor'] as const) {
        const res = await servers[mapping]!.request('GET', `/fhir/${c.query}`);
        expect(res.status, `${mapping}: ${res.text}`).to.equal(200);
        const found = (res.json.entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
        expect(found, `DEID_MAPPING=${mapping}`).to.deep.equal([stored[mapping]![c.finds]]);
      }
    });
  }
});
