/**
 * The mapping table: the declarative rules that say what happens to each element on the way in
 * (mappings/*.json). Loaded and checked once at start: an unknown method, a path that is not
 * FHIRPath or names no element, or settings a method cannot use refuse the start with a message
 * that names the rule.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import { DEID_METHOD_IDEMPOTENT, DEID_METHODS, type DeidMethod } from './deid-types.js';
import { compileRulePath, RulePathError, type CompiledRulePath } from './rule-path.js';

/** A rule as written in the table. */
export interface MappingRuleSource {
  path: string;
  method: DeidMethod;
  /** Method settings: `domain` (pseudonymize), `value` (substitute), `kind` (generalize). */
  settings?: Record<string, unknown>;
  /** Which of the 18 Safe Harbor identifier kinds (45 CFR 164.514(b)(2)(i)(A)-(R)) the rule covers. */
  covers?: string[];
  comment?: string;
}

export interface MappingTableSource {
  name: string;
  description?: string;
  /** Three-digit ZIP areas of 20,000 people or fewer, with the census they come from (164.514(b)(2)(i)(B)). */
  restrictedZip3?: { census: number; source?: string; prefixes: string[] };
  /** The largest per-patient date shift, in days (dateShift). */
  dateShiftMaxDays?: number;
  rules: MappingRuleSource[];
}

export type GeneralizeKind = 'year' | 'birthDate' | 'zip3' | 'age';

/** DEID_METHOD_IDEMPOTENT for each kind of generalize: each maps its own output to itself. */
export const GENERALIZE_KIND_IDEMPOTENT: Readonly<Record<GeneralizeKind, boolean>> = {
  year: true, // a year stays that year
  birthDate: true, // max(year, now - 90) again is the same year (at the same `now`)
  zip3: true, // three digits (or 000) stay as they are
  age: true, // 90+ (>= 90 a) is judged 90+ again; a kept age is kept again
};

export interface MappingRule {
  readonly index: number;
  readonly path: CompiledRulePath;
  readonly method: DeidMethod;
  readonly domain: string | undefined;
  readonly substitute: unknown;
  readonly generalize: GeneralizeKind | undefined;
  /** Applying the rule to its own output gives that output (see DEID_METHOD_IDEMPOTENT). */
  readonly idempotent: boolean;
}

export interface MappingTable {
  readonly name: string;
  /** sha256 of the table file's bytes: recorded in the meta of every resource it produced. */
  readonly sha256: string;
  readonly source: MappingTableSource;
  readonly rules: readonly MappingRule[];
  readonly restrictedZip3: ReadonlySet<string>;
  readonly dateShiftMaxDays: number;
  /** True when `Resource.id` is pseudonymized: client-assigned ids then go through the vault. */
  readonly pseudonymizesIds: boolean;
  /** True when some rule pseudonymizes or hashes: the table needs the vault / hash key. */
  readonly needsVault: boolean;
}

/** The tables shipped in mappings/, by the name DEID_MAPPING accepts. */
export const SHIPPED_TABLES = ['safe-harbor', 'research'] as const;

export class MappingTableError extends Error {
  constructor(message: string) {
    super(`Mapping table error: ${message}`);
    this.name = 'MappingTableError';
  }
}

/** `safe-harbor` | `research` | a path to a JSON file → the file to read. */
export function mappingTableFile(nameOrPath: string, mappingsDir: string): string {
  if ((SHIPPED_TABLES as readonly string[]).includes(nameOrPath)) return path.join(mappingsDir, `${nameOrPath}.json`);
  return path.resolve(nameOrPath);
}

export function loadMappingTable(file: string, types: TypeRegistry): MappingTable {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new MappingTableError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let source: MappingTableSource;
  try {
    source = JSON.parse(bytes.toString('utf8')) as MappingTableSource;
  } catch {
    throw new MappingTableError(`${file} is not valid JSON`);
  }
  return compileMappingTable(source, createHash('sha256').update(bytes).digest('hex'), types, file);
}

