/**
 * How a value is normalised for search (FHIR R4 search.html), the same on both sides: the index
 * entry builders use these helpers when a resource is written, the query parser
 * (search-query-parser.ts) when a search arrives, so a value and a query about it meet.
 */
import { isValidResourceId } from '../resource.js';
import { r4ResourceTypes } from '../search-parameter-registry.js';

const NON_ASCII = /[^\x00-\x7f]/;
const COMBINING_MARKS = /\p{M}+/gu;
const WHITESPACE_RUN = /\s+/g;

/**
 * search.html#string: "the search is case-insensitive and accent-insensitive". Canonical
 * decomposition (NFD) splits accented letters into base letter + combining mark; the marks are
 * dropped, then the text is lower-cased and runs of whitespace collapsed to one space (and
 * trimmed). ASCII input skips the Unicode work.
 */
export function foldSearchString(s: string): string {
  let t = s;
  if (NON_ASCII.test(t)) t = t.normalize('NFD').replace(COMBINING_MARKS, '');
  return t.toLowerCase().replace(WHITESPACE_RUN, ' ').trim();
}

const DATE_PATTERN = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;
const DAY_MS = 86_400_000;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, month1: number): number {
  if (month1 === 2) return isLeapYear(y) ? 29 : 28;
  return month1 === 4 || month1 === 6 || month1 === 9 || month1 === 11 ? 30 : 31;
}

/** Epoch ms of a UTC calendar time; unlike Date.UTC, years 1–99 are not shifted to 19xx. */
function utcMs(y: number, month0: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  if (y >= 100) return Date.UTC(y, month0, d, h, mi, s, ms);
  const dt = new Date(0);
  dt.setUTCFullYear(y, month0, d);
  dt.setUTCHours(h, mi, s, ms);
  return dt.getTime();
}

/**
 * search.html#date: a date, dateTime or instant stands for the whole interval its precision
 * covers ("2013-01" is all of January 2013). Returns that interval as epoch ms [low, high).
 *
 * Accepted: YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm, …:ss, …:ss.fff (any number of
 * fraction digits; sub-millisecond digits are truncated, so their interval is 1 ms), each time
 * optionally followed by Z or ±hh:mm. A time without a zone is taken as UTC: R4 lets a server
 * choose how to read unzoned search times, and UTC keeps the index independent of the host's
 * zone. Calendar-invalid values (month 13, 30 February, hour 24, offset beyond ±14:00) and
 * anything else give undefined.
 */
export function parseDateRange(text: string): { low: number; high: number } | undefined {
  const m = DATE_PATTERN.exec(text);
  if (m === null) return undefined;
  const y = Number(m[1]);
  if (y < 1) return undefined;
  if (m[2] === undefined) return { low: utcMs(y, 0, 1), high: utcMs(y + 1, 0, 1) };
  const mo = Number(m[2]);
  if (mo < 1 || mo > 12) return undefined;
  if (m[3] === undefined) return { low: utcMs(y, mo - 1, 1), high: utcMs(y, mo, 1) };
  const d = Number(m[3]);
  if (d < 1 || d > daysInMonth(y, mo)) return undefined;
  if (m[4] === undefined) {
    const low = utcMs(y, mo - 1, d);
    return { low, high: low + DAY_MS };
  }
  const h = Number(m[4]);
  const mi = Number(m[5]);
  // FHIR R4 datatypes.html#dateTime allows second 60 (a leap second); it rolls into the next minute.
  const s = m[6] === undefined ? 0 : Number(m[6]);
  if (h > 23 || mi > 59 || s > 60) return undefined;
  let ms = 0;
  let width: number;
  if (m[6] === undefined) width = 60_000;
  else if (m[7] === undefined) width = 1_000;
  else {
    const frac = m[7];
    ms = Number(frac.length >= 3 ? frac.slice(0, 3) : frac.padEnd(3, '0'));
    width = frac.length >= 3 ? 1 : 10 ** (3 - frac.length);
  }
  let offsetMs = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 14 || om > 59) return undefined;
    offsetMs = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const low = utcMs(y, mo - 1, d, h, mi, s, ms) - offsetMs;
  return { low, high: low + width };
}

