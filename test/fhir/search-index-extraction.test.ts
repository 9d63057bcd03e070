import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Resource } from '../../src/fhir/resource.js';
import type { SearchIndexEntry } from '../../src/fhir/search-index-entry.js';
import { SearchIndexExtractor } from '../../src/fhir/search-index/search-index-extractor.js';
import { toIndexableFhirPath } from '../../src/fhir/search-index/fhirpath-js-evaluation.js';
import {
  decimalRange, foldSearchString, parseDateRange, parseReference,
} from '../../src/fhir/search-index/search-value-normalisation.js';
import { SearchParameterRegistry } from '../../src/fhir/search-parameter-registry.js';

const require = createRequire(import.meta.url);
const EXAMPLES_DIR = dirname(require.resolve('hl7.fhir.r4.examples/package.json'));

function example(name: string): Resource {
  return JSON.parse(readFileSync(join(EXAMPLES_DIR, `${name}.json`), 'utf8')) as Resource;
}

function examplesOf(type: string): { name: string; resource: Resource }[] {
  return readdirSync(EXAMPLES_DIR)
    .filter((f) => f.startsWith(`${type}-`) && f.endsWith('.json'))
    .map((f) => ({ name: f, resource: JSON.parse(readFileSync(join(EXAMPLES_DIR, f), 'utf8')) as Resource }))
    .filter(({ resource }) => resource.resourceType === type);
}

function entriesOf(entries: SearchIndexEntry[], param: string): SearchIndexEntry[] {
  return entries.filter((e) => e.param === param);
}

/** Order-independent form of a parameter's entries, for comparisons. */
function canonical(entries: SearchIndexEntry[]): Map<string, string[]> {
  const byParam = new Map<string, string[]>();
  for (const e of entries) {
    const list = byParam.get(e.param) ?? [];
    list.push(JSON.stringify(e, Object.keys(e).sort()));
    byParam.set(e.param, list);
  }
  for (const list of byParam.values()) list.sort();
  return byParam;
}

const utc = Date.UTC;
const registry = SearchParameterRegistry.loadR4();
const extractor = new SearchIndexExtractor(registry);

describe('foldSearchString (search.html#string)', () => {
  it('removes accents and case', () => {
    expect(foldSearchString('Éloïse MÜLLER')).to.equal('eloise muller');
    expect(foldSearchString('Ångström')).to.equal('angstrom');
    expect(foldSearchString('Renée')).to.equal(foldSearchString('RENEE'));
  });

  it('collapses and trims whitespace', () => {
    expect(foldSearchString('  534 Erewhon\tSt \n ')).to.equal('534 erewhon st');
  });

  it('treats a decomposed accent like a precomposed one', () => {
    expect(foldSearchString('Rene\u0301e')).to.equal('renee');
    expect(foldSearchString('Ren\u00e9e')).to.equal('renee');
  });
});

