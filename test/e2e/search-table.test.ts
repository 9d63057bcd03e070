/**
 * Table-driven search semantics (FHIR R4 search.html), one fixture set, one row per case:
 * every parameter type, prefix and modifier with the edge cases that are easy to get wrong
 * (partial dates, time zones, implicit precision, missing values, case and accent folding,
 * `:not` including resources without the element). Each row runs as GET and as POST _search,
 * which must agree.
 */
import { expect } from 'chai';
import { startTestServer, type TestServer } from '../support/test-server.js';

type Row = [query: string, expected: string[]];

describe('search semantics table (e2e)', () => {
  let server: TestServer;
  const id: Record<string, string> = {};

  const put = async (key: string, resource: Record<string, unknown>) => {
    const res = await server.request('PUT', `/fhir/${String(resource.resourceType)}/${key}`, { body: { ...resource, id: key } });
    expect(res.status, res.text).to.equal(201);
    id[key] = key;
  };

  before(async () => {
    server = await startTestServer();
    await put('p-year', { resourceType: 'Patient', birthDate: '1990', gender: 'female', name: [{ family: 'Zoë', given: ['Anna'] }] });
    await put('p-month', { resourceType: 'Patient', birthDate: '1990-06', gender: 'male', name: [{ family: 'ZOE' }] });
    await put('p-day', { resourceType: 'Patient', birthDate: '1990-06-15', gender: 'female', name: [{ family: 'Zoey' }] });
    await put('p-next', { resourceType: 'Patient', birthDate: '1991-01-01', gender: 'other', name: [{ family: 'Chloé' }] });
    await put('p-none', { resourceType: 'Patient', name: [{ family: 'Nobody' }], identifier: [{ value: 'no-system-1' }] });
    await put('o-tz', {
      resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] },
      subject: { reference: 'Patient/p-year' }, effectiveDateTime: '2024-03-10T23:30:00-05:00',
      valueQuantity: { value: 5.4, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' },
    });
    await put('o-period', {
      resourceType: 'Observation', status: 'amended', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: 'Patient/p-month' }, effectivePeriod: { start: '2024-01-01' },
      valueQuantity: { value: 120, unit: 'beats/min', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    for (const [key, p] of [['r-08', 0.8], ['r-085', 0.85], ['r-075', 0.75]] as const) {
      await put(key, { resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/p-day' }, prediction: [{ probabilityDecimal: p }] });
    }
  });
  after(async () => server.stop());

  async function check(type: string, [query, expected]: Row): Promise<void> {
    const get = await server.request('GET', `/fhir/${type}?${query}&_count=100`);
    expect(get.status, `${query}: ${get.text.slice(0, 300)}`).to.equal(200);
    const post = await server.request('POST', `/fhir/${type}/_search`, { body: `${query}&_count=100`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    const ids = (b: any) => (b.entry ?? []).filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
    expect(ids(get.json), `GET ${type}?${query}`).to.deep.equal([...expected].sort());
    expect(ids(post.json), `POST ${type}/_search ${query}`).to.deep.equal([...expected].sort());
  }

  const table: Record<string, [string, Row[]]> = {
    'date: implicit ranges of partial dates and every prefix': ['Patient', [
      ['birthdate=1990', ['p-year', 'p-month', 'p-day']],
      ['birthdate=1990-06', ['p-month', 'p-day']],
      ['birthdate=1990-06-15', ['p-day']],
      ['birthdate=gt1990-06', ['p-year', 'p-next']],
      ['birthdate=lt1990-06-15', ['p-year', 'p-month']],
      ['birthdate=ge1991', ['p-next']],
      ['birthdate=le1990-01', []], // the range below Jan 1990 does not reach the year 1990
      ['birthdate=le1990-06-30', ['p-year', 'p-month', 'p-day']],
      ['birthdate=sa1990', ['p-next']],
      ['birthdate=eb1991', ['p-year', 'p-month', 'p-day']],
      ['birthdate=ne1990', ['p-next']],
      ['birthdate:missing=true', ['p-none']],
      ['birthdate=1990,1991', ['p-year', 'p-month', 'p-day', 'p-next']],
      // AND of two ranges: the year 1990 overlaps both, so it matches too (search.html#prefix)
      ['birthdate=ge1990-06&birthdate=lt1990-07', ['p-year', 'p-month', 'p-day']],
    ]],
    'date: time zones (instants compared in UTC) and open periods': ['Observation', [
      ['date=2024-03-11', ['o-tz']],
      ['date=2024-03-10', []],
      ['date=2024-03-11T04:30:00Z', ['o-tz']],
      ['date=ge2030-01-01', ['o-period']],
      ['date=lt2023-12-31', []],
    ]],
    'string: starts-with, case and accent folding, :exact, :contains': ['Patient', [
      ['name=zoe', ['p-year', 'p-month', 'p-day']],
      ['family=ZOË', ['p-year', 'p-month', 'p-day']],
      ['name:exact=Zoë', ['p-year']],
      ['name:exact=zoë', []],
      ['name:contains=LOE', ['p-next']],
      ['given=ann', ['p-year']],
    ]],
    'token: system|code forms, :not including missing, :text': ['Patient', [
      ['gender=female', ['p-year', 'p-day']],
      ['gender=female,other', ['p-year', 'p-day', 'p-next']],
      ['gender:not=female', ['p-month', 'p-next', 'p-none']],
      ['gender:missing=true', ['p-none']],
      ['identifier=|no-system-1', ['p-none']],
      ['identifier=no-system-1', ['p-none']],
      ['identifier=urn:other|no-system-1', []],
    ]],
    'number: implicit precision and prefixes (RiskAssessment.probability)': ['RiskAssessment', [
      ['probability=0.8', ['r-08', 'r-075']],
      ['probability=0.80', ['r-08']],
      ['probability=gt0.8', ['r-085']],
      ['probability=le0.8', ['r-08', 'r-075']],
      ['probability=ap0.8', ['r-08', 'r-085', 'r-075']],
      ['probability=ne0.8', ['r-085']],
    ]],
    'quantity: with and without system and code': ['Observation', [
      ['value-quantity=5.4|http://unitsofmeasure.org|mg', ['o-tz']],
      ['value-quantity=5.4||mg', ['o-tz']],
      ['value-quantity=5.4|http://unitsofmeasure.org|g', []],
      ['value-quantity=5', ['o-tz']],
      ['value-quantity=5.40', ['o-tz']],
      ['value-quantity=gt100', ['o-period']],
      ['value-quantity=lt100||mg', ['o-tz']],
    ]],
    'reference: Type/id, bare id, :[type], chained': ['Observation', [
      ['subject=Patient/p-year', ['o-tz']],
      ['subject=p-month', ['o-period']],
      ['subject:Patient=p-year', ['o-tz']],
      ['patient=p-year,p-month', ['o-tz', 'o-period']],
      ['subject:Patient.gender=male', ['o-period']],
      ['status:not=final', ['o-period']],
      ['code=http://loinc.org|2339-0', ['o-tz']],
      ['code=http://loinc.org|', ['o-tz', 'o-period']],
    ]],
  };

  it('_sort: several keys, descending, missing values first when ascending', async () => {
    const order = async (query: string) => ((await server.request('GET', `/fhir/Patient?${query}`)).json.entry ?? [])
      .filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id);
    expect(await order('_sort=birthdate')).to.deep.equal(['p-none', 'p-year', 'p-month', 'p-day', 'p-next']);
    // Descending sorts by the end of each date's range: the year 1990 ends after June 1990.
    expect(await order('_sort=-birthdate')).to.deep.equal(['p-next', 'p-year', 'p-month', 'p-day', 'p-none']);
    expect(await order('_sort=gender,-birthdate&gender=female,male')).to.deep.equal(['p-year', 'p-day', 'p-month']);
    expect(await order('_sort=-_id&_id=p-year,p-day')).to.deep.equal(['p-year', 'p-day']);
  });

  it('_tag, _profile and _security match meta', async () => {
    await put('org-meta', {
      resourceType: 'Organization', name: 'Tagged',
      meta: {
        tag: [{ system: 'urn:tags', code: 'study-a' }],
        security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
        profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'],
      },
    });
    await put('org-plain', { resourceType: 'Organization', name: 'Plain' });
    await check('Organization', ['_tag=urn:tags|study-a', ['org-meta']]);
    await check('Organization', ['_security=R', ['org-meta']]);
    await check('Organization', ['_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient', ['org-meta']]);
    await check('Organization', ['_tag:not=urn:tags|study-a', ['org-plain']]);
  });

  for (const [name, [type, rows]] of Object.entries(table)) {
    it(name, async () => {
      for (const row of rows) await check(type, row);
    });
  }
});
