/**
 * The FHIR R4 http.html URL grammar (fhir/interaction.ts), shared by HTTP and bundle entries.
 */
import { expect } from 'chai';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { bodyKindOf, parseInteraction, type Interaction } from '../../src/fhir/interaction.js';

function statusOf(work: () => unknown): number | undefined {
  try {
    work();
  } catch (error) {
    if (error instanceof FhirError) return error.status;
    throw error;
  }
  return undefined;
}

describe('parseInteraction', () => {
  const rows: [string, string, Partial<Interaction>][] = [
    ['GET', '', { kind: 'search-system' }],
    ['POST', '/', { kind: 'bundle' }],
    ['GET', 'metadata', { kind: 'capabilities' }],
    ['GET', '_history?_since=2024-01-01T00:00:00Z', { kind: 'history-system', query: [['_since', '2024-01-01T00:00:00Z']] }],
    ['POST', '_search', { kind: 'search-system' }],
    ['GET', '$ledger', { kind: 'operation', operation: { name: 'ledger', level: 'system' } }],
    ['GET', 'Patient?name=Lee&_format=json', { kind: 'search-type', resourceType: 'Patient', query: [['name', 'Lee']] }],
    ['POST', 'Patient', { kind: 'create', resourceType: 'Patient' }],
    ['PUT', 'Patient?identifier=urn:x|1', { kind: 'conditional-update', resourceType: 'Patient', rawQuery: 'identifier=urn:x|1' }],
    ['PATCH', 'Patient?identifier=urn:x|1', { kind: 'conditional-patch', resourceType: 'Patient' }],
    ['DELETE', 'Patient?identifier=urn:x|1', { kind: 'conditional-delete', resourceType: 'Patient' }],
    ['GET', 'Patient/_history', { kind: 'history-type', resourceType: 'Patient' }],
    ['POST', 'Patient/_search', { kind: 'search-type', resourceType: 'Patient' }],
    ['POST', 'Patient/$validate', { kind: 'operation', resourceType: 'Patient', operation: { name: 'validate', level: 'type' } }],
    ['GET', 'Patient/p1', { kind: 'read', resourceType: 'Patient', id: 'p1' }],
    ['HEAD', 'Patient/p1', { kind: 'read', resourceType: 'Patient', id: 'p1' }],
    ['PUT', 'Patient/p1', { kind: 'update', resourceType: 'Patient', id: 'p1' }],
    ['PATCH', 'Patient/p1', { kind: 'patch', resourceType: 'Patient', id: 'p1' }],
    ['DELETE', 'Patient/p1', { kind: 'delete', resourceType: 'Patient', id: 'p1' }],
    ['GET', 'Patient/p1/_history', { kind: 'history-instance', resourceType: 'Patient', id: 'p1' }],
    ['GET', 'Patient/p1/$everything', { kind: 'operation', resourceType: 'Patient', id: 'p1', operation: { name: 'everything', level: 'instance' } }],
    ['GET', 'Patient/p1/Observation?code=x', { kind: 'search-compartment', resourceType: 'Patient', id: 'p1', compartmentType: 'Observation' }],
    ['GET', 'Patient/p1/_history/3', { kind: 'vread', resourceType: 'Patient', id: 'p1', versionId: '3' }],
    ['GET', 'Patient/p1/_history/3/$verify', { kind: 'operation', versionId: '3', operation: { name: 'verify', level: 'version' } }],
  ];
  for (const [method, url, expected] of rows) {
    it(`${method} ${url || '(base)'} → ${expected.kind}`, () => {
      expect(parseInteraction(method, url)).to.deep.include(expected);
    });
  }

  const refused: [string, string, number, string][] = [
    ['TRACE', 'Patient', 405, 'a method FHIR does not use'],
    ['PUT', 'Patient', 405, 'a conditional update without criteria'],
    ['DELETE', 'Patient', 405, 'a conditional delete without criteria'],
    ['POST', 'Patient/p1', 405, 'POST on an instance'],
    ['PUT', 'metadata', 405, 'PUT on metadata'],
    ['GET', '_search', 405, 'GET on _search'],
    ['POST', 'Patient/p1/_history/2', 405, 'a write to a version'],
    ['DELETE', 'Patient/$validate', 405, 'DELETE of an operation'],
    ['GET', 'patient/p1', 404, 'a type that is not capitalised'],
    ['GET', 'Patient/p1/_history/2/extra/more', 404, 'too many segments'],
    ['GET', 'Patient/p1/x/y', 404, 'four segments without _history'],
    ['GET', 'Patient/%E0%A4%A', 400, 'a malformed percent-encoding'],
  ];
  for (const [method, url, status, why] of refused) {
    it(`${status} for ${why}`, () => {
      expect(statusOf(() => parseInteraction(method, url))).to.equal(status);
    });
  }

  it('carries the conditional headers', () => {
    expect(parseInteraction('PUT', 'Patient/1', { ifMatch: 'W/"2"' }).conditions).to.deep.equal({ ifMatch: 'W/"2"' });
  });

  it('says which body each interaction takes', () => {
    expect(bodyKindOf(parseInteraction('POST', 'Patient'))).to.equal('resource');
    expect(bodyKindOf(parseInteraction('PATCH', 'Patient/1'))).to.equal('json-patch');
    expect(bodyKindOf(parseInteraction('POST', 'Patient/_search'))).to.equal('form');
    expect(bodyKindOf(parseInteraction('GET', 'Patient'))).to.equal('none');
    expect(bodyKindOf(parseInteraction('POST', 'Patient/$validate'))).to.equal('optional-resource');
  });
});