describe('parseDateRange (search.html#date)', () => {
  it('gives a year, a month and a day their whole interval', () => {
    expect(parseDateRange('2019')).to.deep.equal({ low: utc(2019, 0, 1), high: utc(2020, 0, 1) });
    expect(parseDateRange('2019-02')).to.deep.equal({ low: utc(2019, 1, 1), high: utc(2019, 2, 1) });
    expect(parseDateRange('2019-12')).to.deep.equal({ low: utc(2019, 11, 1), high: utc(2020, 0, 1) });
    expect(parseDateRange('2019-02-03')).to.deep.equal({ low: utc(2019, 1, 3), high: utc(2019, 1, 4) });
    expect(parseDateRange('2020-02-29')).to.deep.equal({ low: utc(2020, 1, 29), high: utc(2020, 2, 1) });
  });

  it('applies a time-zone offset and the precision of the time', () => {
    expect(parseDateRange('2019-02-03T10:20:30+02:00')).to.deep.equal({ low: utc(2019, 1, 3, 8, 20, 30), high: utc(2019, 1, 3, 8, 20, 31) });
    expect(parseDateRange('2019-02-03T23:30:00-05:30')).to.deep.equal({ low: utc(2019, 1, 4, 5, 0, 0), high: utc(2019, 1, 4, 5, 0, 1) });
    expect(parseDateRange('2019-02-03T10:20Z')).to.deep.equal({ low: utc(2019, 1, 3, 10, 20), high: utc(2019, 1, 3, 10, 21) });
    expect(parseDateRange('2019-02-03T10:20:30.5Z')).to.deep.equal({ low: utc(2019, 1, 3, 10, 20, 30, 500), high: utc(2019, 1, 3, 10, 20, 30, 600) });
    expect(parseDateRange('2019-02-03T10:20:30.123Z')).to.deep.equal({ low: utc(2019, 1, 3, 10, 20, 30, 123), high: utc(2019, 1, 3, 10, 20, 30, 124) });
  });

  it('reads a time without zone as UTC', () => {
    expect(parseDateRange('2019-02-03T10:20:30')).to.deep.equal({ low: utc(2019, 1, 3, 10, 20, 30), high: utc(2019, 1, 3, 10, 20, 31) });
  });

  it('does not shift years below 100 into the 1900s', () => {
    const r = parseDateRange('0050')!;
    expect(new Date(r.low).getUTCFullYear()).to.equal(50);
    expect(new Date(r.high).getUTCFullYear()).to.equal(51);
  });

  it('rejects invalid dates', () => {
    for (const bad of ['2019-13-01', 'notadate', '2019-02-30', '2019-02-29', '2019-00', '2019-01-32', '0000', '', '19',
      '2019-1-01', '2019-01-01T24:00:00Z', '2019-01-01T10:60:00Z', '2019-01-01T10:00:00+15:00', '2019-01-01Z', '2019-01-01T10']) {
      expect(parseDateRange(bad), bad).to.equal(undefined);
    }
  });
});

describe('decimalRange (search.html#number implicit precision)', () => {
  it('uses half a unit of the last significant digit', () => {
    expect(decimalRange('100')).to.deep.equal({ value: 100, low: 99.5, high: 100.5 });
    expect(decimalRange('100.00')).to.deep.equal({ value: 100, low: 99.995, high: 100.005 });
    expect(decimalRange('0.8')).to.deep.equal({ value: 0.8, low: 0.75, high: 0.85 });
    expect(decimalRange('2.0')).to.deep.equal({ value: 2, low: 1.95, high: 2.05 });
    expect(decimalRange('0')).to.deep.equal({ value: 0, low: -0.5, high: 0.5 });
  });

  it('handles exponents and signs', () => {
    expect(decimalRange('1e2')).to.deep.equal({ value: 100, low: 50, high: 150 });
    expect(decimalRange('1.5E-3')).to.deep.equal({ value: 0.0015, low: 0.00145, high: 0.00155 });
    expect(decimalRange('1e+21')).to.deep.equal({ value: 1e21, low: 5e20, high: 1.5e21 });
    expect(decimalRange('-5.5')).to.deep.equal({ value: -5.5, low: -5.55, high: -5.45 });
    expect(decimalRange('+7')).to.deep.equal({ value: 7, low: 6.5, high: 7.5 });
  });

  it('keeps long mantissas exact', () => {
    const r = decimalRange('12345678901234567.5')!;
    expect(r.low).to.equal(12345678901234567.45);
    expect(r.high).to.equal(12345678901234567.55);
  });

  it('rejects what is not a decimal', () => {
    for (const bad of ['abc', '', '1.', '.5', '1e', '0x10', '1,5', 'NaN', 'Infinity', '1e400', '- 1']) {
      expect(decimalRange(bad), bad).to.equal(undefined);
    }
  });
});

