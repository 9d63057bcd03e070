/**
 * One interaction model (issue: interaction pipeline): every row runs as a REST request on one
 * server and as a batch entry on another that holds the same data, and both answer the same
 * status. Rows run in order, so both servers go through the same states.
 */
import { expect } from 'chai';
import { startTestServer, type TestServer } from '../support/test-server.js';

interface Row {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  body?: unknown;
  headers?: { ifMatch?: string; ifNoneExist?: string };
  status: number;
}

const patient = (id: string, family: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient', id, identifier: [{ system: 'urn:x', value: id }], name: [{ family }], ...extra,
});
const observation = (id: string, subject: string) => ({
  resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: subject },
});

const ROWS: Row[] = [
  { method: 'GET', url: 'metadata', status: 200 },
  { method: 'PUT', url: 'Patient/p1', body: patient('p1', 'Lee'), status: 201 },
  { method: 'PUT', url: 'Observation/o1', body: observation('o1', 'Patient/p1'), status: 201 },
  { method: 'GET', url: 'Patient/p1', status: 200 },
  { method: 'GET', url: 'Patient/p1?_summary=true', status: 200 },
  { method: 'GET', url: 'Patient/nothing-here', status: 404 },
  { method: 'GET', url: 'Patient/bad_id!', status: 400 },
  { method: 'GET', url: 'NotAType/1', status: 404 },
  { method: 'GET', url: 'Patient/p1/_history/1', status: 200 },
  { method: 'GET', url: 'Patient/p1/_history/99', status: 404 },
  { method: 'GET', url: 'Patient/p1/Observation', status: 200 },
  { method: 'GET', url: 'Patient/p1/Observation?code=8867-4', status: 200 },
  { method: 'GET', url: 'Patient?name=Lee', status: 200 },
  { method: 'GET', url: 'Patient?birthdate=not-a-date', status: 400 },
  { method: 'GET', url: 'Patient/_history', status: 200 },
  { method: 'GET', url: 'Patient/p1/_history', status: 200 },
  { method: 'GET', url: '_history?_count=5', status: 200 },
  { method: 'GET', url: '?_type=Patient', status: 200 },
  { method: 'GET', url: 'Patient/p1/$everything', status: 400 },
  { method: 'POST', url: 'Patient/$validate', body: patient('v', 'Valid'), status: 200 },
  { method: 'POST', url: 'Patient', body: patient('ignored', 'Lee'), headers: { ifNoneExist: 'identifier=urn:x|p1' }, status: 200 },
  { method: 'PUT', url: 'Patient/p1', body: patient('p1', 'Lee'), status: 200 },
  { method: 'PUT', url: 'Patient/p1', body: patient('p1', 'Lee', { active: true }), headers: { ifMatch: 'W/"9"' }, status: 412 },
  { method: 'PUT', url: 'Patient/p1', body: patient('p1', 'Lee', { active: true }), headers: { ifMatch: 'W/"1"' }, status: 200 },
  { method: 'PUT', url: 'Patient/p1', body: patient('other', 'Lee'), status: 400 },
  { method: 'PATCH', url: 'Patient/p1', body: [{ op: 'replace', path: '/active', value: false }], status: 200 },
  { method: 'PATCH', url: 'Patient/p1', body: [{ op: 'remove', path: '/id' }], status: 422 },
  { method: 'PUT', url: 'Patient?identifier=urn:x|p1', body: patient('p1', 'Lee', { gender: 'female' }), status: 200 },
  { method: 'PUT', url: 'Patient/p2', body: patient('p2', 'Kim'), status: 201 },
  { method: 'DELETE', url: 'Patient/p2', headers: { ifMatch: 'W/"7"' }, status: 412 },
  { method: 'DELETE', url: 'Patient/p2', status: 204 },
  { method: 'GET', url: 'Patient/p2', status: 410 },
  { method: 'DELETE', url: 'Patient?identifier=urn:x|nobody', status: 204 },
  { method: 'PUT', url: 'Patient', body: patient('p3', 'X'), status: 405 },
  { method: 'DELETE', url: 'Patient', status: 405 },
  { method: 'POST', url: 'Patient/p1', body: patient('p1', 'Lee'), status: 405 },
  { method: 'GET', url: 'Patient/p1/_history/1/x/y', status: 404 },
];

describe('one interaction model: REST and batch entries answer alike (e2e)', () => {
  let rest: TestServer;
  let batch: TestServer;
  before(async () => {
    [rest, batch] = await Promise.all([startTestServer(), startTestServer()]);
  });
  after(async () => Promise.all([rest.stop(), batch.stop()]));

  async function viaRest(row: Row): Promise<number> {
    const headers: Record<string, string> = {};
    if (row.headers?.ifMatch) headers['If-Match'] = row.headers.ifMatch;
    if (row.headers?.ifNoneExist) headers['If-None-Exist'] = row.headers.ifNoneExist;
    if (row.method === 'PATCH') headers['Content-Type'] = 'application/json-patch+json';
    return (await rest.request(row.method, `/fhir/${row.url}`, { headers, ...(row.body !== undefined ? { body: row.body } : {}) })).status;
  }

  async function viaBatch(row: Row): Promise<number> {
    const resource = row.method === 'PATCH'
      ? { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(row.body)).toString('base64') }
      : row.body;
    const entry = {
      ...(resource !== undefined ? { resource } : {}),
      request: { method: row.method, url: row.url, ...row.headers },
    };
    const response = await batch.request('POST', '/fhir', { body: { resourceType: 'Bundle', type: 'batch', entry: [entry] } });
    expect(response.status, 'the batch itself succeeds').to.equal(200);
    return Number(String(response.json.entry[0].response.status).split(' ')[0]);
  }

  for (const row of ROWS) {
    it(`${row.method} ${row.url || '(base)'} → ${row.status} both ways`, async () => {
      const [restStatus, batchStatus] = [await viaRest(row), await viaBatch(row)];
      expect({ rest: restStatus, batch: batchStatus }).to.deep.equal({ rest: row.status, batch: row.status });
    });
  }

  it('a 405 says which methods the URL takes (Allow, RFC 9110 section 15.5.6)', async () => {
    const res = await rest.request('DELETE', '/fhir/metadata');
    expect(res.status).to.equal(405);
    expect(res.headers.get('allow')).to.equal('GET, HEAD');
    expect((await rest.request('POST', '/fhir/Patient/p1')).headers.get('allow')).to.equal('GET, HEAD, PUT, PATCH, DELETE');
  });

  it('$validate with a malformed Parameters body is a 400', async () => {
    const res = await rest.request('POST', '/fhir/Patient/$validate', { body: { resourceType: 'Parameters', parameter: [null] } });
    expect(res.status).to.equal(400);
  });
});
