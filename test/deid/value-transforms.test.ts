/**
 * The de-identification value transforms: FHIR R4 date formats (datatypes.html), date shifting at
 * every precision, Safe Harbor generalisations (45 CFR 164.514(b)(2)(i)(B) and (C)) and the keyed
 * hash (RFC 4231 known answers).
 */
import { expect } from 'chai';
import {
  cryptoHash, dateToYear, generalizeAge, generalizeBirthDate, generalizeZip, isDateOfType, shiftDate,
  type AgeQuantity, type FhirDateType,
} from '../../src/deid/value-transforms.js';

const UCUM = 'http://unitsofmeasure.org';
const DAY_MS = 86_400_000;

/** Days between two YYYY-MM-DD dates, computed independently with Date (years >= 100 only). */
function utcDays(ymd: string): number {
  return Date.parse(`${ymd.slice(0, 10)}T00:00:00Z`) / DAY_MS;
}

/** Deterministic PRNG (a 32-bit xorshift) so a failing property run can be reproduced. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

function expectRangeErrorWithout(fn: () => unknown, secret: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'throws').to.be.instanceOf(RangeError);
  expect((caught as Error).message).to.not.include(secret);
}

describe('deid value-transforms', () => {
  describe('isDateOfType', () => {
    const rows: [string, FhirDateType, boolean][] = [
      ['2024', 'date', true],
      ['2024-02', 'date', true],
      ['2024-02-29', 'date', true],
      ['0001-01-01', 'date', true],
      ['9999-12-31', 'date', true],
      ['0000', 'date', false],
      ['0000-01-01', 'dateTime', false],
      ['2023-02-29', 'date', false],
      ['1900-02-29', 'date', false],
      ['2000-02-29', 'date', true],
      ['2024-04-31', 'date', false],
      ['2024-13', 'date', false],
      ['2024-00-10', 'date', false],
      ['2024-01-00', 'date', false],
      ['24-01-01', 'date', false],
      ['20240101', 'date', false],
      ['2024-1-1', 'date', false],
      [' 2024', 'date', false],
      ['2024-01-01T10:00:00Z', 'date', false],
      ['2024', 'dateTime', true],
      ['2024-06', 'dateTime', true],
      ['2024-06-01', 'dateTime', true],
      ['2024-06-01T10:00:00Z', 'dateTime', true],
      ['2024-06-01T10:00:00.123456+05:30', 'dateTime', true],
      ['2024-06-01T23:59:60-13:59', 'dateTime', true],
      ['2024-06-01T10:00:00+14:00', 'dateTime', true],
      ['2024-06-01T10:00:00+14:01', 'dateTime', false],
      ['2024-06-01T10:00:00-14:00', 'dateTime', true],
      ['2024-06-01T10:00:00', 'dateTime', false],
      ['2024-06-01T10:00Z', 'dateTime', false],
      ['2024-06-01T24:00:00Z', 'dateTime', false],
      ['2024-06-01T10:00:00.Z', 'dateTime', false],
      ['2024-06-01T10:00:00z', 'dateTime', false],
      ['2024-06-01 10:00:00Z', 'dateTime', false],
      ['2024-06T10:00:00Z', 'dateTime', false],
      ['2023-02-29T10:00:00Z', 'dateTime', false],
      ['2024-06-01T10:00:00Z', 'instant', true],
      ['2024-06-01T10:00:00.5-03:00', 'instant', true],
      ['2024-06-01', 'instant', false],
      ['2024', 'instant', false],
      ['2024-06-31T10:00:00Z', 'instant', false],
      ['', 'date', false],
    ];
    for (const [value, type, valid] of rows) {
      it(`${JSON.stringify(value)} is ${valid ? '' : 'not '}a ${type}`, () => {
        expect(isDateOfType(value, type)).to.equal(valid);
      });
    }
    it('rejects a non-string at run time', () => {
      expect(isDateOfType(20240101 as unknown as string, 'date')).to.equal(false);
    });
  });

  describe('dateToYear', () => {
    const rows: [string, FhirDateType, string][] = [
      ['1987', 'date', '1987'],
      ['1987-04', 'date', '1987'],
      ['1987-04-23', 'date', '1987'],
      ['0001-01-01', 'date', '0001'],
      ['1987', 'dateTime', '1987'],
      ['1987-04-23T08:15:00Z', 'dateTime', '1987'],
      // The local year as written, not the UTC year (which would be 2020).
      ['2019-12-31T23:30:00-05:00', 'dateTime', '2019'],
      // And the other way round (UTC would be 2019).
      ['2020-01-01T00:30:00+01:00', 'dateTime', '2020'],
      ['2019-12-31T23:30:00.123-05:00', 'instant', '2019-01-01T00:00:00Z'],
      ['2024-06-01T10:00:00Z', 'instant', '2024-01-01T00:00:00Z'],
    ];
    for (const [value, type, expected] of rows) {
      it(`${type} ${value} -> ${expected}`, () => {
        expect(dateToYear(value, type)).to.equal(expected);
        expect(isDateOfType(expected, type), 'result stays a valid value of the type').to.equal(true);
      });
    }
  });

  describe('shiftDate', () => {
    const rows: [string, number, FhirDateType, string][] = [
      // Full dates: calendar arithmetic.
      ['2024-01-15', 10, 'date', '2024-01-25'],
      ['2024-01-15', 0, 'date', '2024-01-15'],
      ['2024-02-28', 1, 'date', '2024-02-29'],
      ['2023-02-28', 1, 'date', '2023-03-01'],
      ['2024-02-29', 1, 'date', '2024-03-01'],
      ['2024-02-29', 365, 'date', '2025-02-28'],
      ['2024-02-29', 366, 'date', '2025-03-01'],
      ['2024-02-29', -366, 'date', '2023-02-28'],
      ['2000-02-28', 1, 'date', '2000-02-29'],
      ['1900-02-28', 1, 'date', '1900-03-01'],
      ['2019-12-31', 1, 'date', '2020-01-01'],
      ['2020-01-01', -1, 'date', '2019-12-31'],
      ['2020-01-05', -10, 'date', '2019-12-26'],
      ['2021-03-01', -365, 'date', '2020-03-01'],
      ['2021-03-01', -366, 'date', '2020-02-29'],
      ['2020-06-15', -3650, 'date', '2010-06-18'],
      ['0001-01-01', 0, 'date', '0001-01-01'],
      ['0001-01-01', 365, 'date', '0002-01-01'],
      ['0099-12-31', 1, 'date', '0100-01-01'],
      ['0004-02-28', 1, 'date', '0004-02-29'],
      ['9999-12-30', 1, 'date', '9999-12-31'],
      // Months: the first day of the month is shifted.
      ['2024-01', 30, 'date', '2024-01'],
      ['2024-01', 31, 'date', '2024-02'],
      ['2024-02', 28, 'date', '2024-02'],
      ['2024-02', 29, 'date', '2024-03'],
      ['2023-02', 28, 'date', '2023-03'],
      ['2024-03', -1, 'date', '2024-02'],
      ['2024-01', -1, 'dateTime', '2023-12'],
      ['2024-12', 31, 'dateTime', '2025-01'],
      // Years: January 1 is shifted.
      ['2020', 365, 'date', '2020'],
      ['2020', 366, 'date', '2021'],
      ['2021', 365, 'date', '2022'],
      ['2020', -1, 'date', '2019'],
      ['2020', -365, 'date', '2019'],
      ['2020', -366, 'date', '2018'],
      ['2020', 3652, 'dateTime', '2029'],
      ['9999', 364, 'date', '9999'],
      // Times: only the date moves; time, fraction and zone are kept verbatim.
      ['2019-12-31T23:30:00-05:00', 1, 'dateTime', '2020-01-01T23:30:00-05:00'],
      ['2020-01-01T00:30:00+01:00', -1, 'dateTime', '2019-12-31T00:30:00+01:00'],
      ['2024-02-28T12:00:00.123456789Z', 1, 'dateTime', '2024-02-29T12:00:00.123456789Z'],
      ['2024-02-29T08:00:00.1+14:00', 365, 'dateTime', '2025-02-28T08:00:00.1+14:00'],
      ['2016-12-31T23:59:60Z', 2, 'dateTime', '2017-01-02T23:59:60Z'],
      ['2024-03-10T02:30:00-05:00', 7, 'instant', '2024-03-17T02:30:00-05:00'],
      ['2024-06-01T10:00:00.000Z', -152, 'instant', '2024-01-01T10:00:00.000Z'],
      ['2024-06-01T10:00:00-00:00', -153, 'instant', '2023-12-31T10:00:00-00:00'],
    ];
    for (const [value, days, type, expected] of rows) {
      it(`${type} ${value} ${days >= 0 ? '+' : ''}${days} d -> ${expected}`, () => {
        expect(shiftDate(value, days, type)).to.equal(expected);
        expect(isDateOfType(expected, type), 'result stays a valid value of the type').to.equal(true);
      });
    }

    it('agrees with Date arithmetic on the 2024-02-29 + 365 leap-day case', () => {
      const viaDate = new Date(Date.UTC(2024, 1, 29) + 365 * DAY_MS).toISOString().slice(0, 10);
      expect(viaDate).to.equal('2025-02-28');
      expect(shiftDate('2024-02-29', 365, 'date')).to.equal(viaDate);
    });

    const outOfRange: [string, number, FhirDateType][] = [
      ['0001-01-01', -1, 'date'],
      ['0001', -1, 'date'],
      ['0001-01', -1, 'dateTime'],
      ['9999-12-31', 1, 'date'],
      ['9999-12-31T23:00:00Z', 1, 'instant'],
      ['9999', 365, 'date'],
      ['2024-01-01', 4_000_000, 'date'],
      ['2024-01-01', -4_000_000, 'date'],
    ];
    for (const [value, days, type] of outOfRange) {
      it(`throws RangeError when ${type} ${value} ${days} d leaves 0001-9999`, () => {
        expectRangeErrorWithout(() => shiftDate(value, days, type), value);
      });
    }

    const badShifts = [0.5, -1.25, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60];
    for (const days of badShifts) {
      it(`throws RangeError for a shift of ${days} days`, () => {
        expect(() => shiftDate('2024-01-01', days, 'date')).to.throw(RangeError);
      });
    }

    it('property: 1,000 random date pairs keep their difference in days under random shifts', () => {
      const random = xorshift(0x5eed_2024);
      const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
      const randomDate = (): string => {
        // 1600-2400 covers the century rules (1700, 1800, 1900 and 2100 are common, 2000 leap).
        const ms = Date.UTC(int(1600, 2400), 0, 1) + int(0, 365) * DAY_MS;
        return new Date(ms).toISOString().slice(0, 10);
      };
      const zones = ['Z', '+00:00', '-05:00', '+05:30', '+14:00', '-12:00'];
      for (let i = 0; i < 1000; i += 1) {
        const a = randomDate();
        const b = randomDate();
        const days = int(-36_500, 36_500);
        const sa = shiftDate(a, days, 'date');
        // The second of the pair carries a time and zone, which must come through untouched.
        const suffix = `T${String(int(0, 23)).padStart(2, '0')}:${String(int(0, 59)).padStart(2, '0')}:07.${int(0, 999)}${zones[int(0, zones.length - 1)]}`;
        const sb = shiftDate(`${b}${suffix}`, days, 'dateTime');
        const context = `${a} / ${b}${suffix} shifted ${days}`;
        expect(utcDays(sb) - utcDays(sa), context).to.equal(utcDays(b) - utcDays(a));
        expect(utcDays(sa) - utcDays(a), context).to.equal(days);
        expect(sb.slice(10), context).to.equal(suffix);
        expect(isDateOfType(sa, 'date'), context).to.equal(true);
        expect(isDateOfType(sb, 'dateTime'), context).to.equal(true);
      }
    });
  });

  describe('invalid inputs throw RangeError without echoing the value', () => {
    const rows: [string, FhirDateType][] = [
      ['1985-02-30', 'date'],
      ['1985-13-01', 'date'],
      ['not-a-date', 'date'],
      ['1985-06-01T10:00:00Z', 'date'],
      ['1985-06-01T10:00:00', 'dateTime'],
      ['1985-06-01T10:00Z', 'dateTime'],
      ['1985-06-01', 'instant'],
      ['1985', 'instant'],
      ['0000', 'dateTime'],
    ];
    for (const [value, type] of rows) {
      it(`${type} ${JSON.stringify(value)}`, () => {
        expectRangeErrorWithout(() => dateToYear(value, type), value);
        expectRangeErrorWithout(() => shiftDate(value, 1, type), value);
        expectRangeErrorWithout(() => generalizeBirthDate(value, type, new Date('2024-06-15T12:00:00Z')), value);
      });
    }
  });

  describe('generalizeZip', () => {
    const restricted: ReadonlySet<string> = new Set(['036', '059', '102', '203', '556', '692', '821', '823', '878', '879', '884', '893']);
    const rows: [string, string | undefined][] = [
      ['02139', '021'],
      ['02139-4307', '021'],
      ['021394307', '021'],
      [' 02139 ', '021'],
      ['02139 - 4307', '021'],
      ['03690', '000'],
      ['03690-1234', '000'],
      ['87901', '000'],
      ['10001', '100'],
      ['SW1A 1AA', undefined],
      ['K1A 0B1', undefined],
      ['021', undefined],
      ['0213', undefined],
      ['021390', undefined],
      ['02139-43', undefined],
      ['123AB', undefined],
      ['', undefined],
    ];
    for (const [zip, expected] of rows) {
      it(`${JSON.stringify(zip)} -> ${String(expected)}`, () => {
        expect(generalizeZip(zip, restricted)).to.equal(expected);
      });
    }
    it('uses only the supplied restricted list', () => {
      expect(generalizeZip('03690', new Set())).to.equal('036');
      expect(generalizeZip('02139', new Set(['021']))).to.equal('000');
    });
  });

  describe('generalizeBirthDate', () => {
    // now = 2024-06-15: the 90+ category is the birth year 2024 - 90 = 1934.
    const now = new Date('2024-06-15T12:00:00Z');
    const rows: [string, string, FhirDateType, string][] = [
      ['88 years old', '1935-12-01', 'date', '1935'],
      ['89 years old, born late in 1934', '1934-12-01', 'date', '1934'],
      ['89 years old, the day before turning 90', '1934-06-16', 'date', '1934'],
      ['90 years old today', '1934-06-15', 'date', '1934'],
      ['90 years old, born in 1933: the year is aggregated', '1933-12-01', 'date', '1934'],
      ['105 years old', '1919-03-04', 'date', '1934'],
      ['1 year old', '2023-01-01', 'date', '2023'],
      ['born after now', '2025-01-01', 'date', '2025'],
      // Partial dates: read as the latest birth date in their range.
      ['year 1934: at most 90, latest reading 89', '1934', 'date', '1934'],
      ['year 1933: at least 90 even if born on 31 December', '1933', 'date', '1934'],
      ['year 1935: at most 89', '1935', 'date', '1935'],
      ['year 1900', '1900', 'date', '1934'],
      ['month 1933-12: 90 even if born on the 31st', '1933-12', 'date', '1934'],
      ['month 1934-06', '1934-06', 'date', '1934'],
      ['month 1935-01', '1935-01', 'date', '1935'],
      // dateTime: the date as written.
      ['dateTime, 91', '1933-01-01T10:00:00+14:00', 'dateTime', '1934'],
      ['dateTime, 70', '1954-05-05T23:00:00-05:00', 'dateTime', '1954'],
      ['dateTime year only, 96', '1928', 'dateTime', '1934'],
      // instant keeps its type.
      ['instant, 90', '1930-02-02T02:02:02Z', 'instant', '1934-01-01T00:00:00Z'],
      ['instant, 40', '1984-02-02T02:02:02Z', 'instant', '1984-01-01T00:00:00Z'],
    ];
    for (const [label, value, type, expected] of rows) {
      it(`${label}: ${value} -> ${expected}`, () => {
        expect(generalizeBirthDate(value, type, now)).to.equal(expected);
      });
    }

    it('uses the UTC calendar date of now', () => {
      // Across New Year in UTC the category year moves from 1934 to 1935, whatever the host zone.
      expect(generalizeBirthDate('1934-12-31', 'date', new Date('2025-01-01T00:00:00Z'))).to.equal('1935');
      expect(generalizeBirthDate('1934-12-31', 'date', new Date('2024-12-31T23:59:59Z'))).to.equal('1934');
    });

    it('property: the result is max(birth year, now year - 90) for every day of birth across 1930-1940', () => {
      for (let ms = Date.UTC(1930, 0, 1); ms <= Date.UTC(1940, 11, 31); ms += DAY_MS) {
        const value = new Date(ms).toISOString().slice(0, 10);
        const expected = String(Math.max(Number(value.slice(0, 4)), 1934));
        expect(generalizeBirthDate(value, 'date', now), value).to.equal(expected);
      }
    });

    it('rejects an invalid now', () => {
      expect(() => generalizeBirthDate('1950-01-01', 'date', new Date('nope'))).to.throw(RangeError);
    });
  });

  describe('generalizeAge', () => {
    const ninetyPlus = { value: 90, comparator: '>=', unit: 'a', system: UCUM, code: 'a' };
    const rows: [string, AgeQuantity, AgeQuantity][] = [
      ['45 a (UCUM)', { value: 45, unit: 'a', system: UCUM, code: 'a' }, { value: 45, unit: 'a', system: UCUM, code: 'a' }],
      ['89 a', { value: 89, unit: 'a', system: UCUM, code: 'a' }, { value: 89, unit: 'a', system: UCUM, code: 'a' }],
      ['89.5 a (completed years: 89)', { value: 89.5, unit: 'a', system: UCUM, code: 'a' }, { value: 89.5, unit: 'a', system: UCUM, code: 'a' }],
      ['90 a', { value: 90, unit: 'a', system: UCUM, code: 'a' }, ninetyPlus],
      ['104 a', { value: 104, unit: 'years', system: UCUM, code: 'a' }, ninetyPlus],
      ['95 yr (unit text only)', { value: 95, unit: 'yr' }, ninetyPlus],
      ['95 years (unit text only)', { value: 95, unit: 'years' }, ninetyPlus],
      ['95 Years (case-insensitive text)', { value: 95, unit: 'Years' }, ninetyPlus],
      ['60 yr (unit text only)', { value: 60, unit: 'yr' }, { value: 60, unit: 'yr' }],
      ['>= 92 a', { value: 92, comparator: '>=', unit: 'a', system: UCUM, code: 'a' }, ninetyPlus],
      ['> 95 a', { value: 95, comparator: '>', unit: 'a', system: UCUM, code: 'a' }, ninetyPlus],
      ['> 89 a is already the 90+ category', { value: 89, comparator: '>', unit: 'a', system: UCUM, code: 'a' }, { value: 89, comparator: '>', unit: 'a', system: UCUM, code: 'a' }],
      ['< 95 a is only an upper bound', { value: 95, comparator: '<', unit: 'a', system: UCUM, code: 'a' }, { value: 95, comparator: '<', unit: 'a', system: UCUM, code: 'a' }],
      ['1079 mo', { value: 1079, unit: 'months', system: UCUM, code: 'mo' }, { value: 1079, unit: 'months', system: UCUM, code: 'mo' }],
      ['1080 mo', { value: 1080, unit: 'months', system: UCUM, code: 'mo' }, ninetyPlus],
      ['1200 mo (unit text)', { value: 1200, unit: 'mo' }, ninetyPlus],
      ['18 mo', { value: 18, unit: 'mo', system: UCUM, code: 'mo' }, { value: 18, unit: 'mo', system: UCUM, code: 'mo' }],
      ['4695 wk (32,865 d)', { value: 4695, unit: 'wk', system: UCUM, code: 'wk' }, { value: 4695, unit: 'wk', system: UCUM, code: 'wk' }],
      ['4696 wk (32,872 d)', { value: 4696, unit: 'weeks', system: UCUM, code: 'wk' }, ninetyPlus],
      ['32870 d', { value: 32870, unit: 'd', system: UCUM, code: 'd' }, { value: 32870, unit: 'd', system: UCUM, code: 'd' }],
      ['32871 d', { value: 32871, unit: 'days', system: UCUM, code: 'd' }, ninetyPlus],
      ['40000 d', { value: 40000, unit: 'd' }, ninetyPlus],
      ['3 d', { value: 3, unit: 'd', system: UCUM, code: 'd' }, { value: 3, unit: 'd', system: UCUM, code: 'd' }],
      ['36 h', { value: 36, unit: 'h', system: UCUM, code: 'h' }, { value: 36, unit: 'h', system: UCUM, code: 'h' }],
      ['no value', { unit: 'a', system: UCUM, code: 'a' }, { unit: 'a', system: UCUM, code: 'a' }],
    ];
    for (const [label, input, expected] of rows) {
      it(label, () => {
        const before = structuredClone(input);
        const out = generalizeAge(input);
        expect(out).to.deep.equal(expected);
        expect(out, 'a new object').to.not.equal(input);
        expect(input, 'input untouched').to.deep.equal(before);
      });
    }

    it('keeps other properties of the Age (id, extension) on both paths', () => {
      const young = { id: 'a1', value: 30, unit: 'a', system: UCUM, code: 'a', extension: [{ url: 'urn:x', valueString: 'y' }] };
      expect(generalizeAge(young)).to.deep.equal(young);
      const old = { ...young, value: 99 };
      expect(generalizeAge(old)).to.deep.equal({ ...old, value: 90, comparator: '>=' });
    });

    const unjudgeable: [string, AgeQuantity][] = [
      ['an unknown unit', { value: 95, unit: 'Jahre' }],
      ['no unit at all', { value: 40 }],
      ['a non-UCUM system with an unknown unit text', { value: 95, system: 'urn:other', code: 'a', unit: 'decades' }],
      ['a non-finite value', { value: Number.NaN, unit: 'a', system: UCUM, code: 'a' }],
      ['an unknown comparator', { value: 95, comparator: 'ad', unit: 'a', system: UCUM, code: 'a' }],
    ];
    for (const [label, input] of unjudgeable) {
      it(`throws RangeError for ${label}`, () => {
        expect(() => generalizeAge(input)).to.throw(RangeError);
      });
    }
  });

  describe('cryptoHash', () => {
    it('RFC 4231 test case 2 (key "Jefe")', () => {
      expect(cryptoHash('what do ya want for nothing?', Buffer.from('Jefe'))).to.equal(
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      );
    });
    it('RFC 4231 test case 1 (20 bytes of 0x0b)', () => {
      expect(cryptoHash('Hi There', Buffer.alloc(20, 0x0b))).to.equal(
        'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
      );
    });
    it('depends on the key and hashes UTF-8', () => {
      const key = Buffer.alloc(32, 7);
      expect(cryptoHash('MRN-1', key)).to.not.equal(cryptoHash('MRN-1', Buffer.alloc(32, 8)));
      expect(cryptoHash('Zoë', key)).to.equal(cryptoHash('Zo\u00eb', key));
      expect(cryptoHash('x', key)).to.match(/^[0-9a-f]{64}$/);
    });
    it('refuses an empty key', () => {
      expect(() => cryptoHash('MRN-1', Buffer.alloc(0))).to.throw(RangeError);
    });
  });
});