describe('parseReference (references.html)', () => {
  it('parses relative, versioned and absolute references', () => {
    expect(parseReference('Patient/123')).to.deep.equal({ targetType: 'Patient', targetId: '123', url: 'Patient/123' });
    expect(parseReference('Patient/123/_history/2')).to.deep.equal({ targetType: 'Patient', targetId: '123', url: 'Patient/123/_history/2' });
    expect(parseReference('http://host/fhir/Patient/123')).to.deep.equal({ targetType: 'Patient', targetId: '123', url: 'http://host/fhir/Patient/123' });
    expect(parseReference('https://h/r4/Observation/a.b-c/_history/7')).to.deep.equal({ targetType: 'Observation', targetId: 'a.b-c', url: 'https://h/r4/Observation/a.b-c/_history/7' });
  });

  it('gives no target for urn:uuid, contained and unknown shapes', () => {
    const uuid = 'urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d';
    expect(parseReference(uuid)).to.deep.equal({ targetType: null, targetId: null, url: uuid });
    expect(parseReference('#p1')).to.deep.equal({ targetType: null, targetId: null, url: '#p1' });
    expect(parseReference('Unknown/1').targetType).to.equal(null);
    expect(parseReference('Patient/bad id').targetType).to.equal(null);
    expect(parseReference('Patient?identifier=x|1').targetType).to.equal(null);
    expect(parseReference('123').targetType).to.equal(null);
  });

  it('with a base url, treats only references under it as local', () => {
    const base = 'http://localhost:8080/fhir';
    expect(parseReference('http://localhost:8080/fhir/Patient/1', base)).to.deep.equal({ targetType: 'Patient', targetId: '1', url: 'http://localhost:8080/fhir/Patient/1' });
    expect(parseReference('http://elsewhere/fhir/Patient/1', base)).to.deep.equal({ targetType: null, targetId: null, url: 'http://elsewhere/fhir/Patient/1' });
    expect(parseReference('Patient/1', base).targetId).to.equal('1');
  });
});

describe('toIndexableFhirPath', () => {
  it('replaces resolve() by a reference-shape test and `as` by ofType', () => {
    expect(toIndexableFhirPath('Observation.subject.where(resolve() is Patient)'))
      .to.equal("Observation.subject.where(reference.matches('^(.*/)?Patient/[-A-Za-z0-9.]{1,64}(/_history/[-A-Za-z0-9.]{1,64})?$'))");
    expect(toIndexableFhirPath('(Observation.value as Quantity) | (Observation.value as CodeableConcept).text'))
      .to.equal('Observation.value.ofType(Quantity) | Observation.value.ofType(CodeableConcept).text');
    expect(toIndexableFhirPath('Condition.onset.as(Age)')).to.equal('Condition.onset.ofType(Age)');
    expect(toIndexableFhirPath('Patient.deceased.exists() and Patient.deceased != false'))
      .to.equal('Patient.deceased.exists() and Patient.deceased != false');
  });
});

