/**
 * The one parser for the FHIRPath path subset (FHIRPath N1, hl7.org/fhirpath) that the server
 * evaluates without fhirpath.js: search parameter expressions at index time
 * (search-index/simple-path-evaluator.ts) and the paths of de-identification rules
 * (deid/rule-path.ts). Each caller decides which of the parsed steps it can evaluate and refuses
 * the others; validation invariants are full FHIRPath and are compiled from fhirpath.js's own
 * syntax tree instead (validation/fast-fhirpath.ts), on the same element model
 * (element-children.ts).
 *
 *   path   := term ('.' step)*
 *   term   := TypeName | 'descendants()' | '(' path 'as' TypeName ')'
 *   step   := name | 'as(' T ')' | 'ofType(' T ')' | 'descendants()'
 *           | 'where(resolve() is' T ')' | "where(" name "= '" literal "')" | 'where(' criteria ')'
 *
 * Type names may be namespaced (`FHIR.Quantity`). Anything else throws UnsupportedExpression.
 */

/** Thrown for an expression outside the subset; the caller falls back (fhirpath.js) or refuses it. */
export class UnsupportedExpression extends Error {}

export type PathStep =
  /** Member navigation (fhirpath.html#paths), over choice types. */
  | { kind: 'child'; name: string }
  /** `ofType(T)`, `as(T)`, `(x as T)`: the items of type T (or a subtype). */
  | { kind: 'ofType'; type: string }
  /** `descendants()`. */
  | { kind: 'descendants' }
  /** `where(resolve() is T)`. */
  | { kind: 'referenceTo'; type: string; criteria: string }
  /** `where(field = 'literal')`. */
  | { kind: 'fieldEquals'; field: string; value: string; criteria: string }
  /** Any other `where(criteria)`; `criteria` is its source text. */
  | { kind: 'where'; criteria: string };

export interface PathExpression {
  /** The type the path starts from; null when it starts with `descendants()` (of the focus). */
  root: string | null;
  steps: PathStep[];
}

interface Token {
  kind: 'ident' | 'string' | 'punct';
  text: string;
  /** Offsets in the source, for the text of where() criteria. */
  start: number;
  end: number;
  /** A string literal with an escape sequence (not decoded here). */
  escaped?: boolean;
}

// Identifiers, 'string literals', and any other single non-space character as punctuation.
const TOKEN = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|'((?:[^'\\]|\\.)*)'|(\S))/y;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  while (pos < source.length) {
    if (/^\s*$/.test(source.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(source);
    if (m === null) throw new UnsupportedExpression(`unsupported syntax at ${pos}`);
    const end = TOKEN.lastIndex;
    const start = end - m[0].trimStart().length;
    if (m[1] !== undefined) tokens.push({ kind: 'ident', text: m[1], start, end });
    else if (m[2] !== undefined) tokens.push({ kind: 'string', text: m[2], start, end, escaped: m[2].includes('\\') });
    else tokens.push({ kind: 'punct', text: m[3]!, start, end });
    pos = end;
  }
  return tokens;
}

/** Parses one union member (split a union first with unionMembers()). */
export function parsePathExpression(source: string): PathExpression {
  const tokens = tokenize(source);
  let i = 0;
  const peek = (text?: string): Token | undefined => {
    const t = tokens[i];
    // A string literal never stands for punctuation or a keyword.
    return t !== undefined && (text === undefined || (t.kind !== 'string' && t.text === text)) ? t : undefined;
  };
  const expect = (text?: string, kind?: Token['kind']): Token => {
    const t = tokens[i];
    if (t === undefined || (text !== undefined && t.text !== text) || (kind !== undefined && t.kind !== kind)) {
      throw new UnsupportedExpression(`expected ${text ?? kind ?? 'token'} at token ${i}`);
    }
    i++;
    return t;
  };
  const typeName = (): string => {
    const t = expect(undefined, 'ident').text;
    // FHIRPath allows namespaced type names (FHIR.Quantity).
    if (t === 'FHIR' && peek('.')) { i++; return expect(undefined, 'ident').text; }
    return t;
  };
  /** The source text up to the `)` that closes the current call; leaves i on that `)`. */
  const criteriaText = (from: number): string => {
    let depth = 0;
    for (let k = from; k < tokens.length; k++) {
      const t = tokens[k]!;
      if (t.kind !== 'punct') continue;
      if (t.text === '(') depth++;
      else if (t.text === ')') {
        if (depth === 0) {
          const text = k === from ? '' : source.slice(tokens[from]!.start, tokens[k - 1]!.end);
          i = k;
          return text;
        }
        depth--;
      }
    }
    throw new UnsupportedExpression('unclosed where(');
  };
  const whereStep = (): PathStep => {
    const from = i;
    if (peek('resolve') && tokens[i + 1]?.text === '(' && tokens[i + 2]?.text === ')' && tokens[i + 3]?.text === 'is') {
      i += 4;
      const type = typeName();
      if (peek(')')) return { kind: 'referenceTo', type, criteria: source.slice(tokens[from]!.start, tokens[i - 1]!.end) };
    }
    i = from;
    const field = tokens[i];
    const eq = tokens[i + 1];
    const literal = tokens[i + 2];
    if (field?.kind === 'ident' && eq?.kind === 'punct' && eq.text === '=' && literal?.kind === 'string' && !literal.escaped
      && tokens[i + 3]?.text === ')' && tokens[i + 3]?.kind === 'punct') {
      i += 3;
      return { kind: 'fieldEquals', field: field.text, value: literal.text, criteria: source.slice(field.start, literal.end) };
    }
    const criteria = criteriaText(from);
    if (criteria.length === 0) throw new UnsupportedExpression('where() without criteria');
    return { kind: 'where', criteria };
  };

  const parsePath = (): PathExpression => {
    let path: PathExpression;
    if (peek('(')) {
      i++;
      path = parsePath();
      const as = expect(undefined, 'ident');
      if (as.text !== 'as') throw new UnsupportedExpression('only (x as T) is supported in parentheses');
      path.steps.push({ kind: 'ofType', type: typeName() });
      expect(')');
    } else if (peek('descendants') && tokens[i + 1]?.text === '(') {
      i++;
      expect('('); expect(')');
      path = { root: null, steps: [{ kind: 'descendants' }] };
    } else {
      path = { root: expect(undefined, 'ident').text, steps: [] };
    }
    while (peek('.')) {
      i++;
      const name = expect(undefined, 'ident').text;
      if (!peek('(')) { path.steps.push({ kind: 'child', name }); continue; }
      i++;
      if (name === 'as' || name === 'ofType') {
        path.steps.push({ kind: 'ofType', type: typeName() });
      } else if (name === 'descendants') {
        path.steps.push({ kind: 'descendants' });
      } else if (name === 'where') {
        path.steps.push(whereStep());
      } else {
        throw new UnsupportedExpression(`function ${name}()`);
      }
      expect(')');
    }
    return path;
  };

  const path = parsePath();
  if (i !== tokens.length) throw new UnsupportedExpression(`trailing tokens after ${i}`);
  return path;
}
