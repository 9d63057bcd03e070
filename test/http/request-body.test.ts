/**
 * Request body checks that run before anything parses or walks the body: the nesting-depth scan
 * and JSON parsing errors, each a 400 OperationOutcome with issue code `structure`.
 */
import { expect } from 'chai';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { jsonDepthExceeds, parseJsonText, type BodyLimits } from '../../src/http/request-body.js';

const LIMITS: BodyLimits = { maxBodyBytes: 1_000_000, maxJsonDepth: 4, maxFormBodyBytes: 1_000, maxElementRepetitions: 5 };

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

function expectStructureError(text: string, limits: BodyLimits = LIMITS): FhirError {
  let caught: unknown;
  try {
    parseJsonText(text, limits);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'a FhirError is thrown').to.be.instanceOf(FhirError);
  const error = caught as FhirError;
  expect(error.status).to.equal(400);
  expect(error.issues[0]!.code).to.equal('structure');
  return error;
}

describe('request-body', () => {
  describe('jsonDepthExceeds', () => {
    const rows: { why: string; text: string; max: number; exceeds: boolean }[] = [
      { why: 'exactly at the limit', text: nested(4), max: 4, exceeds: false },
      { why: 'one over the limit', text: nested(5), max: 4, exceeds: true },
      { why: 'objects and arrays mixed, at the limit', text: '{"a":[{"b":[1]}]}', max: 4, exceeds: false },
      { why: 'objects and arrays mixed, over the limit', text: '{"a":[{"b":[{}]}]}', max: 4, exceeds: true },
      { why: 'siblings do not add up', text: '[[1],[2],[3],[4],[5],[6]]', max: 2, exceeds: false },
      { why: 'brackets inside strings are text', text: '{"a":"[[[[[[{{{{{{"}', max: 1, exceeds: false },
      { why: 'an escaped quote does not end the string', text: '{"a":"\\"[[[[[[[["}', max: 1, exceeds: false },
      { why: 'an escaped backslash before the closing quote ends the string', text: '{"a":"\\\\","b":[[[1]]]}', max: 3, exceeds: true },
      { why: 'closing brackets inside strings do not lower the depth', text: '["]]]]]]",[[[[1]]]]]', max: 4, exceeds: true },
      { why: 'no brackets', text: '"text"', max: 0, exceeds: false },
    ];
    for (const row of rows) {
      it(`${row.why} (max ${row.max}) → ${row.exceeds}`, () => {
        expect(jsonDepthExceeds(row.text, row.max)).to.equal(row.exceeds);
      });
    }

    it('scans a deep document without recursion', () => {
      expect(jsonDepthExceeds(nested(200_000), 100)).to.equal(true);
      expect(jsonDepthExceeds(nested(200_000), 200_000)).to.equal(false);
    });
  });

  describe('parseJsonText', () => {
    it('parses a resource', () => {
      expect(parseJsonText('{"resourceType":"Patient","name":[{"family":"Lee"}]}', LIMITS))
        .to.deep.equal({ resourceType: 'Patient', name: [{ family: 'Lee' }] });
    });

    for (const empty of ['', '   ', '\n\t']) {
      it(`refuses an empty body ${JSON.stringify(empty)}`, () => {
        expect(expectStructureError(empty).issues[0]!.diagnostics).to.match(/empty/);
      });
    }

    for (const bad of ['{', '{"a":}', "{'a':1}", '{"a":1,}', 'undefined']) {
      it(`refuses malformed JSON ${bad}`, () => {
        const error = expectStructureError(bad);
        expect(error.issues[0]!.diagnostics).to.match(/^Malformed JSON/);
      });
    }

    // V8 quotes an excerpt of the text in some SyntaxError messages; none of it may come back.
    for (const bad of ['{"name": Zebulon Quxworthy}', '{"name":"Zebulon Quxworthy"', '{"name":"Zebulon Quxworthy",\n "x": }', 'Quxworthy']) {
      it(`says where ${JSON.stringify(bad)} is malformed without quoting it`, () => {
        const diagnostics = expectStructureError(bad).issues[0]!.diagnostics!;
        expect(diagnostics).to.match(/^Malformed JSON/);
        expect(diagnostics).to.not.match(/Zebulon|Quxworthy|Zeb|Qux/);
      });
    }

    it('locates a syntax error by line and column', () => {
      expect(expectStructureError('{"a": 1,\n "b" 2}').issues[0]!.diagnostics).to.equal('Malformed JSON at line 2, column 6 (position 14)');
    });

    it('refuses a document nested deeper than the limit before parsing it', () => {
      const error = expectStructureError(`{"resourceType":"Patient","extension":${nested(10)}}`);
      expect(error.issues[0]!.diagnostics).to.contain('deeper than 4');
    });

    it('walks the parsed value: too many repetitions → 413, a number out of range → 422', () => {
      const tooMany = (() => { try { parseJsonText('{"resourceType":"Patient","identifier":[1,2,3,4,5,6]}', LIMITS); } catch (e) { return e as FhirError; } return undefined; })();
      expect(tooMany?.status).to.equal(413);
      const infinite = (() => { try { parseJsonText('{"resourceType":"Patient","x":1e400}', LIMITS); } catch (e) { return e as FhirError; } return undefined; })();
      expect(infinite?.status).to.equal(422);
      expect(infinite?.issues[0]!.expression).to.deep.equal(['Patient.x']);
    });

    it('accepts a document exactly at the depth limit', () => {
      expect(parseJsonText(`{"a":${nested(3)}}`, LIMITS)).to.deep.equal({ a: [[[]]] });
    });
  });
});
