/**
 * Structural validation against the official FHIR R4 JSON schema (FHIR R4 json.html#schema,
 * `fhir.schema.json`) with ajv.
 *
 * Each resource is validated against its own definition (`#/definitions/<Type>`), never the
 * schema's top-level 145-way `oneOf`. Nested resources (contained, Bundle.entry.resource,
 * Parameters.parameter.resource, Bundle.entry.response.outcome) are referenced in the schema
 * through `ResourceList`, another `oneOf` over every type: ajv then reports one failure per
 * alternative, hundreds of errors for one mistake. ResourceList is replaced here by a keyword
 * that reads `resourceType` and runs that type's own validator, so nested errors read exactly
 * like top-level ones, and compiling one type no longer compiles all of them (start-up cost).
 *
 * Validators are compiled lazily, once per type, and cached.
 */
import { Ajv, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import type { OutcomeIssue, IssueType } from '../fhir-error.js';
import { jsonPointerToLocation, appendLocation, shownElementName } from './location.js';

type SchemaDefinitions = Record<string, Record<string, unknown>>;

const NESTED_RESOURCE_KEYWORD = 'x-fhir-nested-resource';
const ORIGINAL_SCHEMA_PATH = 'fhirSchemaPath';
type ErrorWithOrigin = ErrorObject & { [ORIGINAL_SCHEMA_PATH]?: string };

/**
 * Elements Medplum adds to its copy of the R4 schema that are not R4 (FHIR R4 resource.html#Meta,
 * references.html#Reference, operationoutcome.html): accepting them would let non-R4 content in.
 */
const NON_R4_PROPERTIES: Record<string, readonly string[]> = {
  Meta: ['project', 'author', 'account', 'compartment', 'onBehalfOf', 'accounts'],
  Reference: ['resource'],
  OperationOutcome: ['status', 'resource'],
};

/**
 * Corrections of the R4 schema's primitive definitions (datatypes.html#primitive): the schema
 * declares integers as JSON numbers (so 1.5 would pass) and gives xhtml no type at all.
 */
const PRIMITIVE_CORRECTIONS: Record<string, Record<string, unknown>> = {
  integer: { type: 'integer', minimum: -2147483648, maximum: 2147483647 },
  positiveInt: { type: 'integer', minimum: 1, maximum: 2147483647 },
  unsignedInt: { type: 'integer', minimum: 0, maximum: 2147483647 },
  xhtml: { type: 'string' },
};

/**
 * FHIR's regular expressions are XML Schema regexes (datatypes.html#primitive), where `\s` is
 * only space, tab, CR and LF; in JavaScript it also matches U+00A0 and the other Unicode
 * spaces, which would reject valid strings (several official examples contain non-breaking
 * spaces). Rewrites the schema's patterns to the XML Schema meaning.
 */
export function xsdPatternToJs(pattern: string): string {
  return pattern
    .replaceAll('[ \\r\\n\\t\\S]', '[\\s\\S]')
    .replaceAll('[^\\s]', '[^ \\t\\n\\r]')
    .replace(/\\s(?![^[]*\])/g, '[ \\t\\n\\r]')
    .replace(/\\S(?![^[]*\])/g, '[^ \\t\\n\\r]');
}

/**
 * The R4 schema omits the `_name` companion (json.html#primitive) of elements typed canonical
 * (Meta.profile, ElementDefinition.type.profile...), so an extension on such an element (as in
 * the official StructureDefinition examples' `_baseDefinition`) would be an unknown property.
 */
function addMissingCompanions(def: Record<string, unknown>): Record<string, unknown> {
  const properties = def['properties'] as Record<string, Record<string, unknown>> | undefined;
  if (!properties) return def;
  let changed: Record<string, unknown> | undefined;
  for (const [name, prop] of Object.entries(properties)) {
    const items = prop['items'] as Record<string, unknown> | undefined;
    const ref = (prop['$ref'] ?? items?.['$ref']) as string | undefined;
    if (ref !== '#/definitions/canonical' || `_${name}` in properties) continue;
    changed ??= { ...properties };
    changed[`_${name}`] = items
      ? { type: 'array', items: { $ref: '#/definitions/Element' } }
      : { $ref: '#/definitions/Element' };
  }
  return changed ? { ...def, properties: changed } : def;
}

/**
 * Copies a schema fragment with every `pattern` rewritten, and the primitive corrections applied
 * to inline copies of the corrected primitives (choice properties such as
 * Patient.multipleBirthInteger inline their type's schema instead of referencing it).
 */
function rewritePatterns<T>(schema: T, inlineCorrections: ReadonlyMap<string, Record<string, unknown>>): T {
  if (Array.isArray(schema)) return schema.map((s) => rewritePatterns(s as unknown, inlineCorrections)) as T;
  if (typeof schema !== 'object' || schema === null) return schema;
  const record = schema as Record<string, unknown>;
  const pattern = record['pattern'];
  const correction = typeof pattern === 'string' && record['type'] === 'number' ? inlineCorrections.get(pattern) : undefined;
  if (correction) {
    const { pattern: _pattern, ...rest } = record;
    return { ...rest, ...correction } as T;
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    out[key] = key === 'pattern' && typeof value === 'string' ? xsdPatternToJs(value) : rewritePatterns(value, inlineCorrections);
  }
  return out as T;
}

/** Prepares the in-memory copy of the schema this validator compiles. */
function prepareSchema(definitions: SchemaDefinitions): SchemaDefinitions {
  const inlineCorrections = new Map<string, Record<string, unknown>>();
  for (const [name, correction] of Object.entries(PRIMITIVE_CORRECTIONS)) {
    const pattern = definitions[name]?.['pattern'];
    if (typeof pattern === 'string' && correction['type'] === 'integer') inlineCorrections.set(pattern, correction);
  }
  const out: SchemaDefinitions = {};
  for (const [name, def] of Object.entries(definitions)) out[name] = addMissingCompanions(rewritePatterns(def, inlineCorrections));
  for (const [name, props] of Object.entries(NON_R4_PROPERTIES)) {
    const def = out[name];
    if (!def) continue;
    const properties = { ...(def['properties'] as Record<string, unknown>) };
    for (const p of props) {
      delete properties[p];
      delete properties[`_${p}`];
    }
    out[name] = { ...def, properties };
  }
  for (const [name, correction] of Object.entries(PRIMITIVE_CORRECTIONS)) {
    const def = out[name];
    if (!def) continue;
    // The schema's own `pattern` only applies to strings; drop it for the numeric ones.
    const { pattern: _pattern, ...rest } = def;
    out[name] = { ...rest, ...correction };
  }
  out['ResourceList'] = { type: 'object', [NESTED_RESOURCE_KEYWORD]: true };
  return out;
}

export class SchemaValidator {
  private readonly ajv: Ajv;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(definitions: SchemaDefinitions, private readonly resourceTypes: ReadonlySet<string>) {
    this.ajv = new Ajv({
      // The FHIR schema uses draft-06 `id` and non-standard keywords (discriminator); strict
      // mode would reject it.
      strict: false,
      allErrors: true,
      // Validation runs on every write; keep messages short and skip schema/data echoes.
      messages: true,
      verbose: false,
    });
    const nested: SchemaValidateFunction = (_schema: unknown, data: unknown, _parent?: unknown, cxt?: { instancePath: string }): boolean => {
      const base = cxt?.instancePath ?? '';
      const errors = this.validateNested(data, base);
      nested.errors = errors;
      return errors.length === 0;
    };
    this.ajv.addKeyword({ keyword: NESTED_RESOURCE_KEYWORD, schemaType: 'boolean', errors: true, validate: nested });
    this.ajv.addSchema({ $id: 'fhir', definitions: prepareSchema(definitions) });
  }

  /** The compiled validator of one resource type; compiled on first use. */
  validatorFor(type: string): ValidateFunction {
    let v = this.validators.get(type);
    if (!v) {
      const compiled = this.ajv.getSchema(`fhir#/definitions/${type}`);
      if (!compiled) throw new Error(`No schema definition for ${type}`);
      v = compiled;
      this.validators.set(type, v);
    }
    return v;
  }

  private validateNested(data: unknown, base: string): Partial<ErrorObject>[] {
    const type = typeof data === 'object' && data !== null ? (data as { resourceType?: unknown }).resourceType : undefined;
    if (typeof type !== 'string' || !this.resourceTypes.has(type)) {
      return [{ instancePath: `${base}/resourceType`, keyword: 'resourceType', params: {}, message: 'unknown or missing resourceType' }];
    }
    const v = this.validatorFor(type);
    if (v(data)) return [];
    // ajv rewrites the schemaPath of errors a keyword returns; keep the nested one for messages.
    return (v.errors ?? []).map((e) => ({
      ...e,
      instancePath: base + e.instancePath,
      [ORIGINAL_SCHEMA_PATH]: (e as ErrorWithOrigin)[ORIGINAL_SCHEMA_PATH] ?? e.schemaPath,
    }));
  }

  /** Raw ajv errors for a resource of a known type (instance paths are JSON pointers). */
  validate(resource: { resourceType: string }): ErrorObject[] {
    const v = this.validatorFor(resource.resourceType);
    return v(resource) ? [] : [...(v.errors ?? [])];
  }
}

/** The schema definition an error's keyword belongs to, e.g. `dateTime` for `#/definitions/dateTime/pattern`. */
function definitionOf(error: ErrorObject): string | undefined {
  const schemaPath = (error as ErrorWithOrigin)[ORIGINAL_SCHEMA_PATH] ?? error.schemaPath;
  const m = /#\/definitions\/([A-Za-z0-9_]+)\/[a-zA-Z]+$/.exec(schemaPath);
  if (m) return m[1];
  // A choice property with an inline schema (Extension.valueString): the type is its suffix.
  const property = /\/properties\/[a-z]+([A-Z][A-Za-z0-9]*)\/[a-zA-Z]+$/.exec(schemaPath)?.[1];
  return property ? property[0]!.toLowerCase() + property.slice(1) : undefined;
}

const PRIMITIVE_JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean']);

/**
 * Turns one ajv error into an OutcomeIssue located by FHIRPath. Diagnostics name the element and
 * the rule, never the offending value (it may be an identifier).
 */
export function schemaErrorToIssue(error: ErrorObject, resourceType: string): OutcomeIssue {
  const location = jsonPointerToLocation(resourceType, error.instancePath);
  const params = error.params as Record<string, unknown>;
  let code: IssueType = 'structure';
  let diagnostics: string;
  let expression = location;
  switch (error.keyword) {
    case 'additionalProperties': {
      const property = String(params['additionalProperty']);
      expression = appendLocation(location, property);
      diagnostics = `Unknown element '${shownElementName(property)}': it is not defined for this element in FHIR R4`;
      break;
    }
    case 'required': {
      const property = String(params['missingProperty']);
      code = 'required';
      expression = appendLocation(location, property);
      diagnostics = 'Required element is missing';
      break;
    }
    case 'type': {
      const expected = String(params['type']);
      const def = definitionOf(error);
      code = PRIMITIVE_JSON_TYPES.has(expected) ? 'value' : 'structure';
      diagnostics = def && PRIMITIVE_JSON_TYPES.has(expected)
        ? `Wrong JSON type: a FHIR ${def} is a JSON ${expected} (json.html#primitive)`
        : `Wrong JSON type: expected a JSON ${expected}`;
      break;
    }
    case 'enum': {
      code = 'value';
      const allowed = (params['allowedValues'] as unknown[] | undefined) ?? [];
      diagnostics = `Invalid code: must be one of ${allowed.join(' | ')}`;
      break;
    }
    case 'const':
      code = 'value';
      diagnostics = `Invalid value: must be '${String(params['allowedValue'])}'`;
      break;
    case 'pattern': {
      code = 'value';
      const def = definitionOf(error);
      diagnostics = def ? `Invalid value: not a valid FHIR ${def} (datatypes.html#${def})` : 'Invalid value: does not match the required format';
      break;
    }
    case 'minimum':
    case 'maximum': {
      code = 'value';
      const def = definitionOf(error);
      diagnostics = `Invalid value: out of range for a FHIR ${def ?? 'number'}`;
      break;
    }
    case 'resourceType':
      diagnostics = 'Unknown or missing resourceType for a nested resource';
      break;
    default:
      // ajv's own messages describe the rule, not the data.
      diagnostics = `Invalid content: ${error.message ?? error.keyword}`;
  }
  return { severity: 'error', code, diagnostics, expression: [expression] };
}
