/**
 * Pure value transforms used by the de-identification rules (dateShift, generalize, cryptoHash).
 * No I/O and no state: every function maps one primitive value to another, or throws.
 *
 * Date formats follow FHIR R4 datatypes.html (primitive types; the regular expressions are the
 * ones the specification gives for each type):
 *  - date:     YYYY, YYYY-MM or YYYY-MM-DD
 *  - dateTime: the date forms, or YYYY-MM-DDThh:mm:ss(.s+)(Z|±hh:mm); when a time is present the
 *              seconds and the time zone are required
 *  - instant:  always the full YYYY-MM-DDThh:mm:ss(.s+)(Z|±hh:mm)
 * "Dates SHALL be valid dates", so the regular expressions are followed by a calendar check.
 *
 * Safe Harbor references are to 45 CFR 164.514(b)(2)(i): (B) geographic subdivisions smaller than
 * a state (ZIP codes), (C) all elements of dates except the year, and ages over 89.
 *
 * Errors are RangeErrors whose messages never contain the offending value: the values handled here
 * are identifiers and dates of real patients, and error messages end up in logs and
 * OperationOutcomes.
 */
import { createHmac } from 'node:crypto';

export type FhirDateType = 'date' | 'dateTime' | 'instant';

// ---------------------------------------------------------------------------------------------
// Format checks (datatypes.html regular expressions, composed from their parts)
// ---------------------------------------------------------------------------------------------

/** Any four digits except 0000 (datatypes.html: there is no year zero). */
const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(0[1-9]|1[0-2])';
const DAY = '(0[1-9]|[1-2][0-9]|3[0-1])';
/** Seconds may be 60 (a leap second) and a fraction has at least one digit, any number of them. */
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?';
/** Offsets run from -13:59 to +14:00, as in the specification's expression. */
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';

const DATE_RE = new RegExp(`^${YEAR}(-${MONTH}(-${DAY})?)?$`);
const DATE_TIME_RE = new RegExp(`^${YEAR}(-${MONTH}(-${DAY}(T${TIME}${ZONE})?)?)?$`);
const INSTANT_RE = new RegExp(`^${YEAR}-${MONTH}-${DAY}T${TIME}${ZONE}$`);

const FORMAT: Record<FhirDateType, RegExp> = { date: DATE_RE, dateTime: DATE_TIME_RE, instant: INSTANT_RE };

/** Proleptic Gregorian calendar, as XML Schema (and therefore FHIR) dates use. */
function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * True when `value` is a valid FHIR R4 value of `type`: the datatypes.html regular expression
 * matches and the date exists in the calendar (no 2023-02-29, no 2024-04-31).
 */
export function isDateOfType(value: string, type: FhirDateType): boolean {
  if (typeof value !== 'string') return false;
  const re = FORMAT[type];
  if (re === undefined || !re.test(value)) return false;
  // The regex already bounds the month to 01-12 and the day to 01-31; only the day needs the
  // length of its month. Positions are fixed by the format: YYYY-MM-DD...
  if (value.length >= 10) {
    const year = Number(value.slice(0, 4));
    const month = Number(value.slice(5, 7));
    const day = Number(value.slice(8, 10));
    if (day > daysInMonth(year, month)) return false;
  }
  return true;
}

function requireDate(value: string, type: FhirDateType, fn: string): void {
  if (!isDateOfType(value, type)) throw new RangeError(`${fn}: not a valid FHIR ${String(type)} value`);
}

// ---------------------------------------------------------------------------------------------
// Day arithmetic on calendar dates
// ---------------------------------------------------------------------------------------------

/*
 * Day numbers are counted with integer arithmetic on the proleptic Gregorian calendar (days since
 * 1970-01-01) rather than with Date: Date.UTC() maps the years 0-99 to 1900-1999, and going through
 * a Date invites time-zone conversions, which shiftDate must never do. The algorithm works in
 * 400-year eras (146,097 days each), with years starting on March 1 so the leap day falls last.
 */
const DAYS_PER_ERA = 146_097;
/** Days from 0000-03-01 to 1970-01-01. */
const EPOCH_OFFSET = 719_468;

