/**
 * batch and transaction bundles (FHIR R4 http.html#transaction) end to end.
 */
import { expect } from 'chai';
import { Client } from 'fhir-kit-client';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { syntheaStylePatientBundle } from '../support/synthea-bundle.js';

describe('batch and transaction bundles (e2e)', () => {
  let server: TestServer;
  let client: Client;
  before(async () => {
    server = await startTestServer();
    client = new Client({ baseUrl: server.baseUrl });
  });
  after(async () => server.stop());

  const total = async (query: string) => (await server.request('GET', `/fhir/${query}${query.includes('?') ? '&' : '?'}_total=accurate&_count=0`)).json.total;

  it('a Synthea-style patient bundle goes in whole, urn:uuid references resolved; re-sending matches the same patient', async () => {
    const bundle = syntheaStylePatientBundle({ observations: 300, encounters: 60, conditions: 30, mrn: 'mrn-777' });
    const response = await client.transaction({ body: bundle }) as any;
    expect(response.type).to.equal('transaction-response');
    expect(response.entry).to.have.length(391);
    expect(response.entry.every((e: any) => e.response.status === '201 Created')).to.equal(true);
    const patientId = response.entry[0].response.location.split('/')[5];
    expect(await total(`Observation?subject=Patient/${patientId}`)).to.equal(300);
    expect(await total(`Encounter?patient=${patientId}`)).to.equal(60);
    expect(await total(`Condition?patient=${patientId}`)).to.equal(30);
    const obs = (await server.request('GET', `/fhir/Observation?subject=Patient/${patientId}&_count=1`)).json.entry[0].resource;
    expect(obs.encounter.reference).to.match(/^Encounter\/[0-9a-f-]{36}$/);

    // The conditional create on the MRN matches: same patient, not a second one.
    const again = await client.transaction({ body: syntheaStylePatientBundle({ observations: 2, encounters: 0, conditions: 0, mrn: 'mrn-777' }) }) as any;
    expect(again.entry[0].response.status).to.equal('200 OK');
    expect(await total('Patient?identifier=https://github.com/synthetichealth/synthea|mrn-777')).to.equal(1);
    expect(await total(`Observation?subject=Patient/${patientId}`)).to.equal(302);
  });

  it('a transaction is atomic: one failing entry stores nothing', async () => {
    const before = (await server.request('GET', '/fhir/_history?_count=0')).json.total;
    const res = await server.request('POST', '/fhir/', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:11111111-1111-1111-1111-111111111111', resource: { resourceType: 'Patient', gender: 'male' }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', id: 'atomic-1', gender: 'male' }, request: { method: 'PUT', url: 'Patient/atomic-1' } },
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:11111111-1111-1111-1111-111111111111' }, valueQuantity: { value: 'not a number' } }, request: { method: 'POST', url: 'Observation' } },
      ],
    } });
    expect(res.status).to.equal(422);
    expect(res.json.issue[0].expression[0]).to.match(/^Bundle\.entry\[2\]/);
    expect((await server.request('GET', '/fhir/_history?_count=0')).json.total).to.equal(before);
    expect((await server.request('GET', '/fhir/Patient/atomic-1')).status).to.equal(404);
  });

  it('processes DELETE before POST before PUT before GET, answering in the original order', async () => {
    await server.request('PUT', '/fhir/Patient/order-1', { body: { resourceType: 'Patient', id: 'order-1', gender: 'male' } });
    const res = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { request: { method: 'GET', url: 'Patient/order-2' } },
        { resource: { resourceType: 'Patient', id: 'order-2', gender: 'female' }, request: { method: 'PUT', url: 'Patient/order-2' } },
        { fullUrl: 'urn:uuid:22222222-2222-2222-2222-222222222222', resource: { resourceType: 'Patient', gender: 'other', link: [{ other: { reference: 'Patient/order-2' }, type: 'seealso' }] }, request: { method: 'POST', url: 'Patient' } },
        { request: { method: 'DELETE', url: 'Patient/order-1' } },
      ],
    } }) as any;
    expect(res.entry.map((e: any) => e.response.status)).to.deep.equal(['200 OK', '201 Created', '201 Created', '204 No Content']);
    expect(res.entry[0].resource.gender).to.equal('female'); // the GET ran after the PUT
    expect((await server.request('GET', '/fhir/Patient/order-1')).status).to.equal(410);
  });

  it('resolves conditional references, and fails the transaction when they do not match exactly one', async () => {
    await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: 'cr-1' }] } });
    const res = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient?identifier=urn:mrn|cr-1' } }, request: { method: 'POST', url: 'Observation' } },
      ],
    } }) as any;
    const obs = (await server.request('GET', res.entry[0].response.location.replace(/^https?:\/\/[^/]+/, ''))).json;
    expect(obs.subject.reference).to.match(/^Patient\/[0-9a-f-]{36}$/);
    const none = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient?identifier=urn:mrn|nobody' } }, request: { method: 'POST', url: 'Observation' } },
      ],
    } });
    expect(none.status).to.equal(412);
  });

  it('refuses two entries on the same resource', async () => {
    const res = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Patient', id: 'dup' }, request: { method: 'PUT', url: 'Patient/dup' } },
        { request: { method: 'DELETE', url: 'Patient/dup' } },
      ],
    } });
    expect(res.status).to.equal(400);
  });

  it('a conditional create sees what the DELETE of the same transaction removed (DELETE runs first)', async () => {
    const mrn = { system: 'urn:test:order-mrn', value: 'ORD-1' };
    await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', identifier: [mrn] } });
    const res = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:22222222-2222-4222-8222-222222222222', resource: { resourceType: 'Patient', identifier: [mrn], gender: 'other' },
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${mrn.system}|${mrn.value}` } },
        { request: { method: 'DELETE', url: `Patient?identifier=${mrn.system}|${mrn.value}` } },
      ],
    } });
    expect(res.status).to.equal(200);
    expect(res.json.entry.map((e: any) => e.response.status)).to.deep.equal(['201 Created', '204 No Content']);
    const found = (await server.request('GET', `/fhir/Patient?identifier=${mrn.system}|${mrn.value}`)).json;
    expect(found.entry.map((e: any) => e.resource.gender)).to.deep.equal(['other']);
  });

  it('fails when a conditional entry resolves to a resource another entry writes (identities overlap)', async () => {
    const mrn = { system: 'urn:test:overlap-mrn', value: 'OV-1' };
    const created = (await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', identifier: [mrn], gender: 'male' } })).json;
    const before = (await server.request('GET', '/fhir/_history?_count=0')).json.total;
    const res = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Patient', identifier: [mrn], gender: 'female' }, request: { method: 'PUT', url: `Patient?identifier=${mrn.system}|${mrn.value}` } },
        { request: { method: 'DELETE', url: `Patient/${created.id}` } },
      ],
    } });
    expect(res.status).to.equal(400);
    expect(res.json.issue[0].diagnostics).to.match(/both modify the same Patient/);
    expect((await server.request('GET', '/fhir/_history?_count=0')).json.total).to.equal(before);
    expect((await server.request('GET', `/fhir/Patient/${created.id}`)).json.gender).to.equal('male');
  });

  it('refuses a urn:uuid reference that no entry of the transaction has as fullUrl', async () => {
    const before = (await server.request('GET', '/fhir/_history?_count=0')).json.total;
    const res = await server.request('POST', '/fhir', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:33333333-3333-4333-8333-333333333333' } },
          request: { method: 'POST', url: 'Observation' } },
      ],
    } });
    expect(res.status).to.equal(400);
    expect(res.json.issue[0].expression).to.deep.equal(['Bundle.entry[0]']);
    expect((await server.request('GET', '/fhir/_history?_count=0')).json.total).to.equal(before);
  });

  it('batch entries succeed or fail alone', async () => {
    const res = await client.batch({ body: {
      resourceType: 'Bundle', type: 'batch', entry: [
        { resource: { resourceType: 'Patient', gender: 'female' }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', gender: 'robot' }, request: { method: 'POST', url: 'Patient' } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { resource: { resourceType: 'Patient', id: 'batch-1' }, request: { method: 'PUT', url: 'Patient/batch-1' } },
        { request: { method: 'GET', url: 'Patient?_id=batch-1' } },
      ],
    } }) as any;
    expect(res.type).to.equal('batch-response');
    expect(res.entry.map((e: any) => e.response.status)).to.deep.equal(['201 Created', '422 Unprocessable Entity', '404 Not Found', '201 Created', '200 OK']);
    expect(res.entry[1].response.outcome.resourceType).to.equal('OperationOutcome');
    expect(res.entry[4].resource.entry[0].resource.id).to.equal('batch-1');
  });

  it('a PATCH entry carries a JSON Patch as a Binary', async () => {
    await server.request('PUT', '/fhir/Patient/patch-1', { body: { resourceType: 'Patient', id: 'patch-1', gender: 'male' } });
    const patch = Buffer.from(JSON.stringify([{ op: 'replace', path: '/gender', value: 'female' }])).toString('base64');
    const res = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: 'Patient/patch-1' } },
      ],
    } }) as any;
    expect(res.entry[0].response.status).to.equal('200 OK');
    expect((await server.request('GET', '/fhir/Patient/patch-1')).json.gender).to.equal('female');
  });

  it('a conditional PUT entry\'s fullUrl resolves from the other entries: upsert the patient by MRN, attach its data (http.html#trules)', async () => {
    const upsert = (mrn: string, family: string) => ({
      resourceType: 'Bundle', type: 'transaction', entry: [
        {
          fullUrl: 'urn:uuid:7a1e2c3d-0000-4000-8000-000000000001',
          resource: { resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: mrn }], name: [{ family }] },
          request: { method: 'PUT', url: `Patient?identifier=urn:mrn|${mrn}` },
        },
        {
          resource: {
            resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
            subject: { reference: 'urn:uuid:7a1e2c3d-0000-4000-8000-000000000001' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    });
    const first = await server.request('POST', '/fhir', { body: upsert('upsert-1', 'Ng') });
    expect(first.status, first.text).to.equal(200);
    expect(first.json.entry.map((e: any) => e.response.status)).to.deep.equal(['201 Created', '201 Created']);
    const patientId = first.json.entry[0].response.location.split('/')[5];
    expect(first.json.entry[1].resource.subject.reference).to.equal(`Patient/${patientId}`);

    // Sent again with a changed name: the same patient is updated and referenced.
    const second = await server.request('POST', '/fhir', { body: upsert('upsert-1', 'Nguyen') });
    expect(second.status, second.text).to.equal(200);
    expect(second.json.entry[0].response.status).to.equal('200 OK');
    expect(second.json.entry[0].response.location.split('/')[5]).to.equal(patientId);
    expect(second.json.entry[1].resource.subject.reference).to.equal(`Patient/${patientId}`);
    expect(await total(`Observation?subject=Patient/${patientId}`)).to.equal(2);
    expect(await total('Patient?identifier=urn:mrn|upsert-1')).to.equal(1);
  });

  it('an update whose content equals the current version writes no version, in a transaction as over REST', async () => {
    const body = { resourceType: 'Patient', id: 'resync-1', name: [{ family: 'Same' }], gender: 'female' };
    expect((await server.request('PUT', '/fhir/Patient/resync-1', { body })).status).to.equal(201);
    const sent = await server.request('GET', '/fhir/Patient/resync-1');
    const resync = await server.request('POST', '/fhir', {
      body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: sent.json, request: { method: 'PUT', url: 'Patient/resync-1' } }] },
    });
    expect(resync.status, resync.text).to.equal(200);
    expect(resync.json.entry[0].response.status).to.equal('200 OK');
    expect(resync.json.entry[0].response.etag).to.equal('W/"1"');
    const rest = await server.request('PUT', '/fhir/Patient/resync-1', { body, headers: { Prefer: 'return=OperationOutcome' } });
    expect(rest.status).to.equal(200);
    expect(rest.headers.get('etag')).to.equal('W/"1"');
    expect(rest.json.issue[0].diagnostics).to.match(/Unchanged/);
    expect((await server.request('GET', '/fhir/Patient/resync-1/_history')).json.total).to.equal(1);
    // A real change still makes version 2.
    const changed = await server.request('PUT', '/fhir/Patient/resync-1', { body: { ...body, gender: 'male' } });
    expect(changed.headers.get('etag')).to.equal('W/"2"');
  });

  it('a HEAD entry answers like GET without the body (http.html#read)', async () => {
    await server.request('PUT', '/fhir/Patient/head-1', { body: { resourceType: 'Patient', id: 'head-1' } });
    const res = await server.request('POST', '/fhir', {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'HEAD', url: 'Patient/head-1' } }, { request: { method: 'GET', url: 'Patient/head-1' } }] },
    });
    expect(res.json.entry[0].response).to.deep.include({ status: '200 OK', etag: 'W/"1"' });
    expect(res.json.entry[0]).to.not.have.property('resource');
    expect(res.json.entry[1].resource.id).to.equal('head-1');
  });

  it('more entries than MAX_BUNDLE_ENTRIES is a 413, and nothing runs', async () => {
    const small = await startTestServer({ maxBundleEntries: 3 });
    try {
      const entry = Array.from({ length: 4 }, () => ({ request: { method: 'GET', url: 'metadata' } }));
      const res = await small.request('POST', '/fhir', { body: { resourceType: 'Bundle', type: 'batch', entry } });
      expect(res.status).to.equal(413);
      expect(res.json.resourceType).to.equal('OperationOutcome');
    } finally {
      await small.stop();
    }
  });

  describe('what a transaction refuses, without stalling or leaving anything behind', () => {
    const post = (body: unknown) => server.request('POST', '/fhir', { body });

    it('an operation that writes its own audit record ($reidentify) is a 400 inside a transaction, and the writer stays free', async () => {
      const res = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: 'Patient/any/$reidentify' } }] });
      expect(res.status).to.equal(400);
      expect(res.json.issue[0].diagnostics).to.match(/cannot run inside a transaction/);
      expect((await server.request('PUT', '/fhir/Patient/after-reidentify', { body: { resourceType: 'Patient', id: 'after-reidentify' } })).status).to.equal(201);
    });

    it('entries whose conditional criteria match what another entry writes are a 400 (identities overlap), not a retry loop', async () => {
      const patient = { resourceType: 'Patient', identifier: [{ system: 'urn:self', value: 'same' }] };
      const res = await post({
        resourceType: 'Bundle', type: 'transaction', entry: [
          { resource: patient, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:self|same' } },
          { resource: patient, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:self|same' } },
        ],
      });
      expect(res.status, res.text).to.equal(400);
      expect(res.json.issue[0].diagnostics).to.match(/another entry of this transaction/);
      expect(await total('Patient?identifier=urn:self|same')).to.equal(0);
    });

    it('a PATCH entry\'s urn:uuid references resolve like a resource\'s', async () => {
      await server.request('PUT', '/fhir/Patient/patch-ref', { body: { resourceType: 'Patient', id: 'patch-ref' } });
      const ops = [{ op: 'add', path: '/generalPractitioner', value: [{ reference: 'urn:uuid:0b7e1c2a-0000-4000-8000-00000000000a' }] }];
      const res = await post({
        resourceType: 'Bundle', type: 'transaction', entry: [
          { fullUrl: 'urn:uuid:0b7e1c2a-0000-4000-8000-00000000000a', resource: { resourceType: 'Practitioner', name: [{ family: 'Gp' }] }, request: { method: 'POST', url: 'Practitioner' } },
          { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') }, request: { method: 'PATCH', url: 'Patient/patch-ref' } },
        ],
      });
      expect(res.status, res.text).to.equal(200);
      const practitionerId = res.json.entry[0].response.location.split('/')[5];
      expect((await server.request('GET', '/fhir/Patient/patch-ref')).json.generalPractitioner[0].reference).to.equal(`Practitioner/${practitionerId}`);
    });

    it('a PATCH entry meets the body limits: a number out of range is a 422 and a patch past the repetition limit a 413, in that entry only', async () => {
      await server.request('PUT', '/fhir/Patient/patch-limits', { body: { resourceType: 'Patient', id: 'patch-limits' } });
      const patchEntry = (ops: unknown) => ({
        resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') },
        request: { method: 'PATCH', url: 'Patient/patch-limits' },
      });
      const many = Array.from({ length: 1001 }, (_, i) => ({ system: 'urn:many', value: String(i) }));
      const res = await post({
        resourceType: 'Bundle', type: 'batch', entry: [
          { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from('[{"op":"add","path":"/multipleBirthInteger","value":1e400}]').toString('base64') }, request: { method: 'PATCH', url: 'Patient/patch-limits' } },
          patchEntry([{ op: 'add', path: '/identifier', value: many }]),
          { request: { method: 'GET', url: 'Patient/patch-limits' } },
        ],
      });
      expect(res.status).to.equal(200);
      expect(res.json.entry.map((e: any) => e.response.status.split(' ')[0])).to.deep.equal(['422', '413', '200']);
      expect(res.json.entry[2].resource.meta.versionId).to.equal('1');
    });

    it('an entry URL that is no interaction makes the transaction a 400, located at the entry', async () => {
      const res = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: 'metadata' } }] });
      expect(res.status).to.equal(400);
      expect(res.json.issue[0].expression).to.deep.equal(['Bundle.entry[0].request.url']);
    });
  });
});
