/**
 * The access-policy seam (issue: interaction pipeline): a test policy that confines every
 * request to the compartment of Patient/pa, refuses deletes and hides Observations of
 * category "social-history", proves that the executor asks it before (authorize), inside (the
 * restriction is ANDed into searches, includes, revincludes and conditional matches, so totals
 * count nothing else) and after (reads, history and written content are filtered), over REST
 * and in bundle entries alike.
 */
import { expect } from 'chai';
import type { AccessPolicy } from '../../src/auth/access-policy.js';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { referenceStrings, type Resource } from '../../src/fhir/resource.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const OWNER = 'pa';

/** In the compartment of Patient/pa: the patient itself, or a resource that references it. */
function inCompartment(resource: Resource): boolean {
  if (resource.resourceType === 'Patient') return resource.id === OWNER;
  return referenceStrings(resource).includes(`Patient/${OWNER}`);
}

const hidden = (resource: Resource) => JSON.stringify(resource.category ?? []).includes('social-history');

const testPolicy: AccessPolicy = {
  authorize(interaction) {
    if (interaction.method === 'DELETE') throw new FhirError(403, { severity: 'error', code: 'forbidden', diagnostics: 'This test policy refuses deletes' });
  },
  searchRestriction(resourceType) {
    return {
      criteria: resourceType === 'Observation' ? [['category:not', 'social-history']] : [],
      compartment: { ownerType: 'Patient', ownerIds: [OWNER] },
    };
  },
  mayAccess(resource) {
    return inCompartment(resource) && !hidden(resource);
  },
};

const patient = (id: string) => ({ resourceType: 'Patient', id, identifier: [{ system: 'urn:x', value: id }], name: [{ family: `F-${id}` }] });
const observation = (id: string, subject: string, category = 'vital-signs') => ({
  resourceType: 'Observation', id, status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: `Patient/${subject}` },
});

