/**
 * Date index entries (FHIR R4 search.html#date): every date-like value as the interval it covers.
 */
import type { DateIndexEntry, SearchIndexEntry } from '../search-index-entry.js';
import { isObject, type EntryBuilder } from './entry-values.js';
import { parseDateRange } from './search-value-normalisation.js';

const MIN_TIME = Number.MIN_SAFE_INTEGER;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

function pushDate(param: string, low: number, high: number, out: SearchIndexEntry[]): void {
  const entry: DateIndexEntry = { param, kind: 'date', low, high };
  out.push(entry);
}

/**
 * search.html#date: date, dateTime and instant are intervals of their precision. A Period is the
 * interval from its start's low to its end's high; a missing start or end is open
 * (datatypes.html#Period: "the period is ongoing" / unknown start), stored as
 * Number.MIN_SAFE_INTEGER / Number.MAX_SAFE_INTEGER so the store can keep plain integer columns.
 * A Timing is the outer limits of its events and repeat.boundsPeriod ("the specified scheduling
 * details are ignored and only the outer limits matter").
 */
export const buildDate: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') {
    const range = parseDateRange(data);
    if (range !== undefined) pushDate(param, range.low, range.high, out);
    return;
  }
  if (!isObject(data)) return;
  if (type === 'Period') {
    const start = typeof data.start === 'string' ? parseDateRange(data.start) : undefined;
    const end = typeof data.end === 'string' ? parseDateRange(data.end) : undefined;
    if (start === undefined && end === undefined) return;
    pushDate(param, start?.low ?? MIN_TIME, end?.high ?? MAX_TIME, out);
  } else if (type === 'Timing') {
    let low = Infinity;
    let high = -Infinity;
    if (Array.isArray(data.event)) {
      for (const e of data.event) {
        const r = typeof e === 'string' ? parseDateRange(e) : undefined;
        if (r !== undefined) { low = Math.min(low, r.low); high = Math.max(high, r.high); }
      }
    }
    const bounds = isObject(data.repeat) && isObject(data.repeat.boundsPeriod) ? data.repeat.boundsPeriod : undefined;
    if (bounds !== undefined) {
      const start = typeof bounds.start === 'string' ? parseDateRange(bounds.start) : undefined;
      const end = typeof bounds.end === 'string' ? parseDateRange(bounds.end) : undefined;
      if (start !== undefined || end !== undefined) {
        low = Math.min(low, start?.low ?? MIN_TIME);
        high = Math.max(high, end?.high ?? MAX_TIME);
      }
    }
    if (low !== Infinity) pushDate(param, low, high, out);
  }
};