describe('SearchIndexExtractor on the official examples', () => {
  it('extracts the expected entries from Patient-example', () => {
    const entries = extractor.extract(example('Patient-example'));
    expect(entriesOf(entries, 'birthdate')).to.deep.equal([{ param: 'birthdate', kind: 'date', low: utc(1974, 11, 25), high: utc(1974, 11, 26) }]);
    expect(entriesOf(entries, 'gender')).to.deep.equal([{ param: 'gender', kind: 'token', system: null, code: 'male', text: null }]);
    expect(entriesOf(entries, 'family')).to.deep.equal([
      { param: 'family', kind: 'string', value: 'chalmers', raw: 'Chalmers' },
      { param: 'family', kind: 'string', value: 'windsor', raw: 'Windsor' },
    ]);
    // "Peter James" appears in two names: each value once.
    expect(entriesOf(entries, 'given').map((e) => (e as { raw: string }).raw)).to.deep.equal(['Peter', 'James', 'Jim']);
    expect(entriesOf(entries, 'identifier')).to.deep.equal([
      { param: 'identifier', kind: 'token', system: 'urn:oid:1.2.36.146.595.217.0.1', code: '12345', text: null, ofType: 'http://terminology.hl7.org/CodeSystem/v2-0203|MR' },
    ]);
    expect(entriesOf(entries, 'address-postalcode')).to.deep.equal([{ param: 'address-postalcode', kind: 'string', value: '3999', raw: '3999' }]);
    expect(entriesOf(entries, 'address-city')).to.deep.equal([{ param: 'address-city', kind: 'string', value: 'pleasantville', raw: 'PleasantVille' }]);
    expect(entriesOf(entries, 'organization')).to.deep.equal([
      { param: 'organization', kind: 'reference', targetType: 'Organization', targetId: '1', url: 'Organization/1' },
    ]);
    expect(entriesOf(entries, 'phone').map((e) => (e as { code: string }).code)).to.deep.equal(['(03) 5555 6473', '(03) 3410 5613', '(03) 5555 8834']);
    expect(entriesOf(entries, 'email')).to.deep.equal([]);
    expect(entriesOf(entries, 'active')).to.deep.equal([{ param: 'active', kind: 'token', system: null, code: 'true', text: null }]);
    // Patient-deceased: "deceased.exists() and deceased != false" is false for a living patient.
    expect(entriesOf(entries, 'deceased')).to.deep.equal([{ param: 'deceased', kind: 'token', system: null, code: 'false', text: null }]);
    expect(entries.some((e) => e.param === '_id' || e.param === '_lastUpdated')).to.equal(false);
  });

  it('extracts the expected entries from Observation-example', () => {
    const entries = extractor.extract(example('Observation-example'));
    expect(entriesOf(entries, 'code')).to.deep.equal([
      { param: 'code', kind: 'token', system: 'http://loinc.org', code: '29463-7', text: 'Body Weight' },
      // No CodeableConcept.text here, so each coding's display is its text.
      { param: 'code', kind: 'token', system: 'http://loinc.org', code: '3141-9', text: 'Body weight Measured' },
      { param: 'code', kind: 'token', system: 'http://snomed.info/sct', code: '27113001', text: 'Body weight' },
      { param: 'code', kind: 'token', system: 'http://acme.org/devices/clinical-codes', code: 'body-weight', text: 'Body Weight' },
    ]);
    expect(entriesOf(entries, 'value-quantity')).to.deep.equal([{
      param: 'value-quantity', kind: 'quantity', value: 185, low: 184.5, high: 185.5,
      system: 'http://unitsofmeasure.org', code: '[lb_av]', unit: 'lbs',
    }]);
    expect(entriesOf(entries, 'subject')).to.deep.equal([{ param: 'subject', kind: 'reference', targetType: 'Patient', targetId: 'example', url: 'Patient/example' }]);
    expect(entriesOf(entries, 'patient')).to.deep.equal([{ param: 'patient', kind: 'reference', targetType: 'Patient', targetId: 'example', url: 'Patient/example' }]);
    expect(entriesOf(entries, 'date')).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2016, 2, 28), high: utc(2016, 2, 29) }]);
    expect(entriesOf(entries, 'status')).to.deep.equal([{ param: 'status', kind: 'token', system: null, code: 'final', text: null }]);
    expect(entriesOf(entries, 'category')).to.deep.equal([{
      param: 'category', kind: 'token', system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', text: 'Vital Signs',
    }]);
    expect(entriesOf(entries, 'value-concept')).to.deep.equal([]);
    // Composites pair each code of the node with its value (search.html#composite).
    const composites = entriesOf(entries, 'code-value-quantity') as any[];
    expect(composites.map((e) => e.first.code).sort()).to.deep.equal(['27113001', '29463-7', '3141-9', 'body-weight']);
    expect(composites.every((e) => e.second.kind === 'quantity' && e.second.value === 185)).to.equal(true);
  });

  it('extracts component values of Observation-blood-pressure', () => {
    const entries = extractor.extract(example('Observation-blood-pressure'));
    expect(entriesOf(entries, 'component-value-quantity').map((e) => (e as { value: number }).value)).to.deep.equal([107, 60]);
    expect(entriesOf(entries, 'combo-code').map((e) => (e as { code: string }).code)).to.include.members(['85354-9', '8480-6', '8462-4']);
    expect(entriesOf(entries, 'date')).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2012, 8, 17), high: utc(2012, 8, 18) }]);
  });

  it('extracts RiskAssessment probabilities with their implicit precision', () => {
    const entries = extractor.extract(example('RiskAssessment-genetic'));
    const probabilities = entriesOf(entries, 'probability');
    expect(probabilities.length).to.be.greaterThan(3);
    expect(probabilities).to.deep.include({ param: 'probability', kind: 'number', value: 0.000168, low: 0.0001675, high: 0.0001685 });
    expect(probabilities).to.deep.include({ param: 'probability', kind: 'number', value: 0.00153, low: 0.001525, high: 0.001535 });
  });

  for (const type of ['Patient', 'Observation', 'RiskAssessment']) {
    it(`yields entries, without errors, for every official ${type} example`, () => {
      const errors: string[] = [];
      const checking = new SearchIndexExtractor(registry, { onEvaluationError: (i) => errors.push(`${i.code}: ${String(i.error)}`) });
      const examples = examplesOf(type);
      expect(examples.length).to.be.greaterThan(5);
      for (const { name, resource } of examples) {
        const entries = checking.extract(resource);
        expect(entries.length, name).to.be.greaterThan(0);
        for (const e of entries) expect(registry.get(type, e.param), `${name} ${e.param}`).to.not.equal(undefined);
      }
      expect(errors).to.deep.equal([]);
    });
  }
});

