/**
 * Bad input (issue: REST core): every case gets its 4xx with an OperationOutcome, never a
 * 500, and stores nothing — checked by the system history total before and after.
 */
import { expect } from 'chai';
import { startTestServer, type TestServer } from '../support/test-server.js';

interface BadCase {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
}

const validPatient = { resourceType: 'Patient', gender: 'female' };
const sqlish = `' OR 1=1; DROP TABLE resources; --`;

const CASES: BadCase[] = [
  { name: 'malformed JSON', method: 'POST', path: '/fhir/Patient', body: '{"resourceType": "Patient",', status: 400 },
  { name: 'JSON that is not an object', method: 'POST', path: '/fhir/Patient', body: '[1,2,3]', status: 400 },
  { name: 'empty body', method: 'POST', path: '/fhir/Patient', body: '', status: 400 },
  { name: 'wrong resourceType for the URL', method: 'POST', path: '/fhir/Patient', body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/1' } }, status: 400 },
  { name: 'id mismatch between URL and body', method: 'PUT', path: '/fhir/Patient/abc', body: { ...validPatient, id: 'xyz' }, status: 400 },
  { name: 'update without id in body', method: 'PUT', path: '/fhir/Patient/abc', body: validPatient, status: 400 },
  { name: 'oversized body', method: 'POST', path: '/fhir/Patient', body: { ...validPatient, text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(300_000)}</div>` } }, status: 413 },
  { name: 'deeply nested JSON', method: 'POST', path: '/fhir/Patient', body: `{"resourceType":"Patient","extension":${'['.repeat(500)}${']'.repeat(500)}}`, status: 400 },
  { name: 'invalid id in URL', method: 'PUT', path: '/fhir/Patient/has%20space', body: { ...validPatient, id: 'has space' }, status: 400 },
  { name: 'invalid id on read', method: 'GET', path: '/fhir/Patient/bad*id', status: 400 },
  { name: 'unknown resource type', method: 'POST', path: '/fhir/Spaceship', body: { resourceType: 'Spaceship' }, status: 404 },
  { name: 'unknown type on read', method: 'GET', path: '/fhir/Spaceship/1', status: 404 },
  { name: 'invalid resource: unknown element', method: 'POST', path: '/fhir/Patient', body: { ...validPatient, favouriteColour: 'blue' }, status: 422 },
  { name: 'invalid resource: wrong code', method: 'POST', path: '/fhir/Patient', body: { ...validPatient, gender: 'robot' }, status: 422 },
  { name: 'invalid resource: profile (Observation without subject)', method: 'POST', path: '/fhir/Observation', body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, status: 422 },
  { name: 'bad date search value', method: 'GET', path: '/fhir/Patient?birthdate=notadate', status: 400 },
  { name: 'bad number search value', method: 'GET', path: '/fhir/RiskAssessment?probability=high', status: 400 },
  { name: 'bad _count', method: 'GET', path: '/fhir/Patient?_count=-1', status: 400 },
  { name: 'bad token search value', method: 'GET', path: '/fhir/Patient?identifier=a|b|c', status: 400 },
  { name: 'SQL-looking date', method: 'GET', path: `/fhir/Patient?birthdate=${encodeURIComponent(sqlish)}`, status: 400 },
  { name: 'SQL-looking _sort', method: 'GET', path: `/fhir/Patient?_sort=${encodeURIComponent(sqlish)}`, headers: { Prefer: 'handling=strict' }, status: 400 },
  { name: 'SQL-looking parameter name', method: 'GET', path: `/fhir/Patient?${encodeURIComponent(sqlish)}=1`, headers: { Prefer: 'handling=strict' }, status: 400 },
  { name: 'SQL-looking id', method: 'GET', path: `/fhir/Patient/${encodeURIComponent(sqlish)}`, status: 400 },
  { name: 'SQL-looking type', method: 'GET', path: `/fhir/${encodeURIComponent(sqlish)}`, status: 404 },
  { name: 'SQL-looking If-Match', method: 'PUT', path: '/fhir/Patient/abc', body: { ...validPatient, id: 'abc' }, headers: { 'If-Match': sqlish }, status: 400 },
  { name: 'SQL-looking If-None-Exist', method: 'POST', path: '/fhir/Patient', body: validPatient, headers: { 'If-None-Exist': `name:${sqlish}=1` }, status: 400 },
  { name: 'unsupported Accept', method: 'GET', path: '/fhir/metadata', headers: { Accept: 'application/fhir+xml' }, status: 406 },
  { name: 'unsupported _format', method: 'GET', path: '/fhir/metadata?_format=xml', status: 406 },
  { name: 'unsupported body type', method: 'POST', path: '/fhir/Patient', body: '<Patient/>', headers: { 'Content-Type': 'application/fhir+xml' }, status: 415 },
  { name: 'bundle that is not batch/transaction', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'collection' }, status: 400 },
  { name: 'transaction entry without request', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: validPatient }] }, status: 400 },
  { name: 'transaction with an invalid resource', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: validPatient, request: { method: 'POST', url: 'Patient' } },
    { resource: { ...validPatient, gender: 'robot' }, request: { method: 'POST', url: 'Patient' } },
  ] }, status: 422 },
  { name: 'conditional delete without criteria', method: 'DELETE', path: '/fhir/Patient', status: 405 },
];

describe('bad input (e2e)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ maxBodyBytes: 256 * 1024 });
    // Something stored, so that a destructive query would have something to destroy.
    expect((await server.request('POST', '/fhir/Patient', { body: validPatient })).status).to.equal(201);
  });
  after(async () => server.stop());

  const storedVersions = async () => (await server.request('GET', '/fhir/_history?_count=0')).json.total as number;

  for (const c of CASES) {
    it(`${c.name} → ${c.status}, an OperationOutcome, nothing stored`, async () => {
      const before = await storedVersions();
      const res = await server.request(c.method, c.path, { ...(c.body !== undefined ? { body: c.body } : {}), ...(c.headers ? { headers: c.headers } : {}) });
      expect(res.status, res.text.slice(0, 300)).to.equal(c.status);
      expect(res.json?.resourceType).to.equal('OperationOutcome');
      expect(res.json.issue.length).to.be.greaterThan(0);
      expect(await storedVersions()).to.equal(before);
    });
  }

  it('a harmless SQL-looking string value is just a value: 200, no match, nothing broken', async () => {
    const res = await server.request('GET', `/fhir/Patient?name=${encodeURIComponent(sqlish)}&identifier=${encodeURIComponent(sqlish)}`);
    expect(res.status).to.equal(200);
    expect(res.json.entry ?? []).to.have.length(0);
    expect((await server.request('GET', '/fhir/Patient?_total=accurate')).json.total).to.equal(1);
  });

  it('invalid resources get 422 with the FHIRPath location of each problem', async () => {
    const res = await server.request('POST', '/fhir/Patient', { body: { ...validPatient, gender: 'robot', name: [{ given: ['A', ''] }] } });
    expect(res.status).to.equal(422);
    const expressions = res.json.issue.flatMap((i: any) => i.expression ?? []);
    expect(expressions).to.include('Patient.gender');
    expect(expressions.some((e: string) => e.startsWith('Patient.name[0].given'))).to.equal(true);
  });
});
