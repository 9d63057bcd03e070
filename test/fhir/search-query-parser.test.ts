/**
 * The search URL parser (FHIR R4 search.html) against the official R4 search parameters.
 * Table-driven: each row is one query and what it must parse to, or the status it must fail with.
 */
import { expect } from 'chai';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { SearchParameterRegistry } from '../../src/fhir/search-parameter-registry.js';
import {
  isCircularReference, parseSearchQuery, splitEscaped, unescapeSearchValue, type ParsedSearch, type SearchParseOptions,
} from '../../src/fhir/search-query-parser.js';
import type { SearchCriterion, SearchValue, TokenSearchValue } from '../../src/fhir/search-query.js';

const registry = SearchParameterRegistry.loadR4();
const BASE = 'http://example.org/fhir';
const LENIENT: SearchParseOptions = { defaultCount: 20, maxCount: 100, strict: false, baseUrl: BASE };
const STRICT: SearchParseOptions = { ...LENIENT, strict: true };

function parse(type: string | null, entries: [string, string][], options: SearchParseOptions = LENIENT): ParsedSearch {
  return parseSearchQuery(type, entries, registry, options);
}

/** The only criterion of a one-parameter query. */
function only(type: string, name: string, value: string): SearchCriterion {
  const { query, ignored } = parse(type, [[name, value]]);
  expect(ignored, 'nothing ignored').to.deep.equal([]);
  expect(query.criteria).to.have.length(1);
  return query.criteria[0]!;
}

function firstValue(type: string, name: string, value: string): SearchValue {
  const criterion = only(type, name, value);
  expect(criterion.values).to.have.length(1);
  return criterion.values[0]!;
}

function expectFhirError(action: () => unknown, status: number): FhirError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'a FhirError is thrown').to.be.instanceOf(FhirError);
  const error = caught as FhirError;
  expect(error.status).to.equal(status);
  return error;
}

const utc = (y: number, m1: number, d = 1, h = 0, mi = 0, s = 0): number => Date.UTC(y, m1 - 1, d, h, mi, s);