describe('SearchIndexExtractor rules', () => {
  const obs = (extra: Record<string, unknown>): Resource => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, ...extra });

  it('indexes a Period with an open end as unbounded', () => {
    const open = entriesOf(extractor.extract(obs({ effectivePeriod: { start: '2020-01-01' } })), 'date');
    expect(open).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2020, 0, 1), high: Number.MAX_SAFE_INTEGER }]);
    const openStart = entriesOf(extractor.extract(obs({ effectivePeriod: { end: '2020-01-01T10:00:00Z' } })), 'date');
    expect(openStart).to.deep.equal([{ param: 'date', kind: 'date', low: Number.MIN_SAFE_INTEGER, high: utc(2020, 0, 1, 10, 0, 1) }]);
    const closed = entriesOf(extractor.extract(obs({ effectivePeriod: { start: '2020-01', end: '2020-03' } })), 'date');
    expect(closed).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2020, 0, 1), high: utc(2020, 3, 1) }]);
  });

  it('indexes a Timing by the outer limits of its events', () => {
    const entries = entriesOf(extractor.extract(obs({ effectiveTiming: { event: ['2021-05-03', '2021-05-01T08:00:00Z'] } })), 'date');
    expect(entries).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2021, 4, 1, 8), high: utc(2021, 4, 4) }]);
  });

  it('indexes dateTime and instant with their precision and offset', () => {
    const entries = entriesOf(extractor.extract(obs({ effectiveDateTime: '2013-04-02T09:30:10+01:00' })), 'date');
    expect(entries).to.deep.equal([{ param: 'date', kind: 'date', low: utc(2013, 3, 2, 8, 30, 10), high: utc(2013, 3, 2, 8, 30, 11) }]);
    expect(entriesOf(extractor.extract(obs({ effectiveDateTime: '2013-02-30' })), 'date')).to.deep.equal([]);
  });

  it('folds string values and keeps the raw text', () => {
    const entries = extractor.extract({ resourceType: 'Patient', name: [{ family: 'Müller-Lüdenscheidt', given: ['Renée', ' Zoë  Ann '] }] });
    expect(entriesOf(entries, 'family')).to.deep.equal([{ param: 'family', kind: 'string', value: 'muller-ludenscheidt', raw: 'Müller-Lüdenscheidt' }]);
    expect(entriesOf(entries, 'given')).to.deep.equal([
      { param: 'given', kind: 'string', value: 'renee', raw: 'Renée' },
      { param: 'given', kind: 'string', value: 'zoe ann', raw: ' Zoë  Ann ' },
    ]);
    expect(entriesOf(entries, 'name').map((e) => (e as { value: string }).value)).to.deep.equal(['muller-ludenscheidt', 'renee', 'zoe ann']);
  });

  it('indexes every text part of HumanName and Address', () => {
    const entries = extractor.extract({
      resourceType: 'Patient',
      name: [{ text: 'Dr Ann Lee Jr', prefix: ['Dr'], given: ['Ann'], family: 'Lee', suffix: ['Jr'] }],
      address: [{ line: ['1 Main St', 'Apt 2'], city: 'Springfield', district: 'Clark', state: 'OH', postalCode: '45501', country: 'US', text: '1 Main St' }],
    });
    expect(entriesOf(entries, 'name').map((e) => (e as { raw: string }).raw)).to.deep.equal(['Lee', 'Ann', 'Dr', 'Jr', 'Dr Ann Lee Jr']);
    expect(entriesOf(entries, 'address').map((e) => (e as { raw: string }).raw))
      .to.deep.equal(['1 Main St', 'Apt 2', 'Springfield', 'Clark', 'OH', '45501', 'US']);
    expect(entriesOf(entries, 'address-country')).to.deep.equal([{ param: 'address-country', kind: 'string', value: 'us', raw: 'US' }]);
  });

  it('indexes Age, Range and Money quantities', () => {
    const age = extractor.extract({ resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetAge: { value: 52, unit: 'yr', system: 'http://unitsofmeasure.org', code: 'a' } });
    expect(entriesOf(age, 'onset-age')).to.deep.equal([{
      param: 'onset-age', kind: 'quantity', value: 52, low: 51.5, high: 52.5, system: 'http://unitsofmeasure.org', code: 'a', unit: 'yr',
    }]);
    const range = extractor.extract({ resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetRange: { low: { value: 40, unit: 'yr', system: 'http://unitsofmeasure.org', code: 'a' } } });
    expect(entriesOf(range, 'onset-age')).to.deep.equal([{
      param: 'onset-age', kind: 'quantity', value: 40, low: 39.5, high: Number.MAX_VALUE, system: 'http://unitsofmeasure.org', code: 'a', unit: 'yr',
    }]);
    const money = extractor.extract({ resourceType: 'ChargeItem', status: 'billable', code: { text: 'x' }, subject: { reference: 'Patient/1' }, priceOverride: { value: 12.5, currency: 'EUR' } });
    expect(entriesOf(money, 'price-override')).to.deep.equal([{
      param: 'price-override', kind: 'quantity', value: 12.5, low: 12.45, high: 12.55, system: 'urn:iso:std:iso:4217', code: 'EUR', unit: 'EUR',
    }]);
  });

  it('deduplicates identical entries of one parameter', () => {
    const entries = extractor.extract({ resourceType: 'Patient', name: [{ family: 'Smith' }, { family: 'SMITH' }, { family: 'Smith' }] });
    expect(entriesOf(entries, 'family')).to.deep.equal([
      { param: 'family', kind: 'string', value: 'smith', raw: 'Smith' },
      { param: 'family', kind: 'string', value: 'smith', raw: 'SMITH' },
    ]);
  });

  it('indexes references: relative, versioned, absolute and urn:uuid; patient only for Patient targets', () => {
    const subjects: [string, string | null, string | null][] = [
      ['Patient/1', 'Patient', '1'],
      ['Patient/1/_history/3', 'Patient', '1'],
      ['http://other.org/fhir/Patient/9', 'Patient', '9'],
      ['urn:uuid:c757873d-ec9a-4326-a141-556f43239520', null, null],
      ['Group/g1', 'Group', 'g1'],
    ];
    for (const [reference, targetType, targetId] of subjects) {
      const entries = extractor.extract(obs({ subject: { reference } }));
      expect(entriesOf(entries, 'subject'), reference).to.deep.equal([{ param: 'subject', kind: 'reference', targetType, targetId, url: reference }]);
      const patient = entriesOf(entries, 'patient');
      expect(patient, reference).to.deep.equal(targetType === 'Patient'
        ? [{ param: 'patient', kind: 'reference', targetType, targetId, url: reference }] : []);
    }
    // Identifier-only (logical) references name no resource, but :identifier finds them.
    expect(entriesOf(extractor.extract(obs({ subject: { identifier: { value: '1' } } })), 'subject')).to.deep.equal([
      { param: 'subject', kind: 'reference', targetType: null, targetId: null, url: '', identifierSystem: null, identifierValue: '1' },
    ]);
  });

  it('uses the base url to tell local from external absolute references', () => {
    const local = new SearchIndexExtractor(registry, { baseUrl: 'http://localhost:8080/fhir' });
    const ext = entriesOf(local.extract(obs({ subject: { reference: 'http://other.org/fhir/Patient/9' } })), 'subject');
    expect(ext).to.deep.equal([{ param: 'subject', kind: 'reference', targetType: null, targetId: null, url: 'http://other.org/fhir/Patient/9' }]);
    const own = entriesOf(local.extract(obs({ subject: { reference: 'http://localhost:8080/fhir/Patient/9' } })), 'subject');
    expect(own).to.deep.equal([{ param: 'subject', kind: 'reference', targetType: 'Patient', targetId: '9', url: 'http://localhost:8080/fhir/Patient/9' }]);
  });

  it('maps tokens per the search.html#token table', () => {
    const entries = extractor.extract({
      resourceType: 'Patient',
      identifier: [{ system: 'http://ns', value: 'A1', type: { text: 'MRN' } }],
      telecom: [{ system: 'email', value: 'a@b.org', use: 'work' }],
      communication: [{ language: { text: 'Klingon' } }],
      gender: 'female',
    });
    expect(entriesOf(entries, 'identifier')).to.deep.equal([{ param: 'identifier', kind: 'token', system: 'http://ns', code: 'A1', text: 'MRN' }]);
    expect(entriesOf(entries, 'email')).to.deep.equal([{ param: 'email', kind: 'token', system: null, code: 'a@b.org', text: null }]);
    expect(entriesOf(entries, 'phone')).to.deep.equal([]);
    expect(entriesOf(entries, 'language')).to.deep.equal([{ param: 'language', kind: 'token', system: null, code: null, text: 'Klingon' }]);
  });

  it('indexes meta: _tag, _security, _profile, _source, but not _id/_lastUpdated', () => {
    const entries = extractor.extract({
      resourceType: 'RiskAssessment', id: 'r1', status: 'final', subject: { reference: 'Patient/1' },
      meta: {
        lastUpdated: '2024-01-01T00:00:00Z', source: 'http://ehr.example/x', profile: ['http://example.org/StructureDefinition/p'],
        tag: [{ system: 'http://t', code: 'a', display: 'A' }], security: [{ system: 'http://s', code: 'R' }],
      },
    });
    expect(entriesOf(entries, '_tag')).to.deep.equal([{ param: '_tag', kind: 'token', system: 'http://t', code: 'a', text: 'A' }]);
    expect(entriesOf(entries, '_security')).to.deep.equal([{ param: '_security', kind: 'token', system: 'http://s', code: 'R', text: null }]);
    expect(entriesOf(entries, '_profile')).to.deep.equal([{ param: '_profile', kind: 'uri', value: 'http://example.org/StructureDefinition/p' }]);
    expect(entriesOf(entries, '_source')).to.deep.equal([{ param: '_source', kind: 'uri', value: 'http://ehr.example/x' }]);
    expect(entriesOf(entries, '_id')).to.deep.equal([]);
    expect(entriesOf(entries, '_lastUpdated')).to.deep.equal([]);
  });

  it('takes number precision from the JSON number (1.50 is read as 1.5)', () => {
    const resource = JSON.parse('{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}') as Resource;
    expect(entriesOf(extractor.extract(resource), 'value-quantity')).to.deep.equal([{
      param: 'value-quantity', kind: 'quantity', value: 1.5, low: 1.45, high: 1.55, system: null, code: null, unit: 'mg',
    }]);
    const ra = extractor.extract({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/1' }, prediction: [{ probabilityDecimal: 0.8 }] });
    expect(entriesOf(ra, 'probability')).to.deep.equal([{ param: 'probability', kind: 'number', value: 0.8, low: 0.75, high: 0.85 }]);
  });

  it('indexes a probability Range as the interval it covers', () => {
    const ra = extractor.extract({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/1' }, prediction: [{ probabilityRange: { low: { value: 0.1 }, high: { value: 0.2 } } }] });
    expect(entriesOf(ra, 'probability')).to.deep.equal([{ param: 'probability', kind: 'number', value: 0.1, low: 0.05, high: 0.25 }]);
  });

  it('does not index SampledData as a quantity', () => {
    const entries = extractor.extract(obs({ valueSampledData: { origin: { value: 2, unit: 'mV' }, period: 10, dimensions: 1, data: '1 2 3' } }));
    expect(entriesOf(entries, 'value-quantity')).to.deep.equal([]);
  });

  it('indexes string values of choice elements with the right parameter (value-string)', () => {
    const entries = extractor.extract(obs({ valueString: 'Positive' }));
    expect(entriesOf(entries, 'value-string')).to.deep.equal([{ param: 'value-string', kind: 'string', value: 'positive', raw: 'Positive' }]);
    expect(entriesOf(entries, 'value-quantity')).to.deep.equal([]);
  });

  it('reports an expression that throws and goes on with the other parameters', () => {
    const errors: string[] = [];
    const bundle = {
      resourceType: 'Bundle' as const,
      entry: [
        { resource: { resourceType: 'SearchParameter' as const, url: 'http://x/a', code: 'boom', base: ['Patient'], type: 'token' as const, expression: "Patient.name.given.single()" } },
        { resource: { resourceType: 'SearchParameter' as const, url: 'http://x/b', code: 'fam', base: ['Patient'], type: 'string' as const, expression: 'Patient.name.family' } },
      ],
    };
    const custom = new SearchIndexExtractor(SearchParameterRegistry.fromBundle(bundle), { onEvaluationError: (i) => errors.push(i.code) });
    const entries = custom.extract({ resourceType: 'Patient', name: [{ family: 'A', given: ['x', 'y'] }] });
    expect(errors).to.deep.equal(['boom']);
    expect(entries).to.deep.equal([{ param: 'fam', kind: 'string', value: 'a', raw: 'A' }]);
  });
});

describe('SearchIndexExtractor compilation', () => {
  it('compiles every official expression (the list of skipped ones is empty)', () => {
    expect(new SearchIndexExtractor(registry).skippedExpressions()).to.deep.equal([]);
    expect(new SearchIndexExtractor(registry, { engine: 'fhirpath' }).skippedExpressions()).to.deep.equal([]);
  });

  it('skips and lists an expression that fhirpath.js cannot compile, keeping the others', () => {
    const bundle = {
      resourceType: 'Bundle' as const,
      entry: [
        { resource: { resourceType: 'SearchParameter' as const, url: 'http://x/bad', code: 'bad', base: ['Patient'], type: 'string' as const, expression: 'Patient.name.where(' } },
        { resource: { resourceType: 'SearchParameter' as const, url: 'http://x/good', code: 'good', base: ['Patient'], type: 'string' as const, expression: 'Patient.name.family' } },
      ],
    };
    const custom = new SearchIndexExtractor(SearchParameterRegistry.fromBundle(bundle));
    const skipped = custom.skippedExpressions();
    expect(skipped.map((s) => [s.resourceType, s.code, s.expression])).to.deep.equal([['Patient', 'bad', 'Patient.name.where(']]);
    expect(skipped[0].reason).to.be.a('string').and.not.equal('');
    expect(custom.engineFor('Patient', 'bad')).to.equal('skipped');
    expect(custom.extract({ resourceType: 'Patient', name: [{ family: 'Doe' }] })).to.deep.equal([{ param: 'good', kind: 'string', value: 'doe', raw: 'Doe' }]);
  });

  it('runs the core types on the fast evaluator, with fhirpath.js only where needed', () => {
    const fallbacks: string[] = [];
    for (const type of registry.resourceTypes()) {
      for (const def of registry.forType(type).values()) {
        if (extractor.engineFor(type, def.code) === 'fhirpath') fallbacks.push(`${type}.${def.code}`);
      }
    }
    expect(fallbacks.sort()).to.deep.equal(['Bundle.composition', 'Bundle.message', 'Patient.deceased']);
    expect(extractor.engineFor('Observation', 'value-quantity')).to.equal('fast');
    expect(extractor.engineFor('Observation', 'code-value-quantity')).to.equal(undefined);
    expect(extractor.engineFor('Observation', '_id')).to.equal(undefined);
  });
});

describe('fast evaluator ≡ fhirpath.js on the official examples', () => {
  const errors: string[] = [];
  const reference = new SearchIndexExtractor(registry, {
    engine: 'fhirpath',
    onEvaluationError: (i) => errors.push(`${i.resourceType}.${i.code}: ${String(i.error)}`),
  });
  const OTHER_TYPES = [
    'Condition', 'Encounter', 'Procedure', 'MedicationRequest', 'DiagnosticReport', 'AllergyIntolerance', 'Immunization',
    'CarePlan', 'Practitioner', 'Organization', 'Location', 'Questionnaire', 'QuestionnaireResponse', 'ServiceRequest',
    'Appointment', 'Claim', 'Person', 'PlanDefinition', 'ActivityDefinition', 'Provenance', 'AuditEvent', 'Consent',
    'Medication', 'Group', 'Specimen',
  ];

  for (const type of ['Patient', 'Observation', 'RiskAssessment', ...OTHER_TYPES]) {
    it(`gives identical entries for every parameter on every ${type} example`, () => {
      const examples = examplesOf(type);
      expect(examples.length, type).to.be.greaterThan(0);
      let compared = 0;
      let nonEmpty = 0;
      for (const { name, resource } of examples) {
        const expected = canonical(reference.extract(resource));
        const fast = canonical(extractor.extract(resource));
        for (const def of registry.forType(type).values()) {
          expect(fast.get(def.code) ?? [], `${name} ${def.code}`).to.deep.equal(expected.get(def.code) ?? []);
          compared++;
          if (expected.has(def.code)) nonEmpty++;
        }
      }
      expect(errors).to.deep.equal([]);
      expect(compared).to.be.greaterThan(0);
      expect(nonEmpty).to.be.greaterThan(0);
    });
  }
});
