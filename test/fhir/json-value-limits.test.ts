/**
 * The walk over a parsed body: repetitions per element (413) and numbers JSON.parse could not
 * represent (422), each located by FHIRPath.
 */
import { expect } from 'chai';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { checkJsonValueLimits } from '../../src/fhir/json-value-limits.js';

const LIMITS = { maxElementRepetitions: 3 };

function refusal(value: unknown): FhirError {
  let caught: unknown;
  try {
    checkJsonValueLimits(value, LIMITS);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'a FhirError is thrown').to.be.instanceOf(FhirError);
  return caught as FhirError;
}

describe('json-value-limits', () => {
  it('accepts arrays at the limit and finite numbers, however large', () => {
    expect(() => checkJsonValueLimits({ resourceType: 'Patient', identifier: [{}, {}, {}], x: [1.7e308, -1.7e308, 5e-324] }, LIMITS)).to.not.throw();
  });

  const repetitions: { why: string; value: unknown; expression: string }[] = [
    { why: 'an element of the resource', value: { resourceType: 'Patient', identifier: [1, 2, 3, 4] }, expression: 'Patient.identifier' },
    { why: 'a nested element, with the index of its parent', value: { resourceType: 'Patient', name: [{}, { given: ['a', 'b', 'c', 'd'] }] }, expression: 'Patient.name[1].given' },
    { why: 'an element of a resource inside a root Bundle', value: { resourceType: 'Bundle', entry: [{ resource: { resourceType: 'Patient', identifier: [1, 2, 3, 4] } }] }, expression: 'Bundle.entry[0].resource.identifier' },
    { why: "a nested Bundle's entry (only the root Bundle's entry is the batch itself)", value: { resourceType: 'Bundle', entry: [{ resource: { resourceType: 'Bundle', entry: [1, 2, 3, 4] } }] }, expression: 'Bundle.entry[0].resource.entry' },
    { why: 'the entry of a root that is not a Bundle', value: { resourceType: 'List', entry: [1, 2, 3, 4] }, expression: 'List.entry' },
    { why: 'a root array (a JSON Patch document)', value: [1, 2, 3, 4], expression: '' },
  ];
  for (const row of repetitions) {
    it(`refuses too many repetitions of ${row.why}: 413 at ${row.expression || '(the root)'}`, () => {
      const error = refusal(row.value);
      expect(error.status).to.equal(413);
      expect(error.issues[0]!.code).to.equal('too-long');
      expect(error.issues[0]!.expression).to.deep.equal([row.expression]);
    });
  }

  it("does not count a root Bundle's entries as repetitions (the bundle's own limit does)", () => {
    expect(() => checkJsonValueLimits({ resourceType: 'Bundle', entry: [{}, {}, {}, {}, {}] }, LIMITS)).to.not.throw();
  });

  for (const text of ['1e400', '-1e400', '1' + '0'.repeat(400)]) {
    it(`refuses ${text.length > 10 ? 'a 401-digit integer' : text} (JSON.parse gives ±Infinity): 422 at its location`, () => {
      const error = refusal(JSON.parse(`{"resourceType":"Observation","component":[{},{"valueQuantity":{"value":${text}}}]}`));
      expect(error.status).to.equal(422);
      expect(error.issues[0]!.code).to.equal('value');
      expect(error.issues[0]!.expression).to.deep.equal(['Observation.component[1].valueQuantity.value']);
    });
  }

  it('locates a bad number in a JSON Patch document by index', () => {
    const error = refusal(JSON.parse('[{"op":"add","path":"/x","value":{"value":1e999}}]'));
    expect(error.issues[0]!.expression).to.deep.equal(['[0].value.value']);
  });

  it('never echoes a key that is not an element name', () => {
    const error = refusal({ resourceType: 'Patient', 'Zebulon Quxworthy': [1, 2, 3, 4] });
    expect(JSON.stringify(error.issues)).to.not.contain('Zebulon');
  });
});
