/**
 * String and token index entries (FHIR R4 search.html#string, search.html#token).
 */
import type { SearchIndexEntry, StringIndexEntry, TokenIndexEntry } from '../search-index-entry.js';
import { isObject, str, type EntryBuilder, type JsonObject } from './entry-values.js';
import { foldSearchString } from './search-value-normalisation.js';

function pushString(param: string, raw: unknown, out: SearchIndexEntry[]): void {
  if (typeof raw !== 'string') return;
  const value = foldSearchString(raw);
  if (value.length === 0) return;
  const entry: StringIndexEntry = { param, kind: 'string', value, raw };
  out.push(entry);
}

function pushStrings(param: string, raw: unknown, out: SearchIndexEntry[]): void {
  if (Array.isArray(raw)) for (const r of raw) pushString(param, r, out);
  else pushString(param, raw, out);
}

/**
 * search.html#string: a string parameter on HumanName matches any of its parts, on Address any of
 * its text parts; on a primitive it matches the value.
 */
export const buildString: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') { pushString(param, data, out); return; }
  if (!isObject(data)) return;
  if (type === 'HumanName') {
    pushString(param, data.family, out);
    pushStrings(param, data.given, out);
    pushStrings(param, data.prefix, out);
    pushStrings(param, data.suffix, out);
    pushString(param, data.text, out);
  } else if (type === 'Address') {
    pushStrings(param, data.line, out);
    pushString(param, data.city, out);
    pushString(param, data.district, out);
    pushString(param, data.state, out);
    pushString(param, data.postalCode, out);
    pushString(param, data.country, out);
    pushString(param, data.text, out);
  }
};

function pushToken(param: string, system: string | null, code: string | null, text: string | null, out: SearchIndexEntry[]): void {
  if (system === null && code === null && text === null) return;
  const entry: TokenIndexEntry = { param, kind: 'token', system, code, text };
  out.push(entry);
}

/**
 * search.html#token, the table of how each type maps to [system|]code:
 *  - Coding: system|code, display for :text;
 *  - CodeableConcept: one token per coding, CodeableConcept.text (else the coding's display) for
 *    :text; a concept with only text gives one text-only token so :text still finds it;
 *  - Identifier: system|value, Identifier.type.text for :text;
 *  - ContactPoint: the value, with no system. The table leaves the system column empty and lets
 *    a server use ContactPoint.use at its discretion; we do not, so that `phone=|555` (explicitly
 *    no system) and `phone=555` both match, and ContactPoint.system is already what selects the
 *    email/phone parameters;
 *  - code, boolean, id, uri, string and other primitives: the value, no system (a code's system
 *    is implied by its element's binding and is not stored in the resource).
 */
export const buildToken: EntryBuilder = (param, data, type, out) => {
  if (typeof data === 'string') { if (data.length > 0) pushToken(param, null, data, null, out); return; }
  if (typeof data === 'boolean' || typeof data === 'number') { pushToken(param, null, String(data), null, out); return; }
  if (!isObject(data)) return;
  switch (type) {
    case 'Coding':
      pushToken(param, str(data.system), str(data.code), str(data.display), out);
      return;
    case 'CodeableConcept': {
      const text = str(data.text);
      const codings = Array.isArray(data.coding) ? data.coding : [];
      let pushed = false;
      for (const c of codings) {
        if (!isObject(c)) continue;
        const system = str(c.system);
        const code = str(c.code);
        if (system === null && code === null && str(c.display) === null && text === null) continue;
        pushToken(param, system, code, text ?? str(c.display), out);
        pushed = true;
      }
      if (!pushed && text !== null) pushToken(param, null, null, text, out);
      return;
    }
    case 'Identifier': {
      const system = str(data.system);
      const value = str(data.value);
      if (system === null && value === null) return;
      pushToken(param, system, value, isObject(data.type) ? str(data.type.text) : null, out);
      // search.html#token :of-type matches Identifier.type's coding: kept as `system|code`.
      const typeCoding = isObject(data.type) && Array.isArray(data.type.coding)
        ? data.type.coding.find((c): c is JsonObject => isObject(c) && typeof c.code === 'string') : undefined;
      if (typeCoding) (out[out.length - 1] as TokenIndexEntry).ofType = `${str(typeCoding.system) ?? ''}|${String(typeCoding.code)}`;
      return;
    }
    case 'ContactPoint': {
      const value = str(data.value);
      if (value !== null) pushToken(param, null, value, null, out);
      return;
    }
    default:
      return;
  }
};
