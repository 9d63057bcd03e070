/**
 * End-to-end: the real server on an ephemeral port, driven over HTTP (fetch) and by
 * fhir-kit-client. Each case follows a row of FHIR R4 http.html (see conformance/interactions.md).
 */
import { expect } from 'chai';
import { Client } from 'fhir-kit-client';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { waitFor } from '../support/wait-for.js';

const patient = (family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Ada'] }],
  gender: 'female',
  birthDate: '1970-03-04',
  ...extra,
});

describe('REST interactions (e2e)', () => {
  let server: TestServer;
  let client: Client;

  before(async () => {
    server = await startTestServer();
    client = new Client({ baseUrl: server.baseUrl });
  });
  after(async () => server.stop());

  describe('create, read, vread, update, delete', () => {
    it('create answers 201 with Location, ETag and Last-Modified; the server sets id and meta', async () => {
      const res = await server.request('POST', '/fhir/Patient', { body: { ...patient('Lovelace'), id: 'client-chosen' } });
      expect(res.status).to.equal(201);
      expect(res.json.id).to.be.a('string').and.not.equal('client-chosen');
      expect(res.json.meta.versionId).to.equal('1');
      expect(res.headers.get('etag')).to.equal('W/"1"');
      expect(res.headers.get('location')).to.equal(`${server.baseUrl}/Patient/${res.json.id}/_history/1`);
      expect(new Date(res.headers.get('last-modified')!).getTime()).to.be.closeTo(Date.parse(res.json.meta.lastUpdated), 1000);
    });

    it('reads, vreads, updates with If-Match, and refuses a stale If-Match with 412', async () => {
      const created = await client.create({ resourceType: 'Patient', body: patient('Hopper') }) as any;
      const read = await client.read({ resourceType: 'Patient', id: created.id }) as any;
      expect(read).to.deep.equal(created);

      const updated = await server.request('PUT', `/fhir/Patient/${created.id}`, {
        body: { ...created, gender: 'other' }, headers: { 'If-Match': 'W/"1"' },
      });
      expect(updated.status).to.equal(200);
      expect(updated.json.meta.versionId).to.equal('2');
      expect(updated.headers.get('etag')).to.equal('W/"2"');

      const stale = await server.request('PUT', `/fhir/Patient/${created.id}`, {
        body: { ...created, gender: 'male' }, headers: { 'If-Match': 'W/"1"' },
      });
      expect(stale.status).to.equal(412);
      expect(stale.json.resourceType).to.equal('OperationOutcome');

      const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' }) as any;
      expect(v1.gender).to.equal('female');
      const current = await client.read({ resourceType: 'Patient', id: created.id }) as any;
      expect(current.gender).to.equal('other');

      // A delete with a stale If-Match deletes nothing; with the current version it deletes.
      const staleDelete = await server.request('DELETE', `/fhir/Patient/${created.id}`, { headers: { 'If-Match': 'W/"1"' } });
      expect(staleDelete.status).to.equal(412);
      expect((await server.request('GET', `/fhir/Patient/${created.id}`)).status).to.equal(200);
      expect((await server.request('DELETE', `/fhir/Patient/${created.id}`, { headers: { 'If-Match': 'W/"2"' } })).status).to.equal(204);
      expect((await server.request('GET', `/fhir/Patient/${created.id}`)).status).to.equal(410);
    });

    it('update-as-create with a client id answers 201; an invalid id is 400', async () => {
      const res = await server.request('PUT', '/fhir/Patient/ehr-123.a', { body: { ...patient('Upsert'), id: 'ehr-123.a' } });
      expect(res.status).to.equal(201);
      expect(res.headers.get('location')).to.equal(`${server.baseUrl}/Patient/ehr-123.a/_history/1`);
      const again = await server.request('PUT', '/fhir/Patient/ehr-123.a', { body: { ...patient('Upsert'), id: 'ehr-123.a', active: false } });
      expect(again.status).to.equal(200);
      expect(again.json.meta.versionId).to.equal('2');

      const bad = await server.request('PUT', '/fhir/Patient/bad_id!', { body: { ...patient('X'), id: 'bad_id!' } });
      expect(bad.status).to.equal(400);
      const tooLong = 'a'.repeat(65);
      expect((await server.request('PUT', `/fhir/Patient/${tooLong}`, { body: { ...patient('X'), id: tooLong } })).status).to.equal(400);
    });

    it('delete answers 204; later reads are 410, vread of the old version still works, unknown ids 404', async () => {
      const created = await client.create({ resourceType: 'Patient', body: patient('Gone') }) as any;
      const del = await server.request('DELETE', `/fhir/Patient/${created.id}`);
      expect(del.status).to.equal(204);
      expect((await server.request('GET', `/fhir/Patient/${created.id}`)).status).to.equal(410);
      expect((await server.request('GET', `/fhir/Patient/${created.id}/_history/1`)).status).to.equal(200);
      expect((await server.request('GET', `/fhir/Patient/${created.id}/_history/2`)).status).to.equal(410);
      expect((await server.request('DELETE', `/fhir/Patient/${created.id}`)).status).to.equal(204);
      expect((await server.request('GET', '/fhir/Patient/does-not-exist')).status).to.equal(404);
      const history = await client.history({ resourceType: 'Patient', id: created.id }) as any;
      expect(history.total).to.equal(2);
      expect(history.entry[0].request.method).to.equal('DELETE');
      expect(history.entry[0].resource).to.equal(undefined);
    });

    it('patch applies a JSON Patch, honours If-Match, refuses other media types and bad patches', async () => {
      const created = await client.create({ resourceType: 'Patient', body: patient('Patchy') }) as any;
      const patched = await client.patch({
        resourceType: 'Patient', id: created.id, jsonPatch: [{ op: 'replace', path: '/gender', value: 'male' }],
      }) as any;
      expect(patched.gender).to.equal('male');
      expect(patched.meta.versionId).to.equal('2');

      const stale = await server.request('PATCH', `/fhir/Patient/${created.id}`, {
        body: [{ op: 'replace', path: '/gender', value: 'female' }],
        headers: { 'Content-Type': 'application/json-patch+json', 'If-Match': 'W/"1"' },
      });
      expect(stale.status).to.equal(412);
      const wrongType = await server.request('PATCH', `/fhir/Patient/${created.id}`, {
        body: [{ op: 'replace', path: '/gender', value: 'female' }], headers: { 'Content-Type': 'application/fhir+json' },
      });
      expect(wrongType.status).to.equal(415);
      const failedTest = await server.request('PATCH', `/fhir/Patient/${created.id}`, {
        body: [{ op: 'test', path: '/gender', value: 'female' }], headers: { 'Content-Type': 'application/json-patch+json' },
      });
      expect(failedTest.status).to.equal(400);
      const invalidResult = await server.request('PATCH', `/fhir/Patient/${created.id}`, {
        body: [{ op: 'replace', path: '/gender', value: 'robot' }], headers: { 'Content-Type': 'application/json-patch+json' },
      });
      expect(invalidResult.status).to.equal(422);
      expect((await client.read({ resourceType: 'Patient', id: created.id }) as any).meta.versionId).to.equal('2');
    });

    it('Prefer: return=minimal gives no body; return=OperationOutcome gives an outcome', async () => {
      const minimal = await server.request('POST', '/fhir/Patient', { body: patient('Min'), headers: { Prefer: 'return=minimal' } });
      expect(minimal.status).to.equal(201);
      expect(minimal.text).to.equal('');
      expect(minimal.headers.get('location')).to.match(/\/Patient\/[^/]+\/_history\/1$/);
      const outcome = await server.request('POST', '/fhir/Patient', { body: patient('Oo'), headers: { Prefer: 'return=OperationOutcome' } });
      expect(outcome.status).to.equal(201);
      expect(outcome.json.resourceType).to.equal('OperationOutcome');
    });

    it('works generically for other R4 types (Organization, Encounter, Condition)', async () => {
      for (const body of [
        { resourceType: 'Organization', name: 'General Hospital' },
        { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' } },
        { resourceType: 'Condition', subject: { reference: 'Patient/ehr-123.a' }, code: { text: 'Asthma' } },
      ]) {
        const res = await server.request('POST', `/fhir/${body.resourceType}`, { body });
        expect(res.status, body.resourceType).to.equal(201);
        expect((await server.request('GET', `/fhir/${body.resourceType}/${res.json.id}`)).json.resourceType).to.equal(body.resourceType);
      }
    });
  });

  describe('conditional operations', () => {
    const mrn = (value: string) => ({ identifier: [{ system: 'urn:mrn', value }] });

    it('conditional create: no match creates, one match answers 200 without creating, several 412', async () => {
      const first = await server.request('POST', '/fhir/Patient', { body: patient('Cond', mrn('c-1')), headers: { 'If-None-Exist': 'identifier=urn:mrn|c-1' } });
      expect(first.status).to.equal(201);
      const second = await server.request('POST', '/fhir/Patient', { body: patient('Cond', mrn('c-1')), headers: { 'If-None-Exist': 'identifier=urn:mrn|c-1' } });
      expect(second.status).to.equal(200);
      expect(second.json.id).to.equal(first.json.id);
      const prefixed = await server.request('POST', '/fhir/Patient', { body: patient('Cond', mrn('c-1')), headers: { 'If-None-Exist': 'Patient?identifier=urn:mrn|c-1' } });
      expect(prefixed.status).to.equal(200);
      expect(prefixed.json.id).to.equal(first.json.id);
      await server.request('POST', '/fhir/Patient', { body: patient('Twin', mrn('twin')) });
      await server.request('POST', '/fhir/Patient', { body: patient('Twin', mrn('twin')) });
      const many = await server.request('POST', '/fhir/Patient', { body: patient('Twin', mrn('twin')), headers: { 'If-None-Exist': 'identifier=urn:mrn|twin' } });
      expect(many.status).to.equal(412);
    });

    it('conditional create is race-free: 25 concurrent requests create exactly one resource', async () => {
      const results = await Promise.all(Array.from({ length: 25 }, () => server.request('POST', '/fhir/Patient', {
        body: patient('Race', mrn('race-1')), headers: { 'If-None-Exist': 'identifier=urn:mrn|race-1' },
      })));
      expect(results.filter((r) => r.status === 201)).to.have.length(1);
      expect(results.filter((r) => r.status === 200)).to.have.length(24);
      const found = await server.request('GET', '/fhir/Patient?identifier=urn:mrn|race-1&_total=accurate');
      expect(found.json.total).to.equal(1);
    });

    it('conditional update: 0 matches creates, 1 updates, several 412; a different body id is 400', async () => {
      const created = await server.request('PUT', '/fhir/Patient?identifier=urn:mrn|u-1', { body: patient('CondUp', mrn('u-1')) });
      expect(created.status).to.equal(201);
      const updated = await server.request('PUT', '/fhir/Patient?identifier=urn:mrn|u-1', { body: { ...patient('CondUp', mrn('u-1')), gender: 'male' } });
      expect(updated.status).to.equal(200);
      expect(updated.json.id).to.equal(created.json.id);
      expect(updated.json.meta.versionId).to.equal('2');
      const otherId = await server.request('PUT', '/fhir/Patient?identifier=urn:mrn|u-1', { body: { ...patient('CondUp', mrn('u-1')), id: 'other' } });
      expect(otherId.status).to.equal(400);
      const many = await server.request('PUT', '/fhir/Patient?identifier=urn:mrn|twin', { body: patient('Twin', mrn('twin')) });
      expect(many.status).to.equal(412);
      const unknownParam = await server.request('PUT', '/fhir/Patient?nonsense=1', { body: patient('X') });
      expect(unknownParam.status).to.equal(400);
    });

    it('conditional delete: one match deletes, several 412, none succeeds', async () => {
      const created = await server.request('POST', '/fhir/Patient', { body: patient('CondDel', mrn('d-1')) });
      expect((await server.request('DELETE', '/fhir/Patient?identifier=urn:mrn|d-1')).status).to.equal(204);
      expect((await server.request('GET', `/fhir/Patient/${created.json.id}`)).status).to.equal(410);
      expect((await server.request('DELETE', '/fhir/Patient?identifier=urn:mrn|twin')).status).to.equal(412);
      expect((await server.request('DELETE', '/fhir/Patient?identifier=urn:mrn|none')).status).to.equal(204);
    });
  });

  describe('search and history', () => {
    it('finds by string, token, date, reference, _id and _lastUpdated', async () => {
      const p = await client.create({ resourceType: 'Patient', body: patient('Sören-Kierkegaard', { birthDate: '1813-05-05', identifier: [{ system: 'urn:ssn', value: 'kk-1' }] }) }) as any;
      await client.create({
        resourceType: 'Observation',
        body: {
          resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${p.id}` },
          code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] }, effectiveDateTime: '2024-02-03T10:00:00Z',
          valueQuantity: { value: 72.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
        },
      });
      const ids = async (query: string) => ((await server.request('GET', `/fhir/${query}`)).json.entry ?? [])
        .filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id);
      expect(await ids('Patient?name=soren')).to.deep.equal([p.id]);
      expect(await ids('Patient?family=SÖREN')).to.deep.equal([p.id]);
      expect(await ids('Patient?name:exact=Sören-Kierkegaard')).to.deep.equal([p.id]);
      expect(await ids('Patient?identifier=urn:ssn|kk-1')).to.deep.equal([p.id]);
      expect(await ids('Patient?birthdate=1813')).to.deep.equal([p.id]);
      expect(await ids('Patient?identifier=urn:ssn|kk-1&birthdate=gt1813-05')).to.deep.equal([]);
      expect(await ids('Patient?identifier=urn:ssn|kk-1&birthdate=ge1813-05')).to.deep.equal([p.id]);
      expect(await ids(`Patient?_id=${p.id}`)).to.deep.equal([p.id]);
      expect(await ids(`Observation?subject=Patient/${p.id}&code=http://loinc.org|29463-7`)).to.have.length(1);
      expect(await ids(`Observation?patient=${p.id}&date=ge2024-02-01&value-quantity=gt70|http://unitsofmeasure.org|kg`)).to.have.length(1);
      expect(await ids(`Observation?patient=${p.id}&value-quantity=lt70`)).to.have.length(0);
      expect(await ids(`Patient?_id=${p.id}&_lastUpdated=ge2000-01-01`)).to.deep.equal([p.id]);
      // GET and POST _search agree
      const post = await server.request('POST', '/fhir/Patient/_search', {
        body: 'name=soren', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      expect(post.json.entry.map((e: any) => e.resource.id)).to.deep.equal([p.id]);
    });

    it('pages with absolute next links until every match is seen', async () => {
      for (let i = 0; i < 7; i++) await client.create({ resourceType: 'Patient', body: patient(`Pager${i}`, { identifier: [{ system: 'urn:page', value: 'x' }] }) });
      let bundle = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:page|x', _count: '3', _total: 'accurate' } }) as any;
      expect(bundle.total).to.equal(7);
      const seen: string[] = [];
      let pages = 0;
      while (bundle) {
        pages++;
        for (const link of bundle.link) expect(link.url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/fhir\//);
        seen.push(...(bundle.entry ?? []).map((e: any) => e.resource.id));
        bundle = await client.nextPage({ bundle });
      }
      expect(pages).to.equal(3);
      expect(new Set(seen).size).to.equal(7);
    });

    it('reports unknown parameters in an outcome entry, or 400 with Prefer: handling=strict', async () => {
      const lenient = await server.request('GET', '/fhir/Patient?foo=bar&_count=1');
      expect(lenient.status).to.equal(200);
      const outcome = lenient.json.entry.find((e: any) => e.search.mode === 'outcome');
      expect(outcome.resource.issue[0].diagnostics).to.contain('foo');
      const strict = await server.request('GET', '/fhir/Patient?foo=bar', { headers: { Prefer: 'handling=strict' } });
      expect(strict.status).to.equal(400);
    });

    it('type and system history with _since and _count', async () => {
      const before = new Date().toISOString();
      // The Organization below must be stamped after `before`: wait for the clock to tick.
      await waitFor(() => new Date().toISOString() > before, { intervalMs: 1 });
      await client.create({ resourceType: 'Organization', body: { resourceType: 'Organization', name: 'After' } });
      const typeHistory = await server.request('GET', `/fhir/Organization/_history?_since=${encodeURIComponent(before)}`);
      expect(typeHistory.json.type).to.equal('history');
      expect(typeHistory.json.total).to.equal(1);
      const system = await server.request('GET', '/fhir/_history?_count=2');
      expect(system.json.entry).to.have.length(2);
      expect(system.json.link.find((l: any) => l.relation === 'next').url).to.contain('_offset=2');
      expect((await server.request('GET', '/fhir/_history?_since=yesterday')).status).to.equal(400);
    });
  });

  describe('read with _summary and _elements (http.html#read)', () => {
    it('shapes a read and a vread like a search match, tagged SUBSETTED; count and bad values are 400', async () => {
      const created = (await server.request('POST', '/fhir/Patient', { body: {
        resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01', name: [{ family: 'Shape' }], maritalStatus: { text: 'M' },
      } })).json;
      const summary = (await server.request('GET', `/fhir/Patient/${created.id}?_summary=true`)).json;
      expect(summary).to.include({ id: created.id, gender: 'female', birthDate: '1970-01-01' });
      expect(summary.maritalStatus).to.equal(undefined);
      expect(summary.meta.tag.map((t: any) => t.code)).to.include('SUBSETTED');
      const elements = (await server.request('GET', `/fhir/Patient/${created.id}/_history/1?_elements=gender`)).json;
      expect(Object.keys(elements).sort()).to.deep.equal(['gender', 'id', 'meta', 'resourceType']);
      expect((await server.request('GET', `/fhir/Patient/${created.id}?_summary=count`)).status).to.equal(400);
      expect((await server.request('GET', `/fhir/Patient/${created.id}?_summary=maybe`)).status).to.equal(400);
      expect((await server.request('GET', `/fhir/Patient/${created.id}?_format=json`)).json).to.deep.include({ maritalStatus: { text: 'M' } });
    });
  });

  describe('$validate and metadata', () => {
    it('$validate on type and instance reports problems without storing', async () => {
      const ok = await server.request('POST', '/fhir/Patient/$validate', { body: patient('Valid') });
      expect(ok.status).to.equal(200);
      expect(ok.json.issue[0].severity).to.equal('information');
      const bad = await server.request('POST', '/fhir/Observation/$validate', { body: { resourceType: 'Observation', status: 'final' } });
      expect(bad.status).to.equal(200);
      expect(bad.json.issue.some((i: any) => i.severity === 'error')).to.equal(true);
      const instance = await server.request('POST', '/fhir/Patient/abc/$validate', { body: { ...patient('V'), id: 'abc' } });
      expect(instance.status).to.equal(200);
      expect((await server.request('GET', '/fhir/Patient/abc')).status).to.equal(404);
    });

    it('$validate takes mode (create, update, delete) and profile, from Parameters or the URL', async () => {
      const errors = (res: any) => res.json.issue.filter((i: any) => i.severity === 'error').map((i: any) => i.code);
      const asParameters = (extra: object[], resource?: object) => ({
        resourceType: 'Parameters', parameter: [...(resource ? [{ name: 'resource', resource }] : []), ...extra],
      });
      // update needs the id; create does not
      const update = await server.request('POST', '/fhir/Patient/$validate', { body: asParameters([{ name: 'mode', valueCode: 'update' }], patient('U')) });
      expect(errors(update)).to.deep.equal(['required']);
      expect(errors(await server.request('POST', '/fhir/Patient/$validate?mode=create', { body: patient('C') }))).to.deep.equal([]);
      // delete: an instance, no resource needed
      const del = await server.request('POST', '/fhir/Patient/abc/$validate', { body: asParameters([{ name: 'mode', valueCode: 'delete' }]) });
      expect(del.status).to.equal(200);
      expect(del.json.issue[0].diagnostics).to.match(/may be deleted/);
      expect((await server.request('POST', '/fhir/Patient/$validate', { body: asParameters([{ name: 'mode', valueCode: 'delete' }]) })).status).to.equal(400);
      expect((await server.request('POST', '/fhir/Patient/$validate?mode=replace', { body: patient('M') })).status).to.equal(400);
      // profile: the base definition and this server's own are checked; another is said to be unchecked
      const observation = { resourceType: 'Observation', status: 'final', code: { text: 'x' } };
      const own = await server.request('POST', '/fhir/Observation/$validate', {
        body: asParameters([{ name: 'profile', valueUri: 'https://fhir-ledger.dev/fhir/StructureDefinition/fhir-ledger-observation' }], observation),
      });
      expect(errors(own).length).to.be.greaterThan(0, 'the profile requires a subject');
      const base = await server.request('POST', `/fhir/Patient/$validate?profile=${encodeURIComponent('http://hl7.org/fhir/StructureDefinition/Patient')}`, { body: patient('B') });
      expect(errors(base)).to.deep.equal([]);
      const unknown = await server.request('POST', `/fhir/Patient/$validate?profile=${encodeURIComponent('http://example.org/StructureDefinition/other')}`, { body: patient('X') });
      expect(errors(unknown)).to.deep.equal(['not-supported']);
    });

    it('metadata is a CapabilityStatement listing the types, interactions and search parameters', async () => {
      const cs = await client.capabilityStatement() as any;
      expect(cs.resourceType).to.equal('CapabilityStatement');
      expect(cs.fhirVersion).to.equal('4.0.1');
      expect(cs.format).to.not.include('xml');
      const patientRes = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
      expect(patientRes.interaction.map((i: any) => i.code)).to.include.members(['read', 'vread', 'create', 'update', 'patch', 'delete', 'search-type', 'history-instance']);
      const birthdate = patientRes.searchParam.find((p: any) => p.name === 'birthdate');
      expect(birthdate.type).to.equal('date');
      expect(birthdate.documentation).to.be.a('string').and.not.equal('');
      expect(cs.rest[0].resource.map((r: any) => r.type)).to.include.members(['Observation', 'RiskAssessment', 'Encounter', 'Condition']);
      expect(cs.rest[0].interaction.map((i: any) => i.code)).to.include.members(['transaction', 'batch']);
      // _include/_revinclude targets, and what a system-level search takes.
      const observation = cs.rest[0].resource.find((r: any) => r.type === 'Observation');
      expect(observation.searchInclude).to.include.members(['Observation:subject', 'Observation:patient', 'Observation:encounter']);
      expect(patientRes.searchRevInclude).to.include.members(['Observation:subject', 'Observation:patient', 'RiskAssessment:subject']);
      expect(cs.rest[0].searchParam.map((p: any) => p.name)).to.have.members(['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source', '_type']);
      // A parameter matched otherwise than its official description says, says so.
      expect(patientRes.searchParam.find((p: any) => p.name === 'phonetic').documentation).to.match(/no phonetic algorithm/);
      // The statement is valid R4 itself.
      const validation = await server.request('POST', '/fhir/CapabilityStatement/$validate', { body: cs });
      expect(validation.json.issue.filter((i: any) => i.severity === 'error'), JSON.stringify(validation.json.issue.slice(0, 3))).to.deep.equal([]);
    });
  });
});
