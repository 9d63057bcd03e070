/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte sequence of a JSON value that the
 * ledger hashes. The RFC builds on ECMAScript's own serializers, which this module reuses:
 *  - RFC 8785 §3.2.2.3: numbers as ECMAScript Number::toString (JSON.stringify of a finite number);
 *  - RFC 8785 §3.2.2.2: strings as ECMAScript JSON.stringify (shortest escapes, \u00XX lowercase);
 *  - RFC 8785 §3.2.3: object members sorted by their names as arrays of UTF-16 code units
 *    (Array.prototype.sort's default comparison), recursively; arrays keep their order;
 *  - no whitespace.
 * The input is a parsed JSON value (JSON.parse output). Values that I-JSON (RFC 7493) excludes
 * and JSON cannot carry (NaN, ±Infinity, undefined, functions) are refused. Lone surrogates,
 * which I-JSON also excludes, are written as JSON.stringify writes them (`\udXXX` escapes), so
 * the result stays deterministic for any string JSON.parse can produce.
 */

export class CanonicalJsonError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

function serialize(value: unknown, out: string[]): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`JCS cannot represent the number ${String(value)}`);
      // Number::toString, with -0 written as 0 (RFC 8785 §3.2.2.3).
      out.push(JSON.stringify(value));
      return;
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'object': {
      if (Array.isArray(value)) {
        out.push('[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(',');
          serialize(value[i], out);
        }
        out.push(']');
        return;
      }
      const record = value as Record<string, unknown>;
      const names = Object.keys(record).sort();
      out.push('{');
      let first = true;
      for (const name of names) {
        const member = record[name];
        if (member === undefined) throw new CanonicalJsonError(`JCS cannot represent undefined (member "${name}")`);
        if (!first) out.push(',');
        first = false;
        out.push(JSON.stringify(name), ':');
        serialize(member, out);
      }
      out.push('}');
      return;
    }
    default:
      throw new CanonicalJsonError(`JCS cannot represent a value of type ${typeof value}`);
  }
}

/** The RFC 8785 canonical form of a parsed JSON value, as a string. */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  serialize(value, out);
  return out.join('');
}

/** The RFC 8785 canonical form as UTF-8 bytes, which is what gets hashed. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
