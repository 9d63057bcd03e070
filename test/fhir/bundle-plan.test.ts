/**
 * Batch/transaction planning (FHIR R4 http.html#transaction): entry URLs, entry requests and
 * the transaction processing order (http.html#trules).
 */
import { expect } from 'chai';
import { entryRequestOf, transactionOrder, type BundleEntryRequest } from '../../src/fhir/bundle-plan.js';
import type { InteractionKind, InteractionMethod } from '../../src/fhir/interaction.js';
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
  expect(error.status).to.be.oneOf([400, 404, 405]);
  expect(error.issues).to.have.length(1);
  expect(error.issues[0]!.expression).to.deep.equal([expression]);
  expect(error.issues[0]!.diagnostics).to.match(new RegExp(`^${expression.replace(/[[\].]/g, '\\$&')}: `));
  return error;
}

describe('bundle-plan', () => {
  describe('entryRequestOf', () => {
    const patient = { resourceType: 'Patient', name: [{ family: 'Lee' }] };

    it('reads a POST entry with its resource, fullUrl and ifNoneExist', () => {
      const entry = {
        fullUrl: 'urn:uuid:1', resource: patient,
        request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:x|1' },
      };
      const request = entryRequestOf(entry, 4, BASE);
      expect(request).to.deep.include({ index: 4, fullUrl: 'urn:uuid:1' });
      expect(request.interaction).to.deep.include({ kind: 'create', method: 'POST', resourceType: 'Patient', conditions: { ifNoneExist: 'identifier=urn:x|1' } });
      expect(request.resource).to.deep.equal(patient);
      expect(request.interaction.body).to.deep.equal(patient);
    });

    it('copies the resource: planning never mutates the request body', () => {
      const entry = { resource: structuredClone(patient), request: { method: 'POST', url: 'Patient' } };
      const request = entryRequestOf(entry, 0);
      request.resource!.id = 'assigned';
      expect(entry.resource).to.not.have.property('id');
    });

    it('keeps ifMatch of a PUT', () => {
      const entry = { resource: { ...patient, id: '1' }, request: { method: 'PUT', url: 'Patient/1', ifMatch: 'W/"2"' } };
      expect(entryRequestOf(entry, 0).interaction).to.deep.include({ kind: 'update', method: 'PUT', conditions: { ifMatch: 'W/"2"' } });
    });

    it('turns GET Type into a search and GET Type/id into a read', () => {
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient' } }, 0).interaction.kind).to.equal('search-type');
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient/1' } }, 0).interaction.kind).to.equal('read');
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient/1/_history/2' } }, 0).interaction.kind).to.equal('vread');
      expect(entryRequestOf({ request: { method: 'GET', url: 'Patient/p1/Observation' } }, 0).interaction.kind).to.equal('search-compartment');
      expect(entryRequestOf({ request: { method: 'GET', url: 'metadata' } }, 0).interaction.kind).to.equal('capabilities');
      expect(entryRequestOf({ request: { method: 'GET', url: `${BASE}/Patient/1` } }, 0, BASE).interaction).to.deep.include({ kind: 'read', id: '1' });
    });

    it('accepts DELETE and PATCH on an instance or by criteria', () => {
      expect(entryRequestOf({ request: { method: 'DELETE', url: 'Patient/1' } }, 0).interaction.kind).to.equal('delete');
      expect(entryRequestOf({ request: { method: 'DELETE', url: 'Patient?identifier=x' } }, 0).interaction.kind).to.equal('conditional-delete');
      const data = Buffer.from(JSON.stringify([{ op: 'replace', path: '/active', value: true }])).toString('base64');
      const patch = { resource: { resourceType: 'Binary', data }, request: { method: 'PATCH', url: 'Patient/1' } };
      expect(entryRequestOf(patch, 0).interaction).to.deep.include({ kind: 'patch', body: [{ op: 'replace', path: '/active', value: true }] });
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
        why: 'a PATCH whose resource is not a Binary', entry: { resource: patient, request: { method: 'PATCH', url: 'Patient/1' } },
        index: 12, expression: 'Bundle.entry[12].resource',
      },
      {
        why: 'a nested Bundle POSTed to the base', entry: { resource: { resourceType: 'Bundle', type: 'batch' }, request: { method: 'POST', url: '' } },
        index: 13, expression: 'Bundle.entry[13].request.url',
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
    function request(index: number, method: InteractionMethod): BundleEntryRequest {
      const kinds: Record<InteractionMethod, InteractionKind> = {
        GET: 'read', HEAD: 'read', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete',
      };
      return { index, interaction: { kind: kinds[method], method, resourceType: 'Patient', id: '1', query: [], rawQuery: '', conditions: {} } };
    }

    it('orders DELETE, POST, PUT/PATCH, GET/HEAD, stable within each group', () => {
      const methods: InteractionMethod[] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'DELETE', 'POST', 'PUT', 'GET'];
      const requests = methods.map((m, i) => request(i, m));
      const ordered = transactionOrder(requests);
      expect(ordered.map((r) => `${r.interaction.method}${r.index}`)).to.deep.equal([
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
