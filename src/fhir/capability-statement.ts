/**
 * Builds the server's CapabilityStatement (FHIR R4 capabilitystatement.html) from the
 * conformance/ base document and what the server really supports: the resource types of the
 * official definitions, the search parameters it indexes, its profiles. It lists exactly what
 * works and nothing else.
 */
import type { Resource } from './resource.js';
import { COMMON_PARAMETER_CODES, type SearchParameterDefinition } from './search-parameter-registry.js';
import { isSupportedModifier } from './search-query-parser.js';
import { MAX_HIERARCHY_DEPTH } from './search-query.js';

export interface CapabilityInputs {
  base: Record<string, unknown> & {
    firstClassTypes: string[];
    systemInteractions: string[];
    typeInteractions: string[];
    typeOperations: { name: string; definition: string }[];
    systemOperations: { name: string; definition: string }[];
  };
  version: string;
  baseUrl: string;
  resourceTypes: string[];
  searchParametersOf(type: string): SearchParameterDefinition[];
  profilesOf(type: string): string[];
  /** Modifier support, documented per parameter type. */
  supportedModifiers: Record<string, readonly string[]>;
  /** The de-identification table in force, or null when data is stored as sent (DEID_MAPPING=none). */
  deidentification: { table: string; sha256: string } | null;
}

/** What the statement says about de-identification: the table in force, or a warning. */
function deidentificationText(deid: CapabilityInputs['deidentification']): string {
  if (!deid) {
    return 'WARNING: de-identification is OFF (DEID_MAPPING=none): resources are stored as sent, identifiers included.';
  }
  return `Every write is de-identified by the '${deid.table}' mapping table (sha256 ${deid.sha256}, recorded in meta.tag of each version); `
    + 'client-assigned ids, references and identifier searches go through a pseudonym vault. $deidentify previews the table; $reidentify needs the fhir-ledger/reidentify scope and is audited.';
}

/**
 * The modifiers that work on this one parameter (the type's list, less those that do not apply
 * to it, e.g. reference `:below` on a reference that is not circular), and what limits them.
 */
function modifierDocumentation(param: SearchParameterDefinition, typeModifiers: readonly string[] | undefined): string {
  const modifiers = (typeModifiers ?? []).filter((m) => isSupportedModifier(param, m));
  if (modifiers.length === 0) return '';
  const notes: string[] = [];
  if (param.type === 'token' && modifiers.includes('below')) {
    notes.push(':below/:above take system|code and are subsumption within the complete HL7 code systems the server ships'
      + ' (FHIR core, v2, v3 CodeSystems with content=complete); other systems (SNOMED CT, LOINC, …) are unsupported');
  }
  if (param.type === 'reference') notes.push(':[type] restricts the target to one of its target types');
  if (param.type === 'reference' && modifiers.includes('below')) {
    notes.push(`:below/:above follow this circular reference transitively (search.html#recursive), up to ${MAX_HIERARCHY_DEPTH} levels: `
      + `:below=${param.resourceType}/X gives the resources under X, :above=${param.resourceType}/X those over X, X itself excluded unless a cycle puts it under itself`);
  }
  return ` Modifiers: ${modifiers.map((m) => `:${m}`).join(' ')}.${notes.map((n) => ` ${n}.`).join('')}`;
}

/**
 * What this server's matching of a parameter differs in from its official description.
 * Patient/Person/Practitioner/RelatedPerson `phonetic` is a string parameter "using some kind
 * of phonetic matching algorithm": this server has none, and says so.
 */
function matchingNote(param: SearchParameterDefinition): string {
  if (param.code === 'phonetic') {
    return ' This server matches it as a plain string parameter (a prefix, case- and accent-insensitive): no phonetic algorithm.';
  }
  return '';
}

/** The official description, then the modifier text as a sentence of its own. */
function withModifiers(description: string, modifiers: string): string {
  if (modifiers === '' || description === '' || /[.!?]\s*$/.test(description)) return `${description}${modifiers}`;
  return `${description}.${modifiers}`;
}

