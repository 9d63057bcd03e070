/**
 * $deidentify (a preview that stores nothing) and $reidentify (only with the scope, every call
 * audited), on the real server with the safe-harbor table and a real vault file.
 */
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
