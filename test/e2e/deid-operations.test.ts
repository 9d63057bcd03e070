/**
 * $deidentify (a preview that stores nothing) and $reidentify (only with the scope, every call
 * audited), on the real server with the safe-harbor table and a real vault file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { REIDENTIFY_SCOPE } from '../../src/auth/bearer-tokens.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const SECRET = 'a-test-secret-of-at-least-thirty-two-bytes!';
const MRN_SYSTEM = 'http://hospital.example/mrn';

async function token(scope: string, options: { secret?: string; expiresIn?: string; subject?: string } = {}): Promise<string> {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.subject ?? 'dr-audit')
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

/** Files under `dir` (every file of the data folder: databases, WAL files, the vault) whose bytes contain `text`. */
function filesContaining(dir: string, text: string): string[] {
  const needle = Buffer.from(text, 'utf8');
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => fs.readFileSync(file).includes(needle));
}

/** Whole days from date a to date b (YYYY-MM-DD or a dateTime). */
function daysBetween(a: string, b: string): number {
  return (Date.parse(b) - Date.parse(a)) / 86_400_000;
}

function identifiedPatient(ehrId: string, mrn: string) {
  return {
    resourceType: 'Patient', id: ehrId,
    identifier: [{ system: MRN_SYSTEM, value: mrn }],
    name: [{ family: 'Quxworthy', given: ['Zebulon'] }],
    telecom: [{ system: 'phone', value: '555-0199' }],
    birthDate: '1961-04-12',
    address: [{ line: ['12 Elm Street'], city: 'Springfield', state: 'MA', postalCode: '01103' }],
  };
}

