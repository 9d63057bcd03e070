/**
 * Both shipped tables over every official R4 example (hl7.fhir.r4.examples) that is valid as
 * published: the result is still valid R4 (structure, invariants, this server's profiles), and
 * no name, phone or e-mail of the input, and under safe-harbor no full date in a resource of the
 * Patient compartment, survives.
 * Previews use no vault (every pseudonym made up), so this runs without storage.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { expect } from 'chai';
import { Deidentification } from '../../src/deid/deidentification.js';
import { loadMappingTable, mappingTableFile } from '../../src/deid/mapping-table.js';
import type { Resource } from '../../src/fhir/resource.js';
import { patientCompartmentParams } from '../../src/fhir/patient-compartment.js';
import { SearchParameterRegistry } from '../../src/fhir/search-parameter-registry.js';
import { ResourceValidator } from '../../src/fhir/validator.js';

const require = createRequire(import.meta.url);
const examplesDir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const mappingsDir = path.resolve('mappings');

/** Strings the examples carry in HumanName and ContactPoint, longer than 3 characters (shorter ones occur in codes). */
function identifyingStrings(value: unknown, key = '', out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) {
    for (const v of value) identifyingStrings(v, key, out);
  } else if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const isName = typeof obj.family === 'string' || Array.isArray(obj.given);
    const isContactPoint = typeof obj.system === 'string' && ['phone', 'fax', 'email'].includes(obj.system as string) && typeof obj.value === 'string';
    if (isName) {
      for (const part of [obj.family, ...(Array.isArray(obj.given) ? obj.given : [])]) {
        if (typeof part === 'string' && part.length > 3) out.add(part);
      }
    }
    if (isContactPoint && (obj.value as string).length > 3) out.add(obj.value as string);
    for (const [k, v] of Object.entries(obj)) identifyingStrings(v, k, out);
  }
  return out;
}

/** The input without its names and contact points: a string also found here is not only a name. */
function withoutNamesAndContacts(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNamesAndContacts);
  if (!value || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  if (typeof obj.family === 'string' || Array.isArray(obj.given)) return null;
  if (typeof obj.system === 'string' && ['phone', 'fax', 'email'].includes(obj.system as string)) return null;
  // Reference.display and narrative repeat names; they are not "elsewhere".
  return Object.fromEntries(Object.entries(obj).filter(([k]) => k !== 'display' && k !== 'div').map(([k, v]) => [k, withoutNamesAndContacts(v)]));
}

const FULL_DATE = /"(\d{4}-\d{2}-\d{2})(T[^"]*)?"/g;

describe('both tables over every official R4 example', function () {
  // Each test de-identifies and re-validates some 5,000 examples: CPU-bound, 2 minutes each on a
  // loaded 2-core machine. The bound only catches a hang.
  this.timeout(600_000);
  const validator = ResourceValidator.create({ profilesDir: path.resolve('profiles') });
  const registry = SearchParameterRegistry.loadR4();
  const examples: Resource[] = [];
  for (const file of fs.readdirSync(examplesDir)) {
    if (!file.endsWith('.json') || file === 'package.json') continue;
    const resource = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8')) as Resource;
    if (typeof resource.resourceType !== 'string' || !validator.isKnownResourceType(resource.resourceType)) continue;
    const errors = validator.validate(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (errors.length === 0) examples.push(resource);
  }

  it('finds thousands of valid examples to work on', () => {
    expect(examples.length).to.be.greaterThan(5000);
  });

  for (const tableName of ['safe-harbor', 'research']) {
    it(`${tableName}: every result is valid R4 and keeps no name, phone or e-mail${tableName === 'safe-harbor' ? ', and no full date' : ''}`, async () => {
      const table = loadMappingTable(mappingTableFile(tableName, mappingsDir), validator.elementTypes);
      const deid = new Deidentification({
        table, types: validator.elementTypes, registry,
        vault: { unavailable: 'previews only' }, hashKey: { unavailable: 'previews only' }, storedIdExists: async () => false,
      });
      const invalid: string[] = [];
      const leaks: string[] = [];
      for (const example of examples) {
        const out = await deid.preview(example);
        const where = `${example.resourceType}/${example.id}`;
        for (const issue of validator.validate(out)) {
          if (issue.severity === 'error' || issue.severity === 'fatal') invalid.push(`${where}: ${issue.expression?.[0]} ${issue.diagnostics}`);
        }
        const text = JSON.stringify(out);
        const elsewhere = JSON.stringify(withoutNamesAndContacts(example));
        for (const s of identifyingStrings(example)) {
          if (text.includes(s) && !elsewhere.includes(s)) leaks.push(`${where}: ${s}`);
        }
        // Dates related to an individual: resources in the Patient compartment (and Patient). Other
        // resources hold version strings and publication dates that look alike.
        if (tableName === 'safe-harbor' && (example.resourceType === 'Patient' || patientCompartmentParams(example.resourceType).length > 0)) {
          for (const m of text.matchAll(FULL_DATE)) {
            // The only full dates left are the year-start instants of instant elements.
            if (m[0] !== `"${m[1]!.slice(0, 4)}-01-01T00:00:00Z"`) leaks.push(`${where}: ${m[0]}`);
          }
        }
      }
      expect(invalid, invalid.slice(0, 10).join('\n')).to.deep.equal([]);
      expect(leaks, leaks.slice(0, 10).join('\n')).to.deep.equal([]);
    });
  }
});
