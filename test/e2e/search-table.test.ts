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

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const DATA_ABSENT = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';
const CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
/** Locations `l-deep-0` … `l-deep-39`, each part of the previous one: deeper than the 32 levels followed. */
const DEEP = 40;
const deep = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => `l-deep-${from + k}`);

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

    // Hierarchies (search.html#token :below/:above, #recursive). Locations: campus > building >
    // ward, campus > annex; a two-location cycle; a chain deeper than the server follows.
    const location = (key: string, name: string, partOf?: string) =>
      put(key, { resourceType: 'Location', name, ...(partOf ? { partOf: { reference: `Location/${partOf}` } } : {}) });
    await location('l-campus', 'Campus');
    await location('l-building', 'Building', 'l-campus');
    await location('l-ward', 'Ward', 'l-building');
    await location('l-annex', 'Annex', 'l-campus');
    await location('l-elsewhere', 'Elsewhere');
    await location('l-cycle-a', 'Cycle A', 'l-cycle-b');
    await location('l-cycle-b', 'Cycle B', 'l-cycle-a');
    for (let n = 0; n < DEEP; n++) await location(`l-deep-${n}`, `Deep ${n}`, n === 0 ? undefined : `l-deep-${n - 1}`);
    // v3-ActCode: _ActEncounterCode > IMP > {ACUTE, NONAC}; AMB is IMP's sibling.
    for (const [key, code, where] of [['e-imp', 'IMP'], ['e-acute', 'ACUTE', 'l-ward'], ['e-nonac', 'NONAC'], ['e-amb', 'AMB', 'l-elsewhere']] as const) {
      await put(key, {
        resourceType: 'Encounter', status: 'finished', class: { system: ACT_CODE, code },
        ...(where ? { location: [{ location: { reference: `Location/${where}` } }] } : {}),
      });
    }
    // data-absent-reason: unknown > {asked-unknown, temp-unknown, …}; masked stands alone.
    for (const [key, reason] of [['o-unknown', 'unknown'], ['o-asked-unknown', 'asked-unknown'], ['o-temp-unknown', 'temp-unknown'], ['o-masked', 'masked']]) {
      await put(key!, {
        resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'urn:test:codes', code: 'absent' }] },
        subject: { reference: 'Patient/p-none' },
        dataAbsentReason: { coding: [{ system: DATA_ABSENT, code: reason }] },
      });
    }
    // condition-clinical: active > {recurrence, relapse}; inactive > {remission, resolved}.
    for (const [key, status] of [['c-active', 'active'], ['c-relapse', 'relapse'], ['c-resolved', 'resolved'], ['c-remission', 'remission']]) {
      await put(key!, { resourceType: 'Condition', subject: { reference: 'Patient/p-year' }, clinicalStatus: { coding: [{ system: CLINICAL, code: status }] } });
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
      // Without a system the unit matches the quantity's code or its unit (search.html#quantity).
      ['value-quantity=gt100||/min', ['o-period']],
      ['value-quantity=gt100||beats/min', ['o-period']],
      ['value-quantity=gt100|http://unitsofmeasure.org|beats/min', []],
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
    'token :below/:above, v3-ActCode (Encounter.class): descendants, not siblings; ancestors': ['Encounter', [
      [`class:below=${ACT_CODE}|IMP`, ['e-imp', 'e-acute', 'e-nonac']],
      [`class:below=${ACT_CODE}|ACUTE`, ['e-acute']],
      [`class:below=${ACT_CODE}|_ActEncounterCode`, ['e-imp', 'e-acute', 'e-nonac', 'e-amb']],
      [`class:above=${ACT_CODE}|ACUTE`, ['e-imp', 'e-acute']],
      [`class:above=${ACT_CODE}|IMP`, ['e-imp']],
      [`class:above=${ACT_CODE}|_ActEncounterCode`, []],
      [`class:below=${ACT_CODE}|ACUTE,${ACT_CODE}|AMB`, ['e-acute', 'e-amb']],
      [`class:below=${ACT_CODE}|NO-SUCH-CODE`, []],
      [`class:below=${ACT_CODE}|IMP&class:above=${ACT_CODE}|NONAC`, ['e-imp', 'e-nonac']],
      [`class=${ACT_CODE}|IMP`, ['e-imp']], // without the modifier: the code alone
    ]],
    'token :below/:above, data-absent-reason (Observation)': ['Observation', [
      [`data-absent-reason:below=${DATA_ABSENT}|unknown`, ['o-unknown', 'o-asked-unknown', 'o-temp-unknown']],
      [`data-absent-reason:below=${DATA_ABSENT}|asked-unknown`, ['o-asked-unknown']],
      [`data-absent-reason:above=${DATA_ABSENT}|asked-unknown`, ['o-unknown', 'o-asked-unknown']],
      [`data-absent-reason:above=${DATA_ABSENT}|masked`, ['o-masked']],
    ]],
    'token :below/:above, condition-clinical (Condition.clinicalStatus)': ['Condition', [
      [`clinical-status:below=${CLINICAL}|active`, ['c-active', 'c-relapse']],
      [`clinical-status:below=${CLINICAL}|inactive`, ['c-resolved', 'c-remission']],
      [`clinical-status:above=${CLINICAL}|relapse`, ['c-active', 'c-relapse']],
    ]],
    'reference :below/:above on Location.partOf: subtree and ancestors, any depth': ['Location', [
      ['partof:below=Location/l-campus', ['l-building', 'l-ward', 'l-annex']],
      ['partof:below=l-building', ['l-ward']],
      ['partof:below=l-ward', []],
      ['partof:below=l-building,l-annex', ['l-ward']],
      ['partof:above=Location/l-ward', ['l-building', 'l-campus']],
      ['partof:above=l-annex', ['l-campus']],
      ['partof:above=l-campus', []],
      ['partof=l-campus', ['l-building', 'l-annex']], // without the modifier: one level
      ['partof:below=l-campus&name=ward', ['l-ward']],
      // A cycle ends, and puts each of its locations under itself.
      ['partof:below=l-cycle-a', ['l-cycle-a', 'l-cycle-b']],
      ['partof:above=l-cycle-b', ['l-cycle-a', 'l-cycle-b']],
      // 32 levels are followed, no more.
      ['partof:below=l-deep-0', deep(1, 32)],
      [`partof:above=l-deep-${DEEP - 1}`, deep(DEEP - 1 - 32, DEEP - 2)],
    ]],
    'reference :below inside a chain (Encounter.location.partof)': ['Encounter', [
      ['location.partof:below=l-campus', ['e-acute']],
      ['location.partof:below=l-building', ['e-acute']],
      ['location.partof:above=l-ward', []],
    ]],
  };

  it(':below/:above that cannot be answered: no system, an unknown code system, a reference that is not circular', async () => {
    const strict = { Prefer: 'handling=strict' };
    const both = async (type: string, query: string, headers: Record<string, string> = {}) => {
      const get = await server.request('GET', `/fhir/${type}?${query}`, { headers });
      const post = await server.request('POST', `/fhir/${type}/_search`, { body: query, headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' } });
      expect(post.status, `POST ${query}`).to.equal(get.status);
      return get;
    };
    // search.html#token: "[system]|[code]"; without the system there is no hierarchy to search.
    for (const headers of [{}, strict]) {
      const noSystem = await both('Encounter', 'class:below=IMP', headers);
      expect(noSystem.status).to.equal(400);
      expect(noSystem.json.resourceType).to.equal('OperationOutcome');
      expect(noSystem.json.issue[0].code).to.equal('value');
    }
    // A code system the server has no hierarchy for: 400 under strict handling…
    for (const system of ['http://loinc.org', 'http://snomed.info/sct']) {
      const refused = await both('Observation', `code:below=${system}|2339-0`, strict);
      expect(refused.status, refused.text).to.equal(400);
      expect(refused.json.resourceType).to.equal('OperationOutcome');
      expect(refused.json.issue[0].code).to.equal('not-supported');
      expect(refused.json.issue[0].diagnostics).to.contain(system).and.contain(':below');
    }
    // …and reported, the parameter left out, under lenient handling (search.html#errors).
    const lenient = await both('Observation', 'code:below=http://loinc.org|2339-0&data-absent-reason:missing=false');
    expect(lenient.status).to.equal(200);
    const matches = lenient.json.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
    expect(matches).to.deep.equal(['o-asked-unknown', 'o-masked', 'o-temp-unknown', 'o-unknown']);
    const outcome = lenient.json.entry.find((e: any) => e.search.mode === 'outcome').resource;
    expect(outcome.issue).to.have.length(1);
    expect(outcome.issue[0].diagnostics).to.contain("':below'").and.contain('http://loinc.org');
    // Reference :below/:above only on circular references (search.html#recursive).
    const notCircular = await both('Encounter', 'location:below=Location/l-campus', strict);
    expect(notCircular.status).to.equal(400);
    expect(notCircular.json.issue[0].diagnostics).to.contain('circular');
    const reported = await both('Encounter', 'location:below=Location/l-campus');
    expect(reported.status).to.equal(200);
    expect(reported.json.entry.filter((e: any) => e.search.mode === 'outcome')).to.have.length(1);
    // The value of a circular :below names a resource of the same type.
    expect((await both('Location', 'partof:below=Organization/x')).status).to.equal(400);
  });

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