/** `{ [key]: values }`, or nothing: FHIR JSON has no empty arrays (json.html). */
function nonEmpty(key: string, values: string[]): Record<string, string[]> {
  return values.length > 0 ? { [key]: values } : {};
}

/** Search parameter types this server indexes and matches. */
const SEARCHABLE_TYPES = new Set(['string', 'token', 'date', 'number', 'quantity', 'reference', 'uri', 'composite']);

export function buildCapabilityStatement(inputs: CapabilityInputs): Resource {
  const { firstClassTypes, systemInteractions, typeInteractions, typeOperations, systemOperations, ...base } = inputs.base;
  const ordered = [...firstClassTypes, ...inputs.resourceTypes.filter((t) => !firstClassTypes.includes(t)).sort()];
  const searchable = (type: string) => inputs.searchParametersOf(type)
    .filter((p) => SEARCHABLE_TYPES.has(p.type) && (p.expression !== null || p.code.startsWith('_')));
  const referenceParams = (type: string) => searchable(type).filter((p) => p.type === 'reference');
  const firstType = ordered[0];
  // search.html#all: a system-level search takes the parameters of every resource, and _type.
  const systemSearchParams = [
    ...(firstType ? searchable(firstType).filter((p) => COMMON_PARAMETER_CODES.includes(p.code)) : []).map((p) => ({
      name: p.code, definition: p.url, type: p.type,
      documentation: withModifiers(p.description, modifierDocumentation(p, inputs.supportedModifiers[p.type])),
    })),
    {
      name: '_type', type: 'token',
      documentation: 'Only resources of these types (comma-separated); the search may then also use any parameter every listed type defines.',
    },
  ];
  const resource = ordered.map((type) => {
    const params = searchable(type);
    const profiles = inputs.profilesOf(type);
    return {
      type,
      profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
      ...(profiles.length > 0 ? { supportedProfile: profiles } : {}),
      interaction: typeInteractions.map((code) => ({ code })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'not-supported',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      searchParam: params.map((p) => ({
        name: p.code,
        definition: p.url,
        type: p.type,
        documentation: withModifiers(p.description, modifierDocumentation(p, inputs.supportedModifiers[p.type]) + matchingNote(p)),
      })),
      // search.html#include: every reference parameter of the type, and every reference
      // parameter of another type that can point here.
      ...nonEmpty('searchInclude', referenceParams(type).map((p) => `${type}:${p.code}`)),
      ...nonEmpty('searchRevInclude', inputs.resourceTypes.flatMap((source) => referenceParams(source)
        .filter((p) => p.targets.includes(type))
        .map((p) => `${source}:${p.code}`)).sort()),
      operation: inputs.deidentification ? typeOperations : typeOperations.filter((o) => o.name !== 'reidentify'),
    };
  });
  return {
    ...base,
    description: `${String(base.description ?? '')} ${deidentificationText(inputs.deidentification)}`.trim(),
    date: new Date().toISOString(),
    software: { ...(base.software as object), version: inputs.version },
    implementation: { ...(base.implementation as object), url: inputs.baseUrl },
    rest: [{
      mode: 'server',
      documentation: 'Search: every listed parameter with its modifiers; chaining, _has, _include/_revinclude(:iterate), _sort, _count, _total, _summary, _elements, compartment search Patient/{id}/{type}. Unknown parameters are reported in an OperationOutcome entry, or refused with 400 under Prefer: handling=strict. $verify (instance and version) proves a version against the Merkle log anchored on Ethereum; $ledger reports the log.',
      resource,
      interaction: systemInteractions.map((code) => ({ code })),
      searchParam: systemSearchParams,
      operation: systemOperations,
      security: { cors: false, description: `${deidentificationText(inputs.deidentification)} Bearer tokens (JWT, RFC 6750) carry permissions as scopes.` },
    }],
  } as unknown as Resource;
}