export function compileMappingTable(source: MappingTableSource, sha256: string, types: TypeRegistry, origin = 'table'): MappingTable {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) throw new MappingTableError(`${origin}: a table is a JSON object`);
  if (typeof source.name !== 'string' || source.name === '') throw new MappingTableError(`${origin}: "name" is required`);
  if (!Array.isArray(source.rules)) throw new MappingTableError(`${origin}: "rules" must be an array`);
  const zip = source.restrictedZip3;
  if (zip !== undefined && (!Array.isArray(zip.prefixes) || zip.prefixes.some((p) => !/^\d{3}$/.test(p)) || !Number.isInteger(zip.census))) {
    throw new MappingTableError(`${origin}: restrictedZip3 needs a census year and three-digit prefixes`);
  }
  const maxDays = source.dateShiftMaxDays ?? 365;
  if (!Number.isInteger(maxDays) || maxDays < 1 || maxDays > 3650) throw new MappingTableError(`${origin}: dateShiftMaxDays must be an integer 1..3650`);

  const rules = source.rules.map((rule, index) => compileRule(rule, index, types, origin));
  if (rules.some((r) => r.generalize === 'zip3') && zip === undefined) {
    throw new MappingTableError(`${origin}: a zip3 generalization needs the restrictedZip3 list`);
  }
  const idRule = rules.find((r) => r.path.source === 'Resource.id');
  return {
    name: source.name, sha256, source, rules,
    restrictedZip3: new Set(zip?.prefixes ?? []),
    dateShiftMaxDays: maxDays,
    pseudonymizesIds: idRule?.method === 'pseudonymize',
    needsVault: rules.some((r) => r.method === 'pseudonymize' || r.method === 'dateShift'),
  };
}

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);

function compileRule(rule: MappingRuleSource, index: number, types: TypeRegistry, origin: string): MappingRule {
  const where = `${origin}: rule ${index + 1}`;
  if (typeof rule !== 'object' || rule === null) throw new MappingTableError(`${where} is not an object`);
  if (typeof rule.path !== 'string' || rule.path.trim() === '') throw new MappingTableError(`${where} has no path`);
  if (!DEID_METHODS.includes(rule.method)) {
    throw new MappingTableError(`${where} (${rule.path}): unknown method '${String(rule.method)}'; known: ${DEID_METHODS.join(', ')}`);
  }
  let compiled: CompiledRulePath;
  try {
    compiled = compileRulePath(rule.path.trim(), types);
  } catch (error) {
    if (error instanceof RulePathError) throw new MappingTableError(`${where} (${rule.path}): ${error.message}`);
    throw error;
  }
  const settings = rule.settings ?? {};
  if (typeof settings !== 'object' || Array.isArray(settings)) throw new MappingTableError(`${where}: settings must be an object`);
  let generalize: GeneralizeKind | undefined;
  if (rule.method === 'generalize') {
    const kind = settings.kind ?? (compiled.endType === 'Age' ? 'age' : compiled.endType && DATE_TYPES.has(compiled.endType) ? 'year' : undefined);
    if (kind !== 'year' && kind !== 'birthDate' && kind !== 'zip3' && kind !== 'age') {
      throw new MappingTableError(`${where} (${rule.path}): generalize needs settings.kind year, birthDate, zip3 or age`);
    }
    generalize = kind;
  }
  if (rule.method === 'substitute' && !('value' in settings)) {
    throw new MappingTableError(`${where} (${rule.path}): substitute needs settings.value`);
  }
  if (settings.domain !== undefined && typeof settings.domain !== 'string') {
    throw new MappingTableError(`${where}: settings.domain must be a string`);
  }
  return {
    index, path: compiled, method: rule.method,
    domain: settings.domain as string | undefined,
    substitute: settings.value,
    generalize,
    idempotent: rule.method === 'generalize' ? GENERALIZE_KIND_IDEMPOTENT[generalize!] : DEID_METHOD_IDEMPOTENT[rule.method],
  };
}
