/**
 * The minimal shape of a FHIR R4 resource as this server handles it: plain JSON with a
 * resourceType, an optional id and meta. Type-specific content is validated against the
 * official definitions (fhir/validator.ts), not encoded in TypeScript types.
 */
export interface Meta {
  versionId?: string;
  lastUpdated?: string;
  profile?: string[];
  security?: Coding[];
  tag?: Coding[];
  source?: string;
  [key: string]: unknown;
}

export interface Coding {
  system?: string;
  version?: string;
  code?: string;
  display?: string;
  userSelected?: boolean;
}

export interface Resource {
  resourceType: string;
  id?: string;
  meta?: Meta;
  [key: string]: unknown;
}

/** FHIR R4 datatypes.html#id: `[A-Za-z0-9\-\.]{1,64}`. */
export const RESOURCE_ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export function isValidResourceId(id: string): boolean {
  return RESOURCE_ID_PATTERN.test(id);
}

export function isResourceObject(value: unknown): value is Resource {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    && typeof (value as Resource).resourceType === 'string';
}

/** Every `reference` string in a resource (Reference.reference, at any depth). */
export function referenceStrings(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const item of value) referenceStrings(item, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'reference' && typeof child === 'string') out.push(child);
      else if (typeof child === 'object') referenceStrings(child, out);
    }
  }
  return out;
}
