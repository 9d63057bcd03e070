/**
 * Subsetting of returned resources (FHIR R4 search.html#summary and #elements): `_summary`
 * keeps the elements the official definitions mark isSummary (or drops the narrative for
 * `data`, or keeps only the narrative for `text`); `_elements` keeps the named top-level
 * elements. Mandatory elements, `id` and `meta` always stay, and every subsetted resource is
 * tagged SUBSETTED (R4 resource.html#tag, v3-ObservationValue).
 */
import type { Resource } from './resource.js';
import type { SummaryMode } from './search-query.js';

export const SUBSETTED_TAG = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' } as const;

interface TypeElements {
  summary: Set<string>;
  mandatory: Set<string>;
}

/** The top-level summary and mandatory elements of each resource type. */
export class ElementSummaries {
  constructor(private readonly byType: Map<string, TypeElements>) {}

  /** From StructureDefinition snapshots: `Patient.name` with isSummary → `name`; `value[x]` → every `value…` key. */
  static fromStructureDefinitions(definitions: Iterable<{ type: string; snapshot?: { element: { path: string; min?: number; isSummary?: boolean }[] } }>): ElementSummaries {
    const byType = new Map<string, TypeElements>();
    for (const sd of definitions) {
      const entry: TypeElements = { summary: new Set(), mandatory: new Set() };
      for (const element of sd.snapshot?.element ?? []) {
        const parts = element.path.split('.');
        if (parts.length !== 2) continue;
        const name = parts[1]!;
        if (element.isSummary) entry.summary.add(name);
        if ((element.min ?? 0) > 0) entry.mandatory.add(name);
      }
      byType.set(sd.type, entry);
    }
    return new ElementSummaries(byType);
  }

  elementsOf(type: string): TypeElements | undefined {
    return this.byType.get(type);
  }
}

/** Does JSON key `key` (e.g. `valueQuantity`, `_birthDate`) belong to one of the element names? */
function keyMatches(key: string, names: Set<string>): boolean {
  const bare = key.startsWith('_') ? key.slice(1) : key;
  if (names.has(bare)) return true;
  for (const name of names) {
    if (name.endsWith('[x]') && bare.startsWith(name.slice(0, -3)) && /^[A-Z]/.test(bare.slice(name.length - 3))) return true;
  }
  return false;
}

function tagged(resource: Resource): Resource {
  const meta = { ...(resource.meta ?? {}) };
  const tags = [...(meta.tag ?? [])];
  if (!tags.some((t) => t.system === SUBSETTED_TAG.system && t.code === SUBSETTED_TAG.code)) tags.push({ ...SUBSETTED_TAG });
  return { ...resource, meta: { ...meta, tag: tags } };
}

/**
 * Applies `_summary` / `_elements` to a resource; returns it unchanged when neither asks for
 * anything. `_summary` wins over `_elements` when both are given.
 */
export function shapeResource(resource: Resource, summary: SummaryMode, elements: string[] | undefined,
  summaries: ElementSummaries): Resource {
  const always = new Set(['resourceType', 'id', 'meta']);
  const defs = summaries.elementsOf(resource.resourceType);
  let keep: ((key: string) => boolean) | undefined;
  if (summary === 'true') {
    const names = defs?.summary ?? new Set<string>();
    keep = (key) => always.has(key) || keyMatches(key, names);
  } else if (summary === 'text') {
    const names = new Set(['text', ...(defs?.mandatory ?? [])]);
    keep = (key) => always.has(key) || keyMatches(key, names);
  } else if (summary === 'data') {
    keep = (key) => key !== 'text';
  } else if (elements !== undefined) {
    const names = new Set([...elements, ...(defs?.mandatory ?? [])]);
    keep = (key) => always.has(key) || keyMatches(key, names);
  }
  if (!keep) return resource;
  const out: Resource = { resourceType: resource.resourceType };
  for (const [key, value] of Object.entries(resource)) if (keep(key)) out[key] = value;
  return tagged(out);
}