function dayNumber(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const monthFromMarch = month > 2 ? month - 3 : month + 9;
  const dayOfYear = Math.floor((153 * monthFromMarch + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * DAYS_PER_ERA + dayOfEra - EPOCH_OFFSET;
}

function civilDate(n: number): { year: number; month: number; day: number } {
  const z = n + EPOCH_OFFSET;
  const era = Math.floor(z / DAYS_PER_ERA);
  const dayOfEra = z - era * DAYS_PER_ERA;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

/** The year as a value of `type`: an instant must carry a full date, time and zone to stay valid. */
function yearAs(year: string, type: FhirDateType): string {
  return type === 'instant' ? `${year}-01-01T00:00:00Z` : year;
}

/**
 * Safe Harbor keeps only the year of a date (164.514(b)(2)(i)(C)). date and dateTime become
 * 'YYYY'; an instant cannot be a bare year, so it becomes 'YYYY-01-01T00:00:00Z'.
 *
 * The year is the one written in the value, not the UTC year: '2019-12-31T23:30:00-05:00' is 2019.
 * The offset says where the event was recorded, and the local calendar year is the year the record
 * holds; converting to UTC would put a New Year's Eve admission into the next year.
 *
 * @throws RangeError when `value` is not a valid value of `type`.
 */
export function dateToYear(value: string, type: FhirDateType): string {
  requireDate(value, type, 'dateToYear');
  return yearAs(value.slice(0, 4), type);
}

/**
 * Moves a date by a whole number of days, keeping its precision (dateShift rule).
 *
 *  - YYYY-MM-DD: calendar arithmetic (leap years, month and year boundaries).
 *  - dateTime / instant with a time: only the date part moves, as a calendar date; the time of day,
 *    the fractional seconds and the zone designator are kept character for character. Nothing is
 *    converted to UTC, so the wall-clock time and the offset as recorded are unchanged
 *    ('2019-12-31T23:30:00-05:00' + 1 day = '2020-01-01T23:30:00-05:00').
 *  - YYYY-MM: the first day of the month is shifted and the result is cut back to YYYY-MM.
 *  - YYYY: January 1 is shifted and the result is cut back to YYYY.
 *
 * So a partial date moves only when the shift carries its first day across its boundary (a month
 * shifted by +10 days stays put, by -1 day goes to the previous month). Intervals between dates of
 * one subject, all moved by the same offset, are preserved exactly for full dates and to the
 * precision of the data (within one month or one year) for partial ones.
 *
 * @throws RangeError when `value` is not a valid value of `type`, `days` is not an integer, or the
 *   result would fall outside the years 0001-9999 that the FHIR formats can express.
 */
export function shiftDate(value: string, days: number, type: FhirDateType): string {
  requireDate(value, type, 'shiftDate');
  if (!Number.isSafeInteger(days)) throw new RangeError('shiftDate: the shift must be a whole number of days');

  const year = Number(value.slice(0, 4));
  const month = value.length >= 7 ? Number(value.slice(5, 7)) : 1;
  const day = value.length >= 10 ? Number(value.slice(8, 10)) : 1;
  const shifted = civilDate(dayNumber(year, month, day) + days);
  if (shifted.year < 1 || shifted.year > 9999) {
    throw new RangeError('shiftDate: the shifted date is outside the four-digit years FHIR can express');
  }

  const yyyy = pad(shifted.year, 4);
  if (value.length === 4) return yyyy;
  const mm = pad(shifted.month, 2);
  if (value.length === 7) return `${yyyy}-${mm}`;
  // Everything after YYYY-MM-DD (the 'T', time, fraction and zone) is carried over verbatim.
  return `${yyyy}-${mm}-${pad(shifted.day, 2)}${value.slice(10)}`;
}

/**
 * Safe Harbor birth date (164.514(b)(2)(i)(C)): only the year is kept, and everyone older than 89
 * at `now` is aggregated into the single category "90 or older", represented as the birth year
 * `now.getUTCFullYear() - 90`, so every 90+ person carries the same year.
 *
 * Age is counted in completed years at the UTC calendar date of `now`, from the latest birth date
 * the value allows: the date itself, the last day of a YYYY-MM month, December 31 of a YYYY year.
 * For a dateTime the date is taken as written (local), like dateToYear.
 *
 * A consequence the caller can rely on: the result is always max(birth year, now year - 90). A
 * person aggregated as 90+ was born in or before now year - 90, and one who is not was born in or
 * after it, so the reading of a partial date or of a time zone can never make the output year reveal
 * more than "90 or older": the 89-year-olds born in year now-90 share the aggregate year with the
 * 90+ group instead of standing out from it.
 *
 * An instant result is 'YYYY-01-01T00:00:00Z' (see dateToYear).
 *
 * @throws RangeError when `value` is not a valid value of `type` or `now` is not a valid Date in
 *   the years 0091-9999 (the 90+ category year must itself be a valid year).
 */
export function generalizeBirthDate(value: string, type: FhirDateType, now: Date): string {
  requireDate(value, type, 'generalizeBirthDate');
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new RangeError('generalizeBirthDate: now must be a valid Date');
  }
  const nowYear = now.getUTCFullYear();
  const nowMonth = now.getUTCMonth() + 1;
  const nowDay = now.getUTCDate();
  const aggregateYear = nowYear - 90;
  if (aggregateYear < 1 || nowYear > 9999) throw new RangeError('generalizeBirthDate: now is outside the supported years');

  const year = Number(value.slice(0, 4));
  const month = value.length >= 7 ? Number(value.slice(5, 7)) : 12;
  const day = value.length >= 10 ? Number(value.slice(8, 10)) : daysInMonth(year, month);

  // Completed years: the birthday of this year counts once its (month, day) is reached. A 29
  // February birthday is reached on 1 March in common years, the later (younger) reading.
  const birthdayReached = nowMonth > month || (nowMonth === month && nowDay >= day);
  const age = nowYear - year - (birthdayReached ? 0 : 1);

  const outYear = age > 89 ? aggregateYear : year;
  return yearAs(pad(outYear, 4), type);
}

// ---------------------------------------------------------------------------------------------
// ZIP codes
// ---------------------------------------------------------------------------------------------

/** A US ZIP (5 digits) or ZIP+4 (with or without the hyphen) once whitespace is removed. */
const US_ZIP_RE = /^([0-9]{3})[0-9]{2}(?:-?[0-9]{4})?$/;

/**
 * Safe Harbor ZIP code (164.514(b)(2)(i)(B)): the initial three digits, or '000' when the area of
 * all ZIP codes sharing those three digits holds 20,000 people or fewer per the current Census data
 * (`restrictedZip3`, supplied by the caller since the list changes with each census).
 *
 * Accepts '12345', '12345-6789', '123456789' and any whitespace around or inside them.
 * Returns undefined for anything that is not a US ZIP code ('SW1A 1AA', 'K1A 0B1', '123'): the three
 * leading characters of a foreign postal code are not a Safe Harbor generalisation of anything, so
 * the caller must redact the value instead.
 */
export function generalizeZip(zip: string, restrictedZip3: ReadonlySet<string>): string | undefined {
  if (typeof zip !== 'string') return undefined;
  const match = US_ZIP_RE.exec(zip.replace(/\s+/g, ''));
  if (match === null) return undefined;
  const zip3 = match[1]!;
  return restrictedZip3.has(zip3) ? '000' : zip3;
}

// ---------------------------------------------------------------------------------------------
// Ages
// ---------------------------------------------------------------------------------------------

export interface AgeQuantity {
  value?: number;
  comparator?: string;
  unit?: string;
  system?: string;
  code?: string;
}

const UCUM = 'http://unitsofmeasure.org';

/** A UCUM time unit as a number of days (UCUM: a = a_j = 365.25 d, mo = mo_j = a_j / 12). */
const UCUM_DAYS: Readonly<Record<string, number>> = {
  a: 365.25, a_j: 365.25, a_t: 365.24219, a_g: 365.2425,
  mo: 365.25 / 12, mo_j: 365.25 / 12, mo_s: 29.53059, mo_g: 365.2425 / 12,
  wk: 7, d: 1, h: 1 / 24, min: 1 / 1440, s: 1 / 86_400,
};

const YEAR_CODES: ReadonlySet<string> = new Set(['a', 'a_j', 'a_t', 'a_g']);
/** Twelfths of a year; the synodal month mo_s is not one and is counted in days. */
const MONTH_CODES: ReadonlySet<string> = new Set(['mo', 'mo_j', 'mo_g']);

/** Human-readable `unit` texts, compared lower-cased, mapped to their UCUM code. */
const UNIT_TEXT: Readonly<Record<string, string>> = {
  a: 'a', y: 'a', yr: 'a', yrs: 'a', year: 'a', years: 'a',
  mo: 'mo', mos: 'mo', month: 'mo', months: 'mo',
  wk: 'wk', wks: 'wk', week: 'wk', weeks: 'wk',
  d: 'd', day: 'd', days: 'd',
  h: 'h', hr: 'h', hrs: 'h', hour: 'h', hours: 'h',
  min: 'min', mins: 'min', minute: 'min', minutes: 'min',
  s: 's', sec: 's', secs: 's', second: 's', seconds: 's',
};

/**
 * The UCUM code of the age's unit: the code when the system is UCUM (or absent) and the code is a
 * known time unit, which is what the Age constraint age-1 requires; otherwise the human `unit`.
 */
function ageUnit(q: AgeQuantity): string | undefined {
  if ((q.system === undefined || q.system === UCUM) && q.code !== undefined && Object.hasOwn(UCUM_DAYS, q.code)) {
    return q.code;
  }
  if (typeof q.unit === 'string') {
    const text = q.unit.trim().toLowerCase();
    if (Object.hasOwn(UNIT_TEXT, text)) return UNIT_TEXT[text];
  }
  return undefined;
}

/**
 * The fewest days in which 90 years can pass: 90 x 365 plus 21 leap days (a 90-year span holds 21
 * to 23 of them). Ages given in day-based units reach the 90+ category at this count, so no
 * 90-year-old is missed; someone a day or two short of 90 may be grouped with them, never the
 * reverse.
 */
const NINETY_YEARS_MIN_DAYS = 90 * 365 + 21;

/**
 * Safe Harbor age (164.514(b)(2)(i)(C)): an age over 89 becomes the single category "90 or
 * older", written as { value: 90, comparator: '>=', unit: 'a', system: UCUM, code: 'a' }. Younger
 * ages are returned as a copy, unchanged. The input is never modified.
 *
 * "Over 89" is read in completed years, as for birth dates: 89.5 a is kept; 90 a, 1080 mo (90 x 12)
 * and 32,871 d (see NINETY_YEARS_MIN_DAYS) or more are aggregated. The value is compared as stated
 * for no comparator, '>=' and '>' (it is the age or a lower bound of it). With '<' or '<=' the
 * value is only an upper bound, which does not say the age is over 89, so the quantity is kept.
 * A quantity without a value discloses no age and is kept.
 *
 * @throws RangeError when there is a value but its unit is not a recognised time unit (UCUM a, mo,
 *   wk, d, h, min, s and variants, or texts such as 'yr', 'years', 'months'), or the value is not a
 *   finite number, or the comparator is not one of FHIR's: the age cannot be judged, so the caller
 *   must redact it rather than pass it through.
 */
export function generalizeAge<Q extends AgeQuantity>(quantity: Q): Q {
  const copy = { ...quantity };
  if (quantity.value === undefined) return copy;
  if (typeof quantity.value !== 'number' || !Number.isFinite(quantity.value)) {
    throw new RangeError('generalizeAge: the age value is not a finite number');
  }
  const comparator = quantity.comparator;
  if (comparator !== undefined && comparator !== '<' && comparator !== '<=' && comparator !== '>=' && comparator !== '>') {
    throw new RangeError('generalizeAge: unknown comparator');
  }
  const unit = ageUnit(quantity);
  if (unit === undefined) throw new RangeError('generalizeAge: the age unit is not a recognised time unit');
  if (comparator === '<' || comparator === '<=') return copy;

  // Years and months are compared in their own unit (12 months make a year exactly, whatever the
  // calendar); day-based units against the shortest possible 90 years.
  let ninetyOrOlder: boolean;
  if (YEAR_CODES.has(unit)) ninetyOrOlder = quantity.value >= 90;
  else if (MONTH_CODES.has(unit)) ninetyOrOlder = quantity.value >= 90 * 12;
  else ninetyOrOlder = quantity.value * UCUM_DAYS[unit]! >= NINETY_YEARS_MIN_DAYS;

  if (!ninetyOrOlder) return copy;
  return { ...copy, value: 90, comparator: '>=', unit: 'a', system: UCUM, code: 'a' };
}

// ---------------------------------------------------------------------------------------------
// Keyed hash
// ---------------------------------------------------------------------------------------------

/**
 * The cryptoHash rule: HMAC-SHA256 (RFC 2104, FIPS 180-4) of the UTF-8 bytes of `value` under
 * `key`, as lower-case hex. Keyed so that the hash of a guessable identifier cannot be recomputed
 * by someone without the key.
 *
 * @throws RangeError for an empty key, which would make the hash an unkeyed, guessable digest.
 */
export function cryptoHash(value: string, key: Buffer): string {
  if (!Buffer.isBuffer(key) || key.length === 0) throw new RangeError('cryptoHash: the key must be a non-empty Buffer');
  return createHmac('sha256', key).update(value, 'utf8').digest('hex');
}