describe('de-identification operations (real server, safe-harbor, real vault)', function () {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ deidMapping: 'safe-harbor', authJwtSecret: SECRET });
  });
  after(async () => server.stop());

  describe('$deidentify', () => {
    it('returns what would be stored for a resource, and stores nothing', async () => {
      const res = await server.request('POST', '/fhir/$deidentify', { body: identifiedPatient('ehr-preview-1', 'MRN-P-1') });
      expect(res.status).to.equal(200);
      const text = res.text;
      for (const identifying of ['Quxworthy', 'Zebulon', '555-0199', '12 Elm Street', 'Springfield', 'MRN-P-1', '1961-04-12', 'ehr-preview-1']) {
        expect(text).not.to.include(identifying);
      }
      expect(res.json.birthDate).to.equal('1961');
      expect(res.json.address[0]).to.deep.equal({ state: 'MA', postalCode: '011' });
      expect(res.json.identifier[0].system).to.equal(MRN_SYSTEM);
      const search = await server.request('GET', '/fhir/Patient?_summary=count');
      expect(search.json.total).to.equal(0);
      // Nothing went into the vault either: the MRN finds nothing and a later write gets a fresh pseudonym.
      const byMrn = await server.request('GET', `/fhir/Patient?identifier=${encodeURIComponent(`${MRN_SYSTEM}|MRN-P-1`)}`);
      expect(byMrn.json.total ?? byMrn.json.entry?.length ?? 0).to.equal(0);
    });

    it('gives the resources of a Bundle consistent pseudonyms (a reference follows its patient)', async () => {
      const bundle = {
        resourceType: 'Bundle', type: 'collection',
        entry: [
          { fullUrl: 'http://ehr.example/fhir/Patient/ehr-b-1', resource: identifiedPatient('ehr-b-1', 'MRN-B-1') },
          { resource: { resourceType: 'Observation', id: 'ehr-obs-1', status: 'final', code: { text: 'weight' }, subject: { reference: 'Patient/ehr-b-1', display: 'Zebulon Quxworthy' }, effectiveDateTime: '2023-05-06T07:08:09Z', valueQuantity: { value: 70, unit: 'kg' } } },
        ],
      };
      const res = await server.request('POST', '/fhir/$deidentify', { body: bundle });
      expect(res.status).to.equal(200);
      const [patient, observation] = res.json.entry.map((e: { resource: { id: string } }) => e.resource);
      expect(patient.id).not.to.equal('ehr-b-1');
      expect(observation.subject).to.deep.equal({ reference: `Patient/${patient.id}` });
      expect(observation.effectiveDateTime).to.equal('2023');
      expect(res.text).not.to.include('ehr-b-1');
      expect(res.text).not.to.include('Quxworthy');
    });

    it('uses the pseudonyms the vault already holds', async () => {
      const put = await server.request('PUT', '/fhir/Patient/ehr-known-1', { body: identifiedPatient('ehr-known-1', 'MRN-K-1') });
      expect(put.status).to.equal(201);
      const preview = await server.request('POST', '/fhir/$deidentify', { body: identifiedPatient('ehr-known-1', 'MRN-K-1') });
      expect(preview.json.id).to.equal(put.json.id);
      expect(preview.json.identifier[0].value).to.equal(put.json.identifier[0].value);
    });

    it('refuses invalid input with 422 and echoes none of it', async () => {
      const res = await server.request('POST', '/fhir/$deidentify', { body: { resourceType: 'Patient', birthDate: 'Quxworthy-not-a-date' } });
      expect(res.status).to.equal(422);
      expect(res.json.resourceType).to.equal('OperationOutcome');
      expect(res.text).not.to.include('Quxworthy');
    });
  });

  describe('$reidentify', () => {
    let storedId: string;

    before(async () => {
      const put = await server.request('PUT', '/fhir/Patient/ehr-reid-1', { body: identifiedPatient('ehr-reid-1', 'MRN-R-1') });
      expect(put.status).to.equal(201);
      storedId = put.json.id;
      const obs = await server.request('PUT', '/fhir/Observation/ehr-reid-obs', { body: {
        resourceType: 'Observation', id: 'ehr-reid-obs', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/ehr-reid-1' }, valueQuantity: { value: 1 },
      } });
      expect(obs.status).to.equal(201);
    });

    async function auditEvents(): Promise<any[]> {
      const res = await server.request('GET', `/fhir/AuditEvent?entity=${encodeURIComponent(`Patient/${storedId}`)}&_count=100`);
      expect(res.status).to.equal(200);
      return (res.json.entry ?? []).map((e: { resource: unknown }) => e.resource);
    }

    it('puts back the id and the identifiers for a token with the scope, and audits it', async () => {
      const before = (await auditEvents()).length;
      const res = await server.request('GET', '/fhir/Patient/ehr-reid-1/$reidentify', {
        headers: { authorization: `Bearer ${await token(`patient/*.read ${REIDENTIFY_SCOPE}`)}` },
      });
      expect(res.status).to.equal(200);
      expect(res.json.id).to.equal('ehr-reid-1');
      expect(res.json.identifier[0]).to.include({ system: MRN_SYSTEM, value: 'MRN-R-1' });
      // Redacted content does not come back: it was never stored.
      expect(res.json.name).to.equal(undefined);
      const events = await auditEvents();
      expect(events.length).to.equal(before + 1);
      const last = events.find((e) => e.outcome === '0');
      expect(last.agent[0].altId).to.equal('dr-audit');
      expect(last.subtype[0].code).to.equal('reidentify');
    });

    it('restores references to client ids', async () => {
      const res = await server.request('GET', '/fhir/Observation/ehr-reid-obs/$reidentify', {
        headers: { authorization: `Bearer ${await token(REIDENTIFY_SCOPE)}` },
      });
      expect(res.status).to.equal(200);
      expect(res.json.subject.reference).to.equal('Patient/ehr-reid-1');
    });

    const refusals: [string, () => Promise<Record<string, string>>, number][] = [
      ['no token', async () => ({}), 401],
      ['a token without the scope', async () => ({ authorization: `Bearer ${await token('patient/*.read')}` }), 403],
      ['a token signed with another key', async () => ({ authorization: `Bearer ${await token(REIDENTIFY_SCOPE, { secret: 'another-secret-of-at-least-thirty-two-bytes' })}` }), 401],
      ['an expired token', async () => ({ authorization: `Bearer ${await token(REIDENTIFY_SCOPE, { expiresIn: '-10m' })}` }), 401],
      ['a malformed header', async () => ({ authorization: 'Bearer not-a-jwt' }), 401],
    ];
    for (const [what, headers, status] of refusals) {
      it(`refuses ${what} with ${status}, reveals nothing, and audits the refusal`, async () => {
        const before = (await auditEvents()).length;
        const res = await server.request('GET', '/fhir/Patient/ehr-reid-1/$reidentify', { headers: await headers() });
        expect(res.status).to.equal(status);
        expect(res.json.resourceType).to.equal('OperationOutcome');
        expect(res.text).not.to.include('MRN-R-1');
        if (status === 401) expect(res.headers.get('www-authenticate')).to.match(/^Bearer/);
        const events = await auditEvents();
        expect(events.length).to.equal(before + 1);
        expect(events.some((e) => e.outcome === '4')).to.equal(true);
      });
    }

    it('answers 404 for an unknown resource (and audits it)', async () => {
      const res = await server.request('GET', '/fhir/Patient/nobody-here/$reidentify', {
        headers: { authorization: `Bearer ${await token(REIDENTIFY_SCOPE)}` },
      });
      expect(res.status).to.equal(404);
    });

    it('audits calls naming a client id the server never stored without storing that id, nor who a scope-less caller is or where from', async () => {
      const before = (await server.request('GET', '/fhir/AuditEvent?_count=1000')).json.entry?.length ?? 0;
      const noToken = await server.request('GET', '/fhir/Patient/ehr-5555/$reidentify');
      expect(noToken.status).to.equal(401);
      const patientApp = await server.request('GET', '/fhir/Patient/ehr-5555/$reidentify', {
        headers: { authorization: `Bearer ${await token('patient/*.read', { subject: 'patient-app-user-7777' })}` },
      });
      expect(patientApp.status).to.equal(403);
      const granted = await server.request('GET', '/fhir/Patient/ehr-5555/$reidentify', {
        headers: { authorization: `Bearer ${await token(REIDENTIFY_SCOPE)}` },
      });
      expect(granted.status).to.equal(404);
      const events = (await server.request('GET', '/fhir/AuditEvent?_count=1000&_sort=-_lastUpdated')).json.entry
        .map((e: { resource: any }) => e.resource);
      expect(events.length).to.equal(before + 3);
      // All three are audited, none names a resource (the id names nothing stored).
      const latest = events.filter((e: any) => e.entity.every((x: any) => x.what === undefined));
      expect(latest.length).to.be.at.least(3);
      const byOutcome = (altId: (a: string) => boolean) => latest.filter((e: any) => altId(e.agent[0].altId));
      expect(byOutcome((a) => a === 'anonymous')).to.have.length.at.least(1);
      // The scope-less token's subject (perhaps a patient) and address are kept only as keyed hashes.
      const hashed = byOutcome((a) => a.startsWith('hmac-sha256:'));
      expect(hashed).to.have.length.at.least(1);
      expect(hashed[0].agent[0].network.address).to.match(/^hmac-sha256:[0-9a-f]{64}$/);
      for (const text of ['ehr-5555', 'nobody-here', 'patient-app-user-7777']) {
        expect(filesContaining(server.dataDir, text), text).to.deep.equal([]);
      }
    });
  });

  it('hierarchy searches by an EHR\'s own ids go through the vault (partof:below)', async () => {
    const location = (id: string, partOf?: string) => ({
      resourceType: 'Location', id, name: `Site ${id}`, ...(partOf ? { partOf: { reference: `Location/${partOf}` } } : {}),
    });
    for (const [id, parent] of [['ehr-campus', undefined], ['ehr-building', 'ehr-campus'], ['ehr-ward', 'ehr-building']] as const) {
      expect((await server.request('PUT', `/fhir/Location/${id}`, { body: location(id, parent) })).status).to.equal(201);
    }
    const below = await server.request('GET', '/fhir/Location?partof:below=Location/ehr-campus');
    expect(below.status).to.equal(200);
    expect(below.json.entry).to.have.length(2);
    const bare = await server.request('GET', '/fhir/Location?partof:below=ehr-campus');
    expect(bare.json.entry).to.have.length(2);
  });

  it('the CapabilityStatement names the table in force and lists the operations', async () => {
    const res = await server.request('GET', '/fhir/metadata');
    expect(res.json.description).to.include("'safe-harbor' mapping table");
    expect(res.json.rest[0].operation.map((o: { name: string }) => o.name)).to.include('deidentify');
    expect(res.json.rest[0].resource[0].operation.map((o: { name: string }) => o.name)).to.include('reidentify');
  });
});

describe('$deidentify under the research table (dates shifted per patient)', function () {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ deidMapping: 'research' });
  });
  after(async () => server.stop());

  const observation = (id: string, patient: string, date: string) => ({
    resourceType: 'Observation', id, status: 'final', code: { text: 'weight' }, subject: { reference: `Patient/${patient}` },
    effectiveDateTime: date, valueQuantity: { value: 70, unit: 'kg' },
  });

  it('shows the dates the store holds for the resources of an already stored patient', async () => {
    expect((await server.request('PUT', '/fhir/Patient/ehr-r-1', { body: { resourceType: 'Patient', id: 'ehr-r-1', birthDate: '1980-05-06' } })).status).to.equal(201);
    const storedObs = await server.request('PUT', '/fhir/Observation/ehr-r-obs-1', { body: observation('ehr-r-obs-1', 'ehr-r-1', '2020-07-08') });
    expect(storedObs.status).to.equal(201);
    const storedPatient = (await server.request('GET', '/fhir/Patient/ehr-r-1')).json;
    expect(storedPatient.birthDate).not.to.equal('1980-05-06');

    const patient = await server.request('POST', '/fhir/$deidentify', { body: { resourceType: 'Patient', id: 'ehr-r-1', birthDate: '1980-05-06' } });
    expect(patient.json.id).to.equal(storedPatient.id);
    expect(patient.json.birthDate).to.equal(storedPatient.birthDate);
    const obs = await server.request('POST', '/fhir/$deidentify', { body: observation('ehr-r-obs-2', 'ehr-r-1', '2020-07-08') });
    expect(obs.json.subject.reference).to.equal(`Patient/${storedPatient.id}`);
    expect(obs.json.effectiveDateTime).to.equal(storedObs.json.effectiveDateTime);

    // A server-assigned id (POST) is a stored id: the preview uses it and its patient's offset.
    const posted = await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', birthDate: '1970-01-01' } });
    const storedByServerId = await server.request('PUT', '/fhir/Observation/ehr-r-obs-3', { body: observation('ehr-r-obs-3', posted.json.id, '2019-02-03') });
    const byServerId = await server.request('POST', '/fhir/$deidentify', { body: observation('ehr-r-obs-4', posted.json.id, '2019-02-03') });
    expect(byServerId.json.subject.reference).to.equal(`Patient/${posted.json.id}`);
    expect(byServerId.json.effectiveDateTime).to.equal(storedByServerId.json.effectiveDateTime);
  });

  it('keeps a patient\'s intervals exactly across the entries of a Bundle, and stored patients\' dates as stored', async () => {
    const stored = await server.request('PUT', '/fhir/Observation/ehr-r-obs-5', { body: observation('ehr-r-obs-5', 'ehr-r-1', '2021-01-01') });
    expect(stored.status).to.equal(201);
    const bundle = {
      resourceType: 'Bundle', type: 'transaction', timestamp: '2024-03-04T05:06:07Z',
      entry: [
        // The Observation before its Patient: order must not matter.
        { fullUrl: 'urn:uuid:5f0c2a4e-1b7d-4c3e-9a51-0d1e2f3a4b5c', resource: observation('ehr-b-obs-2', 'p1', '1990-01-12'), request: { method: 'PUT', url: 'Observation/ehr-b-obs-2' } },
        { resource: { resourceType: 'Patient', id: 'p1', birthDate: '1990-01-02' }, request: { method: 'PUT', url: 'Patient/p1' } },
        { resource: observation('ehr-b-obs-1', 'p1', '1990-01-02'), request: { method: 'PUT', url: 'Observation/ehr-b-obs-1' } },
        { resource: observation('ehr-b-obs-6', 'ehr-r-1', '2021-01-01'), request: { method: 'PUT', url: 'Observation/ehr-b-obs-6' } },
      ],
    };
    const res = await server.request('POST', '/fhir/$deidentify', { body: bundle });
    expect(res.status, res.text).to.equal(200);
    expect(res.json.type).to.equal('collection');
    const [obs2, patient, obs1, known] = res.json.entry.map((e: { resource: any }) => e.resource);
    expect(patient.resourceType).to.equal('Patient');
    expect(obs1.subject.reference).to.equal(`Patient/${patient.id}`);
    expect(obs2.subject.reference).to.equal(`Patient/${patient.id}`);
    expect(patient.birthDate).not.to.equal('1990-01-02');
    expect(daysBetween(patient.birthDate, obs1.effectiveDateTime)).to.equal(0);
    expect(daysBetween(patient.birthDate, obs2.effectiveDateTime)).to.equal(10);
    expect(known.effectiveDateTime).to.equal(stored.json.effectiveDateTime);
    expect(res.text).not.to.match(/ehr-b-|"p1"|1990-01-02|1990-01-12/);
    // Nothing was stored.
    expect((await server.request('GET', '/fhir/Observation/ehr-b-obs-1')).status).to.equal(404);
  });
});

describe('CapabilityStatement with DEID_MAPPING=none', () => {
  it('warns that identifiers are stored', async () => {
    const server = await startTestServer({ deidMapping: 'none' });
    try {
      const res = await server.request('GET', '/fhir/metadata');
      expect(res.json.description).to.include('de-identification is OFF');
      expect(res.json.rest[0].resource[0].operation.map((o: { name: string }) => o.name)).not.to.include('reidentify');
    } finally {
      await server.stop();
    }
  });
});
