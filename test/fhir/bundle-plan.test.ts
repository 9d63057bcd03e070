/**
 * Batch/transaction planning (FHIR R4 http.html#transaction): entry URLs, entry requests and
 * the transaction processing order (http.html#trules).
 */
import { expect } from 'chai';
import {
  entryRequestOf, parseEntryUrl, transactionOrder, type BundleEntryRequest, type EntryTarget,
} from '../../src/fhir/bundle-plan.js';
import { FhirError } from '../../src/fhir/fhir-error.js';

const BASE = 'http://example.org/fhir';

function expectEntryError(entry: unknown, index: number, expression: string): FhirError {
  let caught: unknown;
  try {
    entryRequestOf(entry, index, BASE);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'a FhirError is thrown').to.be.instanceOf(FhirError);
  const error = caught as FhirError;
  expect(error.status).to.equal(400);
  expect(error.issues).to.have.length(1);
  expect(error.issues[0]!.expression).to.deep.equal([expression]);
  expect(error.issues[0]!.diagnostics).to.match(new RegExp(`^${expression.replace(/[[\].]/g, '\\$&')}: `));
  return error;
}

describe('bundle-plan', () => {
  describe('parseEntryUrl', () => {
    const rows: { url: string; base?: string; expected: EntryTarget }[] = [
      { url: 'Patient', expected: { interaction: 'type', resourceType: 'Patient', queryEntries: [] } },
      { url: '/Patient', expected: { interaction: 'type', resourceType: 'Patient', queryEntries: [] } },
      { url: 'Patient/123', expected: { interaction: 'instance', resourceType: 'Patient', id: '123', queryEntries: [] } },
      {
        url: 'Patient/a-b.c/_history/7',
        expected: { interaction: 'vread', resourceType: 'Patient', id: 'a-b.c', versionId: '7', queryEntries: [] },
      },
      { url: 'Patient/123/_history', expected: { interaction: 'instance-history', resourceType: 'Patient', id: '123', queryEntries: [] } },
      { url: 'Patient/_history', expected: { interaction: 'type-history', resourceType: 'Patient', queryEntries: [] } },
      { url: '_history', expected: { interaction: 'system-history', queryEntries: [] } },
      {
        url: '_history?_since=2020-01-01',
        expected: { interaction: 'system-history', query: '_since=2020-01-01', queryEntries: [['_since', '2020-01-01']] },
      },
      {
        url: 'Patient?identifier=urn:x|1&name=Ann%20Lee&name=B',
        expected: {
          interaction: 'search', resourceType: 'Patient', query: 'identifier=urn:x|1&name=Ann%20Lee&name=B',
          queryEntries: [['identifier', 'urn:x|1'], ['name', 'Ann Lee'], ['name', 'B']],
        },
      },
      { url: `${BASE}/Patient/123`, base: BASE, expected: { interaction: 'instance', resourceType: 'Patient', id: '123', queryEntries: [] } },
      {
        url: `${BASE}/Observation?code=x`, base: BASE,
        expected: { interaction: 'search', resourceType: 'Observation', query: 'code=x', queryEntries: [['code', 'x']] },
      },
    ];
    for (const row of rows) {
      it(`${row.url}${row.base ? ' (on the base)' : ''} → ${row.expected.interaction}`, () => {
        expect(parseEntryUrl(row.url, row.base)).to.deep.equal(row.expected);
      });
    }

    const invalid: { url: string; base?: string; why: string }[] = [
      { url: 'http://other.example.com/fhir/Patient/1', base: BASE, why: 'an absolute URL on another server' },
      { url: `${BASE}/Patient/1`, why: 'an absolute URL when no base is known' },
      { url: 'urn:uuid:6c1c3b7e-8c5c-4d2e-9d1a-2b4c5d6e7f80', base: BASE, why: 'a urn' },
      { url: 'Patient/bad_id', why: 'an id with an underscore' },
      { url: `Patient/${'a'.repeat(65)}`, why: 'an id longer than 64 characters' },
      { url: 'Patient/1/_history/2/extra', why: 'too many segments' },
      { url: 'Patient/1/$everything', why: 'an operation' },
      { url: 'patient/1', why: 'a type that does not start upper-case' },
      { url: '', why: 'an empty url' },
    ];
    for (const row of invalid) {
      it(`refuses ${row.why}`, () => {
        expect(parseEntryUrl(row.url, row.base)).to.equal(undefined);
      });
    }
  });

  describe('entryRequestOf', () => {
    const patient = { resourceType: 'Patient', name: [{ family: 'Lee' }] };

    it('reads a POST entry with its resource, fullUrl and ifNoneExist', () => {
      const entry = {
        fullUrl: 'urn:uuid:1', resource: patient,
        request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:x|1' },
      };
      const request = entryRequestOf(entry, 4, BASE);
      expect(request).to.deep.include({ index: 4, method: 'POST', url: 'Patient', fullUrl: 'urn:uuid:1', ifNoneExist: 'identifier=urn:x|1' });
      expect(request.resource).to.deep.equal(patient);
      expect(request.target.interaction).to.equal('type');
    });

    it('copies the resource: planning never mutates the request body', () => {
      const entry = { resource: structuredClone(patient), request: { method: 'POST', url: 'Patient' } };
      const request = entryRequestOf(entry, 0);
      request.resource!.id = 'assigned';
      expect(entry.resource).to.not.have.property('id');
    });

    it('keeps ifMatch of a PUT', () => {
      const entry = { resource: { ...patient, id: '1' }, request: { method: 'PUT', url: 'Patient/1', ifMatch: 'W/"2"' } };
      expect(entryRequestOf(entry, 0)).to.deep.include({ method: 'PUT', ifMatch: 'W/"2"' });
    });

    it('turns GET Type into a search and GET Type/id into a read', () => {
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient' } }, 0).target.interaction).to.equal('search');
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient/1' } }, 0).target.interaction).to.equal('read');
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient/1/_history/2' } }, 0).target.interaction).to.equal('vread');
    });

    it('accepts DELETE and PATCH on an instance or by criteria', () => {
      expect(entryRequestOf({ request: { method: 'DELETE', url: 'Patient/1' } }, 0).method).to.equal('DELETE');
      expect(entryRequestOf({ request: { method: 'DELETE', url: 'Patient?identifier=x' } }, 0).target.interaction).to.equal('search');
      const patch = { resource: { resourceType: 'Binary' }, request: { method: 'PATCH', url: 'Patient/1' } };
      expect(entryRequestOf(patch, 0).method).to.equal('PATCH');
    });

    const errors: { why: string; entry: unknown; index: number; expression: string }[] = [
      { why: 'an entry that is not an object', entry: 'Patient', index: 0, expression: 'Bundle.entry[0]' },
      { why: 'no request', entry: { resource: patient }, index: 2, expression: 'Bundle.entry[2].request' },
      { why: 'an unknown method', entry: { request: { method: 'FETCH', url: 'Patient' } }, index: 1, expression: 'Bundle.entry[1].request.method' },
      { why: 'a lower-case method', entry: { request: { method: 'get', url: 'Patient' } }, index: 1, expression: 'Bundle.entry[1].request.method' },
      { why: 'no url', entry: { request: { method: 'GET' } }, index: 3, expression: 'Bundle.entry[3].request.url' },
      {
        why: 'a url on another server', entry: { request: { method: 'GET', url: 'http://other.example.com/fhir/Patient/1' } },
        index: 3, expression: 'Bundle.entry[3].request.url',
      },
      { why: 'POST without a resource', entry: { request: { method: 'POST', url: 'Patient' } }, index: 5, expression: 'Bundle.entry[5].resource' },
      { why: 'PUT without a resource', entry: { request: { method: 'PUT', url: 'Patient/1' } }, index: 5, expression: 'Bundle.entry[5].resource' },
      {
        why: 'a POST url with an id', entry: { resource: patient, request: { method: 'POST', url: 'Patient/1' } },
        index: 6, expression: 'Bundle.entry[6].request.url',
      },
      {
        why: 'a POST whose resource type does not match the url',
        entry: { resource: { resourceType: 'Observation' }, request: { method: 'POST', url: 'Patient' } },
        index: 7, expression: 'Bundle.entry[7].resource',
      },
      {
        why: 'a PUT whose resource type does not match the url',
        entry: { resource: { resourceType: 'Observation', id: '1' }, request: { method: 'PUT', url: 'Patient/1' } },
        index: 8, expression: 'Bundle.entry[8].resource',
      },
      {
        why: 'a PUT on a type', entry: { resource: patient, request: { method: 'PUT', url: 'Patient' } },
        index: 9, expression: 'Bundle.entry[9].request.url',
      },
      {
        why: 'a DELETE on a type', entry: { request: { method: 'DELETE', url: 'Patient' } },
        index: 10, expression: 'Bundle.entry[10].request.url',
      },
      {
        why: 'a resource that is not a resource', entry: { resource: [1, 2], request: { method: 'POST', url: 'Patient' } },
        index: 11, expression: 'Bundle.entry[11].resource',
      },
    ];
    for (const row of errors) {
      it(`400 for ${row.why}, located at ${row.expression}`, () => {
        expectEntryError(row.entry, row.index, row.expression);
      });
    }
  });

  describe('transactionOrder (http.html#trules)', () => {
    function request(index: number, method: BundleEntryRequest['method']): BundleEntryRequest {
      return { index, method, url: 'Patient', target: { interaction: 'type', resourceType: 'Patient', queryEntries: [] } };
    }

    it('orders DELETE, POST, PUT/PATCH, GET/HEAD, stable within each group', () => {
      const methods: BundleEntryRequest['method'][] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'DELETE', 'POST', 'PUT', 'GET'];
      const requests = methods.map((m, i) => request(i, m));
      const ordered = transactionOrder(requests);
      expect(ordered.map((r) => `${r.method}${r.index}`)).to.deep.equal([
        'DELETE3', 'DELETE6', 'POST2', 'POST7', 'PUT1', 'PATCH4', 'PUT8', 'GET0', 'HEAD5', 'GET9',
      ]);
    });

    it('returns a new array and leaves the input in bundle order', () => {
      const requests = [request(0, 'GET'), request(1, 'DELETE')];
      const ordered = transactionOrder(requests);
      expect(ordered).to.not.equal(requests);
      expect(requests.map((r) => r.index)).to.deep.equal([0, 1]);
      expect(ordered.map((r) => r.index)).to.deep.equal([1, 0]);
    });
  });
});
