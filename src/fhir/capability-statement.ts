/**
 * Builds the server's CapabilityStatement (FHIR R4 capabilitystatement.html) from the
 * conformance/ base document and what the server really supports: the resource types of the
 * official definitions, the search parameters it indexes, its profiles. It lists exactly what
 * works and nothing else.
 */
import type { Resource } from './resource.js';
import type { SearchParameterDefinition } from './search-parameter-registry.js';

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

/** Search parameter types this server indexes and matches. */
const SEARCHABLE_TYPES = new Set(['string', 'token', 'date', 'number', 'quantity', 'reference', 'uri', 'composite']);

export function buildCapabilityStatement(inputs: CapabilityInputs): Resource {
  const { firstClassTypes, systemInteractions, typeInteractions, typeOperations, systemOperations, ...base } = inputs.base;
  const ordered = [...firstClassTypes, ...inputs.resourceTypes.filter((t) => !firstClassTypes.includes(t)).sort()];
  const resource = ordered.map((type) => {
    const params = inputs.searchParametersOf(type).filter((p) => SEARCHABLE_TYPES.has(p.type) && (p.expression !== null || p.code.startsWith('_')));
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
        documentation: `${p.description}${inputs.supportedModifiers[p.type]?.length ? ` Modifiers: ${inputs.supportedModifiers[p.type]!.map((m) => `:${m}`).join(' ')}.` : ''}`,
      })),
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
      operation: systemOperations,
      security: { cors: false, description: `${deidentificationText(inputs.deidentification)} Bearer tokens (JWT, RFC 6750) carry permissions as scopes.` },
    }],
  } as unknown as Resource;
}