describe('search-query-parser', () => {
  describe('splitEscaped / unescapeSearchValue (search.html#escaping)', () => {
    const rows: { text: string; sep: ',' | '|' | '$'; parts: string[] }[] = [
      { text: 'a,b,c', sep: ',', parts: ['a', 'b', 'c'] },
      { text: 'a\\,b,c', sep: ',', parts: ['a\\,b', 'c'] },
      { text: 'a\\\\,b', sep: ',', parts: ['a\\\\', 'b'] },
      { text: 'sys\\|x|code', sep: '|', parts: ['sys\\|x', 'code'] },
      { text: 'a\\$b$c', sep: '$', parts: ['a\\$b', 'c'] },
      { text: 'a|b', sep: ',', parts: ['a|b'] },
      { text: '', sep: ',', parts: [''] },
    ];
    for (const row of rows) {
      it(`splits ${JSON.stringify(row.text)} on '${row.sep}'`, () => {
        expect(splitEscaped(row.text, row.sep)).to.deep.equal(row.parts);
      });
    }

    it('unescapes \\, \\| \\$ and \\\\ and leaves other backslashes alone', () => {
      expect(unescapeSearchValue('a\\,b\\|c\\$d\\\\e')).to.equal('a,b|c$d\\e');
      expect(unescapeSearchValue('a\\nb')).to.equal('a\\nb');
    });
  });

  describe('token values (search.html#token)', () => {
    const rows: { value: string; system: string | null | undefined; code: string | undefined }[] = [
      { value: 'male', system: undefined, code: 'male' },
      { value: 'http://hl7.org/fhir/administrative-gender|male', system: 'http://hl7.org/fhir/administrative-gender', code: 'male' },
      { value: '|male', system: null, code: 'male' },
      { value: 'http://hl7.org/fhir/administrative-gender|', system: 'http://hl7.org/fhir/administrative-gender', code: undefined },
    ];
    for (const row of rows) {
      it(`gender=${row.value}`, () => {
        expect(firstValue('Patient', 'gender', row.value)).to.deep.equal({ kind: 'token', system: row.system, code: row.code });
      });
    }

    for (const bad of ['a|b|c', '|']) {
      it(`gender=${bad} is a 400`, () => {
        const error = expectFhirError(() => parse('Patient', [['gender', bad]]), 400);
        expect(error.issues[0]!.code).to.equal('value');
      });
    }

    it('an escaped comma stays inside one value', () => {
      expect(firstValue('Patient', 'identifier', 'a\\,b')).to.deep.equal({ kind: 'token', system: undefined, code: 'a,b' });
    });

    it('an escaped pipe belongs to the system, not the separator', () => {
      expect(firstValue('Patient', 'identifier', 'urn:x\\|y|123')).to.deep.equal({ kind: 'token', system: 'urn:x|y', code: '123' });
    });

    it(':text takes the whole value as text, pipes included', () => {
      const criterion = only('Observation', 'code:text', 'blood|pressure');
      expect(criterion.modifier).to.equal('text');
      expect(criterion.values).to.deep.equal([{ kind: 'token', system: undefined, code: 'blood|pressure' }]);
    });
  });

  describe('string values', () => {
    it('folds case and accents and unescapes \\$', () => {
      expect(firstValue('Patient', 'name', 'Ch\u00e9vre\\$X')).to.deep.equal({ kind: 'string', folded: 'chevre$x', raw: 'Ch\u00e9vre$X' });
    });
  });

  describe('OR and AND', () => {
    it('a comma ORs values within one criterion', () => {
      const criterion = only('Patient', 'gender', 'male,female');
      expect(criterion.values.map((v) => (v.kind === 'token' ? v.code : undefined))).to.deep.equal(['male', 'female']);
    });

    it('a repeated parameter ANDs two criteria', () => {
      const { query } = parse('Patient', [['gender', 'male'], ['gender', 'female']]);
      expect(query.criteria).to.have.length(2);
      expect(query.criteria.map((c) => c.values.length)).to.deep.equal([1, 1]);
      expect(query.criteria.map((c) => (c.values[0]!.kind === 'token' ? c.values[0]!.code : undefined))).to.deep.equal(['male', 'female']);
    });

    it('different parameters are separate criteria, in order', () => {
      const { query } = parse('Patient', [['gender', 'male'], ['birthdate', '1990']]);
      expect(query.criteria.map((c) => c.param.code)).to.deep.equal(['gender', 'birthdate']);
    });
  });

  describe('limits (fhir/search-limits.ts): a query over one is a 400 too-costly, in lenient mode too', () => {
    const LIMITED: SearchParseOptions = { ...LENIENT, limits: { maxSortKeys: 2, maxOrValues: 3, maxAndRepetitions: 2, maxParameters: 5 } };
    const codes = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);
    const rows: { why: string; entries: [string, string][]; refused: RegExp | false }[] = [
      { why: 'sort keys at the limit', entries: [['_sort', 'code,-date']], refused: false },
      { why: 'one sort key over (unknown keys count too: the split is the cost)', entries: [['_sort', 'code,-date,nonsense']], refused: /_sort has 3 keys/ },
      { why: 'OR values at the limit', entries: [['code', codes(3).join(',')]], refused: false },
      { why: 'one OR value over', entries: [['code', codes(4).join(',')]], refused: /'code' has 4 values \(OR\)/ },
      { why: 'escaped commas are one value', entries: [['code', 'a\\,b\\,c\\,d']], refused: false },
      { why: 'OR values of a chained parameter', entries: [['subject:Patient.name', codes(4).join(',')]], refused: /has 4 values/ },
      { why: 'AND repetitions at the limit', entries: [['code', 'a'], ['code', 'b']], refused: false },
      { why: 'one AND repetition over', entries: [['code', 'a'], ['code', 'b'], ['code', 'c']], refused: /'code' is repeated more than 2 times/ },
      { why: 'a modifier makes another name', entries: [['code', 'a'], ['code', 'b'], ['code:not', 'c']], refused: false },
      { why: 'result parameters are not criteria repetitions', entries: [['_include', 'Observation:subject'], ['_include', 'Observation:encounter'], ['_include', 'Observation:performer']], refused: false },
      { why: 'parameters at the limit', entries: [['code', 'a'], ['status', 'final'], ['_count', '1'], ['_sort', 'date'], ['_total', 'none']], refused: false },
      { why: 'one parameter over, unknown ones included', entries: [['code', 'a'], ['status', 'final'], ['_count', '1'], ['_sort', 'date'], ['_total', 'none'], ['nonsense', 'x']], refused: /6 parameters; .* at most 5/ },
    ];
    for (const row of rows) {
      it(`${row.why} → ${row.refused ? '400' : 'parsed'}`, () => {
        if (!row.refused) {
          expect(() => parse('Observation', row.entries, LIMITED)).to.not.throw();
          return;
        }
        const error = expectFhirError(() => parse('Observation', row.entries, LIMITED), 400);
        expect(error.issues[0]!.code).to.equal('too-costly');
        expect(error.issues[0]!.diagnostics).to.match(row.refused);
      });
    }

    it('without limits in the options, the defaults apply (1,000 OR values and 200 sort keys are refused)', () => {
      expect(expectFhirError(() => parse('Observation', [['code', codes(1000).join(',')]]), 400).issues[0]!.code).to.equal('too-costly');
      expect(expectFhirError(() => parse('Observation', [['_sort', Array(200).fill('date').join(',')]]), 400).issues[0]!.code).to.equal('too-costly');
    });

    it('a client string that is not a parameter name is not echoed', () => {
      const name = 'Zebulon Quxworthy';
      const error = expectFhirError(() => parse('Observation', [[name, 'a'], [name, 'b'], [name, 'c']], LIMITED), 400);
      expect(error.issues[0]!.diagnostics).to.not.contain('Zebulon');
    });
  });

  describe('date values (search.html#date, #prefix)', () => {
    const rows: { value: string; prefix: string; low: number; high: number }[] = [
      { value: '1990', prefix: 'eq', low: utc(1990, 1), high: utc(1991, 1) },
      { value: '1990-06', prefix: 'eq', low: utc(1990, 6), high: utc(1990, 7) },
      { value: '1990-06-15', prefix: 'eq', low: utc(1990, 6, 15), high: utc(1990, 6, 16) },
      { value: '1990-06-15T10:30:00Z', prefix: 'eq', low: utc(1990, 6, 15, 10, 30), high: utc(1990, 6, 15, 10, 30) + 1000 },
      { value: '1990-06-15T10:30:00+02:00', prefix: 'eq', low: utc(1990, 6, 15, 8, 30), high: utc(1990, 6, 15, 8, 30) + 1000 },
      { value: 'eq1990', prefix: 'eq', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'ge1990-06', prefix: 'ge', low: utc(1990, 6), high: utc(1990, 7) },
      { value: 'lt2000-01-01', prefix: 'lt', low: utc(2000, 1, 1), high: utc(2000, 1, 2) },
      { value: 'gt1990', prefix: 'gt', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'le1990', prefix: 'le', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'ne1990', prefix: 'ne', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'sa1990', prefix: 'sa', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'eb1990', prefix: 'eb', low: utc(1990, 1), high: utc(1991, 1) },
      { value: 'ap1990', prefix: 'ap', low: utc(1990, 1), high: utc(1991, 1) },
    ];
    for (const row of rows) {
      it(`birthdate=${row.value}`, () => {
        const value = firstValue('Patient', 'birthdate', row.value);
        expect(value).to.include({ kind: 'range', prefix: row.prefix, low: row.low, high: row.high, value: row.low });
      });
    }

    for (const bad of ['notadate', '1990-13', '1990-02-30', 'ge', 'xx1990', '90']) {
      it(`birthdate=${bad} is a 400`, () => {
        expectFhirError(() => parse('Patient', [['birthdate', bad]]), 400);
      });
    }
  });

  describe('number values (search.html#number)', () => {
    it('probability=0.8 is [0.75, 0.85)', () => {
      expect(firstValue('RiskAssessment', 'probability', '0.8')).to.deep.equal({ kind: 'range', prefix: 'eq', value: 0.8, low: 0.75, high: 0.85 });
    });

    it('probability=gt100 keeps the prefix and the implicit range', () => {
      expect(firstValue('RiskAssessment', 'probability', 'gt100')).to.deep.equal({ kind: 'range', prefix: 'gt', value: 100, low: 99.5, high: 100.5 });
    });

    it('probability=abc is a 400', () => {
      expectFhirError(() => parse('RiskAssessment', [['probability', 'abc']]), 400);
    });
  });

  describe('quantity values (search.html#quantity)', () => {
    it('number|system|code', () => {
      const value = firstValue('Observation', 'value-quantity', '5.4|http://unitsofmeasure.org|mg');
      expect(value).to.deep.equal({ kind: 'range', prefix: 'eq', value: 5.4, low: 5.35, high: 5.45, system: 'http://unitsofmeasure.org', code: 'mg' });
    });

    it('number||code leaves the system open', () => {
      const value = firstValue('Observation', 'value-quantity', 'le5.4||mg');
      expect(value).to.include({ prefix: 'le', value: 5.4, code: 'mg' });
      expect(value).to.have.property('system', undefined);
    });

    it('a bare number has no unit constraint', () => {
      const value = firstValue('Observation', 'value-quantity', '5.4');
      expect(value).to.not.have.property('system');
      expect(value).to.not.have.property('code');
    });

    for (const bad of ['5.4|mg', 'abc|http://unitsofmeasure.org|mg', '1|2|3|4']) {
      it(`value-quantity=${bad} is a 400`, () => {
        expectFhirError(() => parse('Observation', [['value-quantity', bad]]), 400);
      });
    }
  });

  describe('reference values (search.html#reference)', () => {
    const rows: { name: string; value: string; expected: SearchValue }[] = [
      { name: 'subject', value: 'Patient/1', expected: { kind: 'reference', targetType: 'Patient', targetId: '1', url: undefined } },
      { name: 'subject', value: '1', expected: { kind: 'reference', targetType: undefined, targetId: '1', url: undefined } },
      { name: 'subject:Patient', value: '1', expected: { kind: 'reference', targetType: 'Patient', targetId: '1', url: undefined } },
      { name: 'subject', value: 'Patient/1/_history/2', expected: { kind: 'reference', targetType: 'Patient', targetId: '1', url: undefined } },
      { name: 'subject', value: `${BASE}/Patient/1`, expected: { kind: 'reference', targetType: 'Patient', targetId: '1', url: undefined } },
      {
        name: 'subject', value: 'http://other.example.com/fhir/Patient/1',
        expected: { kind: 'reference', targetType: undefined, targetId: undefined, url: 'http://other.example.com/fhir/Patient/1' },
      },
    ];
    for (const row of rows) {
      it(`${row.name}=${row.value}`, () => {
        expect(firstValue('Observation', row.name, row.value)).to.deep.equal(row.expected);
      });
    }

    it('a type modifier that is not a target of the parameter is ignored', () => {
      const { query, ignored } = parse('Observation', [['subject:Observation', '1']]);
      expect(query.criteria).to.deep.equal([]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['subject:Observation']);
    });

    it('an empty reference is a 400', () => {
      expectFhirError(() => parse('Observation', [['subject', '']]), 400);
    });
  });

  describe('token :below / :above: subsumption in a known code system (search.html#token)', () => {
    const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

    it(':below expands system|code to the code and everything it subsumes', () => {
      const criterion = only('Encounter', 'class:below', `${ACT_CODE}|IMP`);
      expect(criterion.modifier).to.equal('below');
      const value = criterion.values[0] as TokenSearchValue;
      expect(value).to.include({ kind: 'token', system: ACT_CODE, code: 'IMP' });
      expect([...value.codes!].sort()).to.deep.equal(['ACUTE', 'IMP', 'NONAC']);
    });

    it(':above expands to the code and every code that subsumes it', () => {
      const value = firstValue('Encounter', 'class:above', `${ACT_CODE}|ACUTE`) as TokenSearchValue;
      expect([...value.codes!].sort()).to.deep.equal(['ACUTE', 'IMP', '_ActCareProvisionCode', '_ActEncounterCode']);
    });

    it('OR values each expand in their own system', () => {
      const criterion = only('Encounter', 'class:below', `${ACT_CODE}|ACUTE,${ACT_CODE}|AMB`);
      expect(criterion.values.map((v) => (v as TokenSearchValue).codes)).to.deep.equal([['ACUTE'], ['AMB']]);
    });

    it('a code the known system does not define matches only itself (search.html#errors: a logical condition)', () => {
      expect((firstValue('Encounter', 'class:below', `${ACT_CODE}|NO-SUCH-CODE`) as TokenSearchValue).codes).to.deep.equal(['NO-SUCH-CODE']);
    });

    for (const bad of ['IMP', '|IMP', `${ACT_CODE}|`, `${ACT_CODE}|IMP|x`]) {
      it(`class:below=${bad} is a 400: subsumption needs system|code`, () => {
        for (const options of [LENIENT, STRICT]) {
          const error = expectFhirError(() => parse('Encounter', [['class:below', bad]], options), 400);
          expect(error.issues[0]!.code).to.equal('value');
        }
      });
    }

    for (const system of ['http://loinc.org', 'http://snomed.info/sct']) {
      it(`a system without a hierarchy here (${system}) is reported, and a 400 under handling=strict`, () => {
        const { query, ignored } = parse('Observation', [['code:below', `${system}|123`], ['status', 'final']]);
        expect(query.criteria.map((c) => c.param.code)).to.deep.equal(['status']);
        expect(ignored).to.have.length(1);
        expect(ignored[0]!.name).to.equal('code:below');
        expect(ignored[0]!.reason).to.contain(system);
        const error = expectFhirError(() => parse('Observation', [['code:above', `${system}|123`]], STRICT), 400);
        expect(error.issues[0]!.code).to.equal('not-supported');
      });
    }

    it('one unknown system among the OR values makes the whole parameter unsupported', () => {
      const { query, ignored } = parse('Encounter', [['class:below', `${ACT_CODE}|IMP,http://loinc.org|1`]]);
      expect(query.criteria).to.deep.equal([]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['class:below']);
    });

    it('_id takes neither (it is a logical id, not a code)', () => {
      expect(parse('Patient', [['_id:below', 'x|y']]).ignored.map((i) => i.name)).to.deep.equal(['_id:below']);
    });
  });

  describe('reference :below / :above on circular references (search.html#recursive)', () => {
    const rows: { name: string; value: string; targetId: string }[] = [
      { name: 'partof:below', value: 'Location/1', targetId: '1' },
      { name: 'partof:below', value: '1', targetId: '1' },
      { name: 'partof:above', value: `${BASE}/Location/1`, targetId: '1' },
      { name: 'partof:above', value: 'Location/1/_history/3', targetId: '1' },
    ];
    for (const row of rows) {
      it(`Location?${row.name}=${row.value}`, () => {
        const criterion = only('Location', row.name, row.value);
        expect(criterion.modifier).to.equal(row.name.split(':')[1]);
        expect(criterion.values).to.deep.equal([{ kind: 'reference', targetType: 'Location', targetId: row.targetId, url: undefined }]);
      });
    }

    it('isCircularReference: Location partof, Organization partof, Encounter part-of; not Observation subject', () => {
      expect(isCircularReference(registry.get('Location', 'partof')!)).to.equal(true);
      expect(isCircularReference(registry.get('Organization', 'partof')!)).to.equal(true);
      expect(isCircularReference(registry.get('Encounter', 'part-of')!)).to.equal(true);
      expect(isCircularReference(registry.get('Observation', 'subject')!)).to.equal(false);
    });

    for (const bad of ['Organization/1', 'http://other.example.com/fhir/Location/1', 'not an id!']) {
      it(`Location?partof:below=${bad} is a 400: the value must be a Location here`, () => {
        const error = expectFhirError(() => parse('Location', [['partof:below', bad]]), 400);
        expect(error.issues[0]!.code).to.equal('value');
      });
    }

    it('a reference that is not circular is reported, and a 400 under handling=strict', () => {
      const { query, ignored } = parse('Observation', [['subject:below', 'Patient/1']]);
      expect(query.criteria).to.deep.equal([]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['subject:below']);
      expect(ignored[0]!.reason).to.contain('circular');
      const error = expectFhirError(() => parse('Observation', [['subject:above', 'Patient/1']], STRICT), 400);
      expect(error.issues[0]!.code).to.equal('not-supported');
    });
  });

  describe(':missing (search.html#missing)', () => {
    for (const [text, missing] of [['true', true], ['false', false]] as const) {
      it(`gender:missing=${text}`, () => {
        const criterion = only('Patient', 'gender:missing', text);
        expect(criterion).to.include({ modifier: 'missing', missing });
        expect(criterion.values).to.deep.equal([]);
      });
    }

    for (const bad of ['yes', 'TRUE', '']) {
      it(`gender:missing=${JSON.stringify(bad)} is a 400`, () => {
        expectFhirError(() => parse('Patient', [['gender:missing', bad]]), 400);
      });
    }
  });

  describe('unknown parameters and unsupported modifiers (search.html#errors)', () => {
    const rows: { type: string; name: string; value: string }[] = [
      { type: 'Patient', name: 'shoe-size', value: '42' },
      { type: 'Patient', name: 'name:above', value: 'x' },
      { type: 'Patient', name: 'gender:exact', value: 'male' },
    ];
    for (const row of rows) {
      it(`${row.name} is ignored by default and reported`, () => {
        const { query, ignored } = parse(row.type, [[row.name, row.value], ['gender', 'male']]);
        expect(ignored).to.have.length(1);
        expect(ignored[0]!.name).to.equal(row.name);
        expect(ignored[0]!.reason).to.be.a('string').and.not.equal('');
        expect(query.criteria.map((c) => c.param.code)).to.deep.equal(['gender']);
      });

      it(`${row.name} is a 400 under handling=strict`, () => {
        const error = expectFhirError(() => parse(row.type, [[row.name, row.value]], STRICT), 400);
        expect(error.issues[0]!.code).to.equal('not-supported');
      });
    }

    it('strict mode accepts a query with nothing to ignore', () => {
      const { query } = parse('Patient', [['gender', 'male']], STRICT);
      expect(query.criteria).to.have.length(1);
    });

    it('parameters of another type are unknown here', () => {
      const { ignored } = parse('Patient', [['value-quantity', '5']]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['value-quantity']);
    });
  });

  describe('result parameters (search.html#return)', () => {
    it('defaults: count, offset 0, no sort, total none, not count-only', () => {
      const { query } = parse('Patient', []);
      expect(query).to.deep.include({ resourceType: 'Patient', count: 20, offset: 0, sort: [], total: 'none', countOnly: false });
    });

    const countRows: { value: string; count: number }[] = [
      { value: '5', count: 5 },
      { value: '0', count: 0 },
      { value: '100', count: 100 },
      { value: '1000', count: 100 },
    ];
    for (const row of countRows) {
      it(`_count=${row.value} → ${row.count}`, () => {
        expect(parse('Patient', [['_count', row.value]]).query.count).to.equal(row.count);
      });
    }

    for (const bad of ['abc', '-1', '1.5', '']) {
      it(`_count=${JSON.stringify(bad)} is a 400`, () => {
        expectFhirError(() => parse('Patient', [['_count', bad]]), 400);
      });
    }

    it('_offset sets the offset; a bad one is a 400', () => {
      expect(parse('Patient', [['_offset', '40']]).query.offset).to.equal(40);
      expectFhirError(() => parse('Patient', [['_offset', '-4']]), 400);
      expectFhirError(() => parse('Patient', [['_offset', 'x']]), 400);
    });

    it('an _offset too large to be an exact integer is a 400, not a store error', () => {
      expect(parse('Patient', [['_offset', String(Number.MAX_SAFE_INTEGER)]]).query.offset).to.equal(Number.MAX_SAFE_INTEGER);
      expectFhirError(() => parse('Patient', [['_offset', '100000000000000000000']]), 400);
    });

    it('a huge _count is capped, not refused', () => {
      expect(parse('Patient', [['_count', '100000000000000000000']]).query.count).to.equal(100);
    });

    it('_sort=-birthdate,name gives two keys in order', () => {
      const { query, ignored } = parse('Patient', [['_sort', '-birthdate,name']]);
      expect(ignored).to.deep.equal([]);
      expect(query.sort.map((k) => [k.param.code, k.descending])).to.deep.equal([['birthdate', true], ['name', false]]);
    });

    it('_sort by an unknown parameter is ignored and reported', () => {
      const { query, ignored } = parse('Patient', [['_sort', 'shoe-size,-gender']]);
      expect(query.sort.map((k) => [k.param.code, k.descending])).to.deep.equal([['gender', true]]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['_sort']);
    });

    for (const mode of ['none', 'estimate', 'accurate'] as const) {
      it(`_total=${mode}`, () => {
        expect(parse('Patient', [['_total', mode]]).query.total).to.equal(mode);
      });
    }

    it('_total=maybe is a 400', () => {
      expectFhirError(() => parse('Patient', [['_total', 'maybe']]), 400);
    });

    it('_summary=count asks for the total only', () => {
      expect(parse('Patient', [['_summary', 'count']]).query.countOnly).to.equal(true);
    });

    it('_summary=text|true|data shape results; an unknown _summary value is a 400', () => {
      for (const mode of ['text', 'true', 'data'] as const) {
        const { query, result, ignored } = parse('Patient', [['_summary', mode]]);
        expect(query.countOnly).to.equal(false);
        expect(result.summary).to.equal(mode);
        expect(ignored).to.deep.equal([]);
      }
      expect(() => parse('Patient', [['_summary', 'bogus']])).to.throw(FhirError).with.property('status', 400);
    });

    it('_format and _pretty are neither criteria nor ignored', () => {
      const { query, ignored } = parse('Patient', [['_format', 'json'], ['_pretty', 'true']]);
      expect(query.criteria).to.deep.equal([]);
      expect(ignored).to.deep.equal([]);
    });
  });

  describe('system-level search (search.html#all)', () => {
    it('accepts the parameters defined for all resources', () => {
      const { query, ignored } = parse(null, [['_id', 'a,b'], ['_lastUpdated', 'ge2024'], ['_sort', '-_lastUpdated']], STRICT);
      expect(ignored).to.deep.equal([]);
      expect(query.resourceType).to.equal(null);
      expect(query.criteria.map((c) => [c.param.code, c.param.type, c.values.length])).to.deep.equal([['_id', 'token', 2], ['_lastUpdated', 'date', 1]]);
      expect(query.sort.map((k) => [k.param.code, k.descending])).to.deep.equal([['_lastUpdated', true]]);
    });

    it('ignores a parameter that only some types define', () => {
      const { query, ignored } = parse(null, [['name', 'Lee']]);
      expect(query.criteria).to.deep.equal([]);
      expect(ignored.map((i) => i.name)).to.deep.equal(['name']);
    });
  });
});
