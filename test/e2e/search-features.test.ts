/**
 * Search beyond single parameters (FHIR R4 search.html): chaining, reverse chaining (_has),
 * _include / _revinclude (:iterate), compartment search, _summary, _elements, and paging that
 * stays consistent while writes continue. Every query is also run as POST _search.
 */
import { expect } from 'chai';
import { startTestServer, type TestServer } from '../support/test-server.js';

describe('search features (e2e)', () => {
  let server: TestServer;
  const ids: Record<string, string> = {};

  const create = async (body: Record<string, unknown>) => {
    const res = await server.request('POST', `/fhir/${String(body.resourceType)}`, { body });
    expect(res.status, res.text).to.equal(201);
    return res.json.id as string;
  };

  /** GET and POST _search must agree; returns the bundle of the GET. */
  const search = async (type: string, query: string) => {
    const get = await server.request('GET', `/fhir/${type}?${query}`);
    expect(get.status, get.text).to.equal(200);
    const post = await server.request('POST', `/fhir/${type}/_search`, { body: query, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    const key = (b: any) => (b.entry ?? []).map((e: any) => `${e.search.mode}:${e.resource.resourceType}/${e.resource.id}`).sort();
    expect(key(post.json)).to.deep.equal(key(get.json));
    return get.json;
  };
  const matchIds = (bundle: any) => (bundle.entry ?? []).filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
  const includeKeys = (bundle: any) => (bundle.entry ?? []).filter((e: any) => e.search.mode === 'include').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

  before(async () => {
    server = await startTestServer();
    ids.org = await create({ resourceType: 'Organization', name: 'Mercy Clinic' });
    ids.ada = await create({ resourceType: 'Patient', name: [{ family: 'Lovelace', given: ['Ada'] }], birthDate: '1815-12-10', managingOrganization: { reference: `Organization/${ids.org}` } });
    ids.alan = await create({ resourceType: 'Patient', name: [{ family: 'Turing', given: ['Alan'] }], birthDate: '1912-06-23' });
    const obs = (patient: string, code: string, value: number) => ({
      resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${patient}` },
      code: { coding: [{ system: 'http://loinc.org', code }] }, valueQuantity: { value, system: 'http://unitsofmeasure.org', code: 'mg/dL' },
    });
    ids.adaGlucose = await create(obs(ids.ada!, '2339-0', 180));
    ids.adaWeight = await create(obs(ids.ada!, '29463-7', 60));
    ids.alanGlucose = await create(obs(ids.alan!, '2339-0', 90));
    ids.risk = await create({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: `Patient/${ids.ada}` }, prediction: [{ probabilityDecimal: 0.8 }], basis: [{ reference: `Observation/${ids.adaGlucose}` }] });
  });
  after(async () => server.stop());

  it('chains on a reference: subject.name, subject:Patient.birthdate, two links deep', async () => {
    expect(matchIds(await search('Observation', 'subject.name=lovelace'))).to.deep.equal([ids.adaGlucose, ids.adaWeight].sort());
    expect(matchIds(await search('Observation', 'subject:Patient.birthdate=lt1900&code=http://loinc.org|2339-0'))).to.deep.equal([ids.adaGlucose]);
    expect(matchIds(await search('Observation', 'subject:Patient.organization.name=mercy'))).to.deep.equal([ids.adaGlucose, ids.adaWeight].sort());
    expect(matchIds(await search('Observation', 'subject.name=nobody'))).to.deep.equal([]);
  });

  it('reverse-chains with _has', async () => {
    expect(matchIds(await search('Patient', '_has:Observation:patient:code=http://loinc.org|2339-0'))).to.deep.equal([ids.ada, ids.alan].sort());
    expect(matchIds(await search('Patient', '_has:Observation:patient:value-quantity=gt100'))).to.deep.equal([ids.ada]);
    expect(matchIds(await search('Patient', '_has:RiskAssessment:subject:probability=gt0.5'))).to.deep.equal([ids.ada]);
  });

  it('_include adds the referenced resources, _revinclude the referring ones, :iterate goes on', async () => {
    const inc = await search('Observation', `_id=${ids.adaGlucose}&_include=Observation:subject`);
    expect(matchIds(inc)).to.deep.equal([ids.adaGlucose]);
    expect(includeKeys(inc)).to.deep.equal([`Patient/${ids.ada}`]);
    const rev = await search('Patient', `_id=${ids.ada}&_revinclude=Observation:subject`);
    expect(includeKeys(rev)).to.deep.equal([`Observation/${ids.adaGlucose}`, `Observation/${ids.adaWeight}`].sort());
    const iter = await search('RiskAssessment', `_id=${ids.risk}&_include=RiskAssessment:subject&_include:iterate=Patient:organization`);
    expect(includeKeys(iter)).to.deep.equal([`Organization/${ids.org}`, `Patient/${ids.ada}`].sort());
  });

  it('compartment search: Patient/{id}/Observation', async () => {
    const res = await server.request('GET', `/fhir/Patient/${ids.ada}/Observation?code=http://loinc.org|2339-0`);
    expect(res.status).to.equal(200);
    expect(matchIds(res.json)).to.deep.equal([ids.adaGlucose]);
    const all = await server.request('GET', `/fhir/Patient/${ids.alan}/Observation`);
    expect(matchIds(all.json)).to.deep.equal([ids.alanGlucose]);
    expect(all.json.link[0].url).to.contain(`/Patient/${ids.alan}/Observation`);
    expect((await server.request('GET', `/fhir/Patient/${ids.ada}/Organization`)).status).to.equal(400);
  });

  it('_summary and _elements subset the resources and tag them SUBSETTED', async () => {
    const summary = await search('Patient', `_id=${ids.ada}&_summary=true`);
    const patient = summary.entry[0].resource;
    expect(patient.name).to.deep.equal([{ family: 'Lovelace', given: ['Ada'] }]);
    expect(patient.meta.tag).to.deep.include({ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' });
    const elements = await search('Observation', `_id=${ids.adaGlucose}&_elements=code`);
    const obs = elements.entry[0].resource;
    expect(obs.code).to.not.equal(undefined);
    expect(obs.status).to.equal('final'); // mandatory elements stay (search.html#elements)
    expect(obs.valueQuantity).to.equal(undefined);
    expect(obs.subject).to.equal(undefined);
    const count = await search('Observation', `_summary=count&subject:Patient.name=lovelace`);
    expect(count.total).to.equal(2);
    expect(count.entry).to.equal(undefined);
  });

  it('composite parameters pair values from the same node (code-value-quantity, component-code-value-quantity)', async () => {
    const bp = await create({
      resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.alan}` },
      code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
      component: [
        { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: { value: 150, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
        { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: { value: 95, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
      ],
    });
    expect(matchIds(await search('Observation', `code-value-quantity=${encodeURIComponent('http://loinc.org|2339-0$gt150')}`))).to.deep.equal([ids.adaGlucose]);
    expect(matchIds(await search('Observation', `code-value-quantity=${encodeURIComponent('http://loinc.org|2339-0$lt150')}`))).to.deep.equal([ids.alanGlucose]);
    // 150 belongs to systolic (8480-6), 95 to diastolic: pairs never cross components.
    expect(matchIds(await search('Observation', `component-code-value-quantity=${encodeURIComponent('http://loinc.org|8480-6$gt140')}`))).to.deep.equal([bp]);
    expect(matchIds(await search('Observation', `component-code-value-quantity=${encodeURIComponent('http://loinc.org|8462-4$gt140')}`))).to.deep.equal([]);
    expect(matchIds(await search('Observation', `combo-code-value-quantity=${encodeURIComponent('http://loinc.org|8462-4$95')}`))).to.deep.equal([bp]);
    expect((await server.request('GET', '/fhir/Observation?code-value-quantity=nodollar')).status).to.equal(400);
  });

  it('modifiers :of-type, :identifier, :not (including resources without the element), :missing, :text, uri :above/:below', async () => {
    const mr = await create({ resourceType: 'Patient', identifier: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] }, system: 'urn:mrn', value: 'mr-1' }], gender: 'other', meta: { source: 'http://ehr.example.org/feeds/adt' } });
    const ssn = await create({ resourceType: 'Patient', identifier: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] }, system: 'urn:ssn', value: 'mr-1' }] });
    expect(matchIds(await search('Patient', `identifier:of-type=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v2-0203|MR|mr-1')}`))).to.deep.equal([mr]);
    expect(matchIds(await search('Patient', 'identifier=mr-1'))).to.deep.equal([mr, ssn].sort());
    const byIdentifier = await create({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { identifier: { system: 'urn:mrn', value: 'mr-1' } } });
    expect(matchIds(await search('Observation', `subject:identifier=${encodeURIComponent('urn:mrn|mr-1')}`))).to.deep.equal([byIdentifier]);
    expect(matchIds(await search('Observation', 'subject:identifier=mr-1'))).to.deep.equal([byIdentifier]);
    // :not includes resources that have no gender at all (search.html#modifiers)
    const notOther = matchIds(await search('Patient', `_id=${mr},${ssn},${ids.ada}&gender:not=other`));
    expect(notOther).to.deep.equal([ssn, ids.ada].sort());
    expect(matchIds(await search('Patient', `_id=${mr},${ssn},${ids.ada}&gender:missing=true`))).to.deep.equal([ssn, ids.ada].sort());
    expect(matchIds(await search('Patient', `_id=${mr},${ssn},${ids.ada}&gender:missing=false`))).to.deep.equal([mr]);
    expect(matchIds(await search('Observation', `_id=${byIdentifier}&code:text=x`))).to.deep.equal([byIdentifier]);
    expect(matchIds(await search('Patient', `_source:below=${encodeURIComponent('http://ehr.example.org/feeds')}`))).to.deep.equal([mr]);
    expect(matchIds(await search('Patient', `_source:above=${encodeURIComponent('http://ehr.example.org/feeds/adt/2024')}`))).to.deep.equal([mr]);
    expect(matchIds(await search('Patient', `_source=${encodeURIComponent('http://ehr.example.org/feeds')}`))).to.deep.equal([]);
  });

  it('system search with _type: only the listed types, and the parameters they all define', async () => {
    const code = 'http://loinc.org|type-test-1';
    const obs = await create({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: 'type-test-1' }] }, subject: { reference: `Patient/${ids.ada}` } });
    const cond = await create({ resourceType: 'Condition', code: { coding: [{ system: 'http://loinc.org', code: 'type-test-1' }] }, subject: { reference: `Patient/${ids.ada}` } });
    const systemSearch = async (query: string) => {
      const get = await server.request('GET', `/fhir?${query}`);
      const post = await server.request('POST', '/fhir/_search', { body: query, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
      expect(get.status, get.text).to.equal(200);
      expect(matchIds(post.json)).to.deep.equal(matchIds(get.json));
      return get.json;
    };
    const both = await systemSearch(`_type=Observation,Condition&code=${encodeURIComponent(code)}`);
    expect(matchIds(both)).to.deep.equal([obs, cond].sort());
    expect(both.entry.filter((e: any) => e.search.mode === 'outcome')).to.deep.equal([]);
    expect(matchIds(await systemSearch(`_type=Condition&code=${encodeURIComponent(code)}`))).to.deep.equal([cond]);
    const typed = await systemSearch(`_type=Patient,Organization&_id=${ids.ada},${ids.org},${obs}`);
    expect(typed.entry.map((e: any) => e.resource.resourceType).sort()).to.deep.equal(['Organization', 'Patient']);
    // A parameter one of the types lacks is not applied, and said so (400 when strict).
    const partly = await server.request('GET', `/fhir?_type=Observation,Patient&code=${encodeURIComponent(code)}`, { headers: { Prefer: 'handling=strict' } });
    expect(partly.status).to.equal(400);
    expect(partly.json.issue[0].diagnostics).to.match(/Unknown search parameter 'code' for every type of _type/);
    expect((await server.request('GET', '/fhir?_type=Patient,NoSuchType')).status).to.equal(400);
  });

  it('_count: capped by the maximum page size, and the links say the size in force; _count=0 gives the total alone', async () => {
    const capped = await search('Patient', '_count=100000');
    const self = capped.link.find((l: any) => l.relation === 'self').url as string;
    expect(new URL(self).searchParams.get('_count')).to.equal('1000');
    const none = await search('Patient', '_count=0');
    expect(none.entry ?? []).to.deep.equal([]);
    expect(none.total).to.be.a('number').and.greaterThan(1);
  });

  it('pages stay consistent while new resources are written between pages', async () => {
    for (let i = 0; i < 6; i++) await create({ resourceType: 'Organization', name: `Paging ${i}` });
    const first = await search('Organization', 'name=paging&_count=3');
    const next = first.link.find((l: any) => l.relation === 'next').url as string;
    expect(next).to.match(/_snapshot=\d+-\d+/);
    for (let i = 0; i < 4; i++) await create({ resourceType: 'Organization', name: `Paging late ${i}` });
    const second = await server.request('GET', next.replace(/^https?:\/\/[^/]+/, ''));
    const seen = [...matchIds(first), ...matchIds(second.json)];
    expect(new Set(seen).size).to.equal(6);
    expect(second.json.link.find((l: any) => l.relation === 'next')).to.equal(undefined);
  });

  it('a paging token that is malformed, forged or from another search is a 400 OperationOutcome, never a 500', async () => {
    const first = await search('Organization', 'name=paging&_count=2');
    const token = new URL(first.link.find((l: any) => l.relation === 'next').url as string).searchParams.get('_snapshot')!;
    const [seq, rid, digest] = token.split('-') as [string, string, string];
    const bad = [
      'random', `${'9'.repeat(30)}-${rid}-${digest}`, `${Number(seq) + 1000}-${rid}-${digest}`, `-1-${rid}-${digest}`,
      `${seq}-${rid}-${digest.slice(0, 15)}é`, `${seq}-${rid}`,
    ];
    for (const value of bad) {
      const res = await server.request('GET', `/fhir/Organization?name=paging&_count=2&_offset=2&_snapshot=${encodeURIComponent(value)}`);
      expect(res.status, value).to.equal(400);
      expect(res.json.resourceType, value).to.equal('OperationOutcome');
    }
    const otherType = await server.request('GET', `/fhir/Patient?_count=2&_offset=2&_snapshot=${token}`);
    expect(otherType.status).to.equal(400);
    expect(otherType.json.issue[0].diagnostics).to.match(/another search/);
    const otherParams = await server.request('GET', `/fhir/Organization?name=mercy&_count=2&_offset=2&_snapshot=${token}`);
    expect(otherParams.status).to.equal(400);
    expect((await server.request('GET', `/fhir/Organization?name=paging&_count=2&_offset=2&_snapshot=${token}`)).status).to.equal(200);
  });

  it('pages stay consistent while the matches are updated and deleted between pages: same order, content as of the first page', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await create({ resourceType: 'Organization', name: `Shifting ${i}`, alias: ['v1'] }));
    const follow = async (bundle: any) => {
      const next = bundle.link.find((l: any) => l.relation === 'next')?.url as string | undefined;
      return next ? (await server.request('GET', next.replace(/^https?:\/\/[^/]+/, ''))).json : undefined;
    };
    const first = await search('Organization', 'name=shifting&_sort=_lastUpdated&_count=3&_total=accurate');
    expect(matchIds(first)).to.have.length(3);
    // After the first page: its first match is updated (it would now sort last), a match of
    // the last page is deleted, another one updated, and a new match is created.
    const [moved] = matchIds(first);
    await server.request('PUT', `/fhir/Organization/${moved}`, { body: { resourceType: 'Organization', id: moved, name: 'Shifting moved', alias: ['v2'] } });
    const lastPageIds = ids.slice(6);
    await server.request('DELETE', `/fhir/Organization/${lastPageIds[0]}`);
    await server.request('PUT', `/fhir/Organization/${ids[4]}`, { body: { resourceType: 'Organization', id: ids[4], name: 'Shifting changed', alias: ['v2'] } });
    await create({ resourceType: 'Organization', name: 'Shifting late' });

    const second = await follow(first);
    const third = await follow(second);
    expect(await follow(third)).to.equal(undefined);
    const pages = [first, second, third];
    const seen = pages.flatMap((p) => p.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource));
    // Every match of the first page's moment, once each, in the order the first page fixed.
    expect(seen.map((r: any) => r.id)).to.deep.equal(ids);
    // Each as it was then: version 1, alias v1, even the updated and the deleted one.
    expect(seen.map((r: any) => r.alias[0])).to.deep.equal(ids.map(() => 'v1'));
    expect(seen.map((r: any) => r.meta.versionId)).to.deep.equal(ids.map(() => '1'));
    expect(pages.map((p) => p.total)).to.deep.equal([7, 7, 7]);
    // A new search sees the store as it is now.
    const now = matchIds(await search('Organization', 'name=shifting&_count=100'));
    expect(now).to.have.length(7);
    expect(now).to.not.include(lastPageIds[0]);
  });
});