const DECIMAL_PATTERN = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * search.html#number: a number stands for the interval of its implicit precision, half a unit
 * of its last significant digit either side: "100" → [99.5, 100.5), "100.00" →
 * [99.995, 100.005), "0.8" → [0.75, 0.85). Exponent notation shifts that unit: "1e2" has one
 * significant digit in the hundreds, so → [50, 150). (The R4 table gives [95, 105) for 1e2,
 * which contradicts its own "to 1 significant figure" wording; we follow the rule, not the typo.)
 *
 * The bounds are computed in decimal (mantissa digits as an integer, then one string → number
 * conversion) so that they are the doubles nearest to the exact bounds, e.g. 0.75, not
 * 0.7500000000000001.
 */
export function decimalRange(text: string): { value: number; low: number; high: number } | undefined {
  const m = DECIMAL_PATTERN.exec(text.trim());
  if (m === null) return undefined;
  const negative = m[1] === '-';
  const fraction = m[3] ?? '';
  const digits = (m[2] + fraction).replace(/^0+(?=\d)/, '');
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  const unitExponent = exponent - fraction.length;
  const value = Number(`${negative ? '-' : ''}${digits}e${unitExponent}`);
  if (!Number.isFinite(value)) return undefined;
  // |x| ∈ [(2M−1)·5·10^(u−1), (2M+1)·5·10^(u−1)) with M the mantissa as an integer.
  let below: string;
  let above: string;
  if (digits.length <= 14) {
    const mantissa = Number(digits);
    below = String((2 * mantissa - 1) * 5);
    above = String((2 * mantissa + 1) * 5);
  } else {
    const mantissa = BigInt(digits);
    below = ((2n * mantissa - 1n) * 5n).toString();
    above = ((2n * mantissa + 1n) * 5n).toString();
  }
  const lowAbs = Number(`${below}e${unitExponent - 1}`);
  const highAbs = Number(`${above}e${unitExponent - 1}`);
  return negative
    ? { value: value === 0 ? 0 : value, low: -highAbs, high: -lowAbs }
    : { value, low: lowAbs, high: highAbs };
}

const RESOURCE_TYPES: ReadonlySet<string> = new Set(r4ResourceTypes());
const ABSOLUTE_URL = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * references.html#Reference: Reference.reference is a relative `Type/id`, an absolute URL, a
 * `urn:uuid:`/`urn:oid:` (bundle-local) or `#id` (contained). A version suffix
 * `/_history/vid` is ignored for matching (search.html#reference: version-specific references
 * match the resource).
 *
 * targetType/targetId are filled when the reference has the shape `<anything>/<Type>/<id>` with a
 * known R4 resource type and a valid id. With `baseUrl`, an absolute reference is local only
 * when it lies under that base; other absolute references keep only their url (they are on
 * another server). `url` is always the reference as written.
 */
export function parseReference(reference: string, baseUrl?: string): { targetType: string | null; targetId: string | null; url: string } {
  const none = { targetType: null, targetId: null, url: reference };
  if (reference.length === 0 || reference[0] === '#' || reference.startsWith('urn:')) return none;
  let local = reference;
  if (baseUrl !== undefined && ABSOLUTE_URL.test(reference)) {
    const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
    if (!reference.startsWith(base)) return none;
    local = reference.slice(base.length);
  }
  const segments = local.split('/');
  let n = segments.length;
  if (n >= 4 && segments[n - 2] === '_history' && isValidResourceId(segments[n - 1])) n -= 2;
  if (n < 2) return none;
  const type = segments[n - 2];
  const id = segments[n - 1];
  if (!RESOURCE_TYPES.has(type) || !isValidResourceId(id)) return none;
  return { targetType: type, targetId: id, url: reference };
}
