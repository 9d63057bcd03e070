/**
 * Issue locations as FHIRPath (FHIR R4 operationoutcome-definitions.html#OperationOutcome.issue.expression):
 * `Patient.name[0].given[1]`. Repeating elements always carry their index; the JSON companion
 * of a primitive (`_given`, json.html#primitive) is the same FHIRPath element as the value
 * (`given`), so its location drops the underscore.
 */

/** FHIRPath name of a JSON property: `_birthDate` is the element `birthDate`. */
export function elementNameOfKey(key: string): string {
  return key.length > 1 && key.charCodeAt(0) === 95 /* _ */ ? key.slice(1) : key;
}

/**
 * The element name a location shows for a JSON key. A key the definitions do not know is client
 * text: one not shaped like an element name is replaced, so that no value is echoed in an issue.
 */
export function shownElementName(key: string): string {
  const name = elementNameOfKey(key);
  return name.length <= 64 && /^[A-Za-z][A-Za-z0-9_]*$/.test(name) ? name : '(invalid element name)';
}

export function appendLocation(location: string, key: string): string {
  return `${location}.${shownElementName(key)}`;
}

/** `/name/0/_given/1` on a Patient → `Patient.name[0].given[1]` (RFC 6901 pointer segments). */
export function jsonPointerToLocation(resourceType: string, pointer: string): string {
  let out = resourceType;
  if (pointer === '') return out;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^(0|[1-9][0-9]*)$/.test(segment)) out += `[${segment}]`;
    else out = appendLocation(out, segment);
  }
  return out;
}
