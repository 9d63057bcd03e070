/**
 * Number and quantity index entries (FHIR R4 search.html#number, search.html#quantity): values
 * with their implicit precision, as intervals.
 */
import type { NumberIndexEntry, QuantityIndexEntry, SearchIndexEntry } from '../search-index-entry.js';
import { isObject, str, type EntryBuilder, type JsonObject } from './entry-values.js';
import { decimalRange } from './search-value-normalisation.js';

/**
 * A JSON number's implicit precision, as written. JSON.parse keeps only the double, so `1.50`
 * and `1.5` are the same value here: the precision is that of the shortest string that
 * round-trips the double (String(n)), i.e. trailing zeros are lost. The index is therefore at
 * least as precise as what was written, which only narrows matches for values written with
 * trailing zeros.
 */
function numberRange(value: unknown): { value: number; low: number; high: number } | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return decimalRange(String(value));
}

/** A Range as one interval: from its low's lower bound to its high's upper bound, open ends unbounded. */
function rangeBounds(range: JsonObject): { value: number; low: number; high: number; from: JsonObject } | undefined {
  const lowQ = isObject(range.low) ? range.low : undefined;
  const highQ = isObject(range.high) ? range.high : undefined;
  const low = lowQ ? numberRange(lowQ.value) : undefined;
  const high = highQ ? numberRange(highQ.value) : undefined;
  if (low === undefined && high === undefined) return undefined;
  return {
    value: (low ?? high)!.value,
    low: low?.low ?? -Infinity,
    high: high?.high ?? Infinity,
    from: (low !== undefined ? lowQ : highQ)!,
  };
}

/**
 * search.html#number: decimals and integers with their implicit precision. A Range (R4 uses one in
 * RiskAssessment.prediction.probability[x]) is indexed as the interval it covers, its `value` the
 * low end (or the high end when open below).
 */
export const buildNumber: EntryBuilder = (param, data, type, out) => {
  let r: { value: number; low: number; high: number } | undefined;
  if (typeof data === 'number') r = numberRange(data);
  else if (type === 'Range' && isObject(data)) r = rangeBounds(data);
  if (r === undefined) return;
  const entry: NumberIndexEntry = { param, kind: 'number', value: r.value, low: clampNumber(r.low), high: clampNumber(r.high) };
  out.push(entry);
}

/** Open ends of a Range: ±Infinity cannot be stored in every column type; use the largest finite doubles. */
function clampNumber(n: number): number {
  if (n === Infinity) return Number.MAX_VALUE;
  if (n === -Infinity) return -Number.MAX_VALUE;
  return n;
}

const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'SimpleQuantity', 'MoneyQuantity']);

/** FHIR R4 datatypes.html#Money: currency is an ISO 4217 code. */
const ISO_4217 = 'urn:iso:std:iso:4217';

function pushQuantity(param: string, r: { value: number; low: number; high: number }, system: string | null, code: string | null, unit: string | null, out: SearchIndexEntry[]): void {
  const entry: QuantityIndexEntry = { param, kind: 'quantity', value: r.value, low: clampNumber(r.low), high: clampNumber(r.high), system, code, unit };
  out.push(entry);
}

/**
 * search.html#quantity: Quantity and its profiles (Age, Duration, Count, Distance,
 * SimpleQuantity) give value with its implicit precision, system, code and unit. Money gives
 * value with system urn:iso:std:iso:4217 and the currency as code. A Range (useContext values) is
 * the interval from low to high with low's (else high's) units. SampledData is not indexed: its
 * only Quantity, `origin`, is the zero point of the samples, not a measured value, and matching
 * `value-quantity` against it would give false hits.
 */
export const buildQuantity: EntryBuilder = (param, data, type, out) => {
  if (!isObject(data)) return;
  if (QUANTITY_TYPES.has(type)) {
    const r = numberRange(data.value);
    if (r !== undefined) pushQuantity(param, r, str(data.system), str(data.code), str(data.unit), out);
  } else if (type === 'Money') {
    const r = numberRange(data.value);
    const currency = str(data.currency);
    if (r !== undefined) pushQuantity(param, r, currency === null ? null : ISO_4217, currency, currency, out);
  } else if (type === 'Range') {
    const r = rangeBounds(data);
    if (r !== undefined) pushQuantity(param, r, str(r.from.system), str(r.from.code), str(r.from.unit), out);
  }
};