describe('access policy seam: a test policy confined to one patient (e2e)', () => {
  let open: TestServer;
  let server: TestServer;
  before(async () => {
    // The same data folder, first without a policy to seed it, then with the policy.
    open = await startTestServer();
    for (const body of [patient('pa'), patient('pb'), observation('oa1', 'pa'), observation('oa2', 'pa'), observation('oa-social', 'pa', 'social-history'),
      observation('ob1', 'pb'), observation('ob2', 'pb')]) {
      const res = await open.request('PUT', `/fhir/${body.resourceType}/${body.id}`, { body });
      expect(res.status, res.text).to.equal(201);
    }
    // A deleted resource of the other patient: its deletion must not be told apart from nothing.
    expect((await open.request('PUT', '/fhir/Observation/ob-deleted', { body: observation('ob-deleted', 'pb') })).status).to.equal(201);
    expect((await open.request('DELETE', '/fhir/Observation/ob-deleted')).status).to.equal(204);
    expect((await open.request('PUT', '/fhir/Observation/oa-deleted', { body: observation('oa-deleted', 'pa') })).status).to.equal(201);
    expect((await open.request('DELETE', '/fhir/Observation/oa-deleted')).status).to.equal(204);
    const dataDir = open.dataDir;
    await open.close();
    server = await startTestServer({ dataDir }, undefined, testPolicy);
  });
  after(async () => server.stop());

  // A history's delete entries carry no resource: they are named by their request.
  const ids = (bundle: any): string[] => (bundle.entry ?? [])
    .map((e: any) => (e.resource ? `${e.resource.resourceType}/${e.resource.id}` : `deleted ${e.request.url}`)).sort();

  it('reads: the own patient 200; another patient, its data and a hidden Observation read as absent (404)', async () => {
    expect((await server.request('GET', '/fhir/Patient/pa')).status).to.equal(200);
    expect((await server.request('GET', '/fhir/Observation/oa1')).status).to.equal(200);
    for (const path of ['/fhir/Patient/pb', '/fhir/Observation/ob1', '/fhir/Observation/oa-social', '/fhir/Patient/pb/_history/1']) {
      const res = await server.request('GET', path);
      expect(res.status, path).to.equal(404);
      expect(res.json.resourceType).to.equal('OperationOutcome');
    }
  });

  it('searches: the restriction is ANDed in, so matches and _total count only what may be seen', async () => {
    const res = await server.request('GET', '/fhir/Observation?_total=accurate');
    expect(ids(res.json)).to.deep.equal(['Observation/oa1', 'Observation/oa2']);
    expect(res.json.total).to.equal(2);
    const count = await server.request('GET', '/fhir/Observation?code=8867-4&_summary=count');
    expect(count.json.total).to.equal(2);
    expect(ids((await server.request('GET', '/fhir/Patient')).json)).to.deep.equal(['Patient/pa']);
    expect(ids((await server.request('GET', '/fhir/Patient/pb/Observation')).json)).to.deep.equal([]);
  });

  it('_include and _revinclude add only what may be seen', async () => {
    const included = await server.request('GET', '/fhir/Observation?_include=Observation:subject');
    expect(ids(included.json)).to.deep.equal(['Observation/oa1', 'Observation/oa2', 'Patient/pa']);
    const revincluded = await server.request('GET', '/fhir/Patient?_revinclude=Observation:subject');
    expect(ids(revincluded.json)).to.deep.equal(['Observation/oa1', 'Observation/oa2', 'Patient/pa']);
  });

  it('history: type and system history show only what may be seen', async () => {
    const own = ['Observation/oa-deleted', 'Observation/oa1', 'Observation/oa2', 'deleted Observation/oa-deleted'];
    const history = await server.request('GET', '/fhir/Observation/_history');
    expect(ids(history.json)).to.deep.equal(own);
    const system = await server.request('GET', '/fhir/_history');
    expect(ids(system.json)).to.deep.equal([...own, 'Patient/pa'].sort());
  });

  it('writes: content outside the compartment is 403, deletes are refused before anything runs, and nothing changed', async () => {
    const foreign = await server.request('POST', '/fhir/Observation', { body: observation('x', 'pb') });
    expect(foreign.status).to.equal(403);
    // Replacing another patient's Observation: it reads as absent, so the answer is a 404.
    const overwrite = await server.request('PUT', '/fhir/Observation/ob1', { body: observation('ob1', 'pa') });
    expect(overwrite.status, 'replacing another patient\'s Observation').to.equal(404);
    expect((await server.request('DELETE', '/fhir/Observation/oa1')).status).to.equal(403);
    const own = await server.request('POST', '/fhir/Observation', { body: observation('y', 'pa') });
    expect(own.status).to.equal(201);
    // A conditional update never matches what may not be seen: this one matches nothing and
    // would create a Patient outside the compartment.
    const conditional = await server.request('PUT', '/fhir/Patient?identifier=urn:x|pb', { body: { ...patient('pc') } });
    expect(conditional.status).to.equal(403);
    expect((await server.request('GET', '/fhir/Observation?_total=accurate&_count=0')).json.total).to.equal(3);
  });

  it('bundle entries get the same answers as REST', async () => {
    const res = await server.request('POST', '/fhir', {
      body: {
        resourceType: 'Bundle', type: 'batch', entry: [
          { request: { method: 'GET', url: 'Patient/pa' } },
          { request: { method: 'GET', url: 'Patient/pb' } },
          { request: { method: 'GET', url: 'Observation?_total=accurate&code=8867-4' } },
          { request: { method: 'DELETE', url: 'Observation/oa1' } },
          { resource: observation('z', 'pb'), request: { method: 'POST', url: 'Observation' } },
        ],
      },
    });
    expect(res.status).to.equal(200);
    expect(res.json.entry.map((e: any) => e.response.status.split(' ')[0])).to.deep.equal(['200', '404', '200', '403', '403']);
    expect(res.json.entry[2].resource.total).to.equal(3);
    const transaction = await server.request('POST', '/fhir', {
      body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: observation('t', 'pb'), request: { method: 'POST', url: 'Observation' } }] },
    });
    expect(transaction.status).to.equal(403);
  });

  it('nothing tells a hidden resource from an absent one: operations, instance history and a patch answer 404', async () => {
    for (const [method, path] of [['GET', '/fhir/Patient/pb/$verify'], ['GET', '/fhir/Patient/pb/_history'], ['GET', '/fhir/Patient/pb/$reidentify']] as const) {
      const res = await server.request(method, path);
      expect(res.status, `${method} ${path}: ${res.text}`).to.equal(404);
    }
    const patch = await server.request('PATCH', '/fhir/Patient/pb', {
      body: JSON.stringify([{ op: 'add', path: '/active', value: true }]), headers: { 'Content-Type': 'application/json-patch+json' },
    });
    expect(patch.status).to.equal(404);
    // Content outside the compartment is refused before the store is asked: the same 403
    // whether the id exists or not.
    expect((await server.request('PUT', '/fhir/Patient/pb', { body: patient('pb') })).status).to.equal(403);
    expect((await server.request('PUT', '/fhir/Patient/never-was', { body: patient('never-was') })).status).to.equal(403);
  });

  it('a deleted resource is 410 when it was visible, and 404 when it was another patient\'s', async () => {
    expect((await server.request('GET', '/fhir/Observation/oa-deleted')).status).to.equal(410);
    expect((await server.request('GET', '/fhir/Observation/ob-deleted')).status).to.equal(404);
  });

  it('chained and _has searches, whose inner searches the restriction does not reach yet, are refused (403)', async () => {
    expect((await server.request('GET', '/fhir/Patient?_has:Observation:subject:category=social-history')).status).to.equal(403);
    expect((await server.request('GET', '/fhir/Observation?subject.name=F-pb')).status).to.equal(403);
  });
});
