/**
 * Conformance corpus: every Patient, Observation and RiskAssessment example of the official
 * hl7.fhir.r4.examples package is created, read back equal apart from id and meta, and found
 * by at least one of its own search parameters (not _id).
 *
 * The corpus measures R4 conformance, so this server runs with base R4 validation only (an
 * empty PROFILES_DIR). This server's own profiles (profiles/) are stricter by design: two
 * official examples break them, and the last test pins exactly which and where.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { expect } from 'chai';
import { SearchIndexExtractor } from '../../src/fhir/search-index/search-index-extractor.js';
import { SearchParameterRegistry } from '../../src/fhir/search-parameter-registry.js';
import type { SearchIndexEntry } from '../../src/fhir/search-index-entry.js';
import { startTestServer, temporaryDataDir, type TestServer } from '../support/test-server.js';

const require = createRequire(import.meta.url);
const examplesDir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const TYPES = ['Patient', 'Observation', 'RiskAssessment'];
const examples = fs.readdirSync(examplesDir)
  .filter((f) => TYPES.some((t) => f.startsWith(`${t}-`)) && f.endsWith('.json'))
  .map((file) => ({ file, resource: JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8')) }))
  .filter(({ resource }) => TYPES.includes(resource.resourceType));

function withoutIdAndMeta(resource: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, meta, ...rest } = resource as { id?: string; meta?: Record<string, unknown> };
  const { versionId: _v, lastUpdated: _l, ...clientMeta } = meta ?? {};
  return Object.keys(clientMeta).length > 0 ? { ...rest, meta: clientMeta } : rest;
}

/** A query that must find the resource, built from one of its index entries. */
function queryFor(entry: SearchIndexEntry): string | undefined {
  const enc = encodeURIComponent;
  switch (entry.kind) {
    case 'token': return entry.code ? `${entry.param}=${enc(`${entry.system ? `${entry.system}|` : ''}${entry.code}`.replace(/,/g, '\\,'))}` : undefined;
    case 'string': return `${entry.param}:exact=${enc(entry.raw.replace(/([,|$\\])/g, '\\$1'))}`;
    case 'reference': return entry.targetType && entry.targetId ? `${entry.param}=${enc(`${entry.targetType}/${entry.targetId}`)}` : undefined;
    case 'uri': return `${entry.param}=${enc(entry.value)}`;
    default: return undefined;
  }
}

describe('official R4 examples (conformance corpus)', function () {
  this.timeout(120_000);
  let server: TestServer;
  const extractor = new SearchIndexExtractor(SearchParameterRegistry.loadR4());
  const emptyProfilesDir = temporaryDataDir('fhir-ledger-no-profiles-');
  before(async () => { server = await startTestServer({ profilesDir: emptyProfilesDir }); });
  after(async () => {
    await server.stop();
    fs.rmSync(emptyProfilesDir, { recursive: true, force: true });
  });

  it(`finds ${TYPES.join(', ')} examples in the package`, () => {
    expect(examples.length).to.be.greaterThan(80);
  });

  for (const { file, resource } of examples) {
    it(`${file}: created, read back equal, found by a search parameter`, async () => {
      const created = await server.request('POST', `/fhir/${resource.resourceType}`, { body: resource });
      expect(created.status, created.text.slice(0, 500)).to.equal(201);
      const read = await server.request('GET', `/fhir/${resource.resourceType}/${created.json.id}`);
      expect(read.status).to.equal(200);
      expect(withoutIdAndMeta(read.json)).to.deep.equal(withoutIdAndMeta(resource));

      const queries = extractor.extract(read.json).map(queryFor).filter((q): q is string => q !== undefined);
      // RiskAssessment-population has nothing searchable but a contained subject: every
      // resource still has _lastUpdated, to the millisecond.
      if (queries.length === 0) queries.push(`_lastUpdated=${encodeURIComponent(read.json.meta.lastUpdated)}`);
      let found = false;
      for (const query of queries.slice(0, 5)) {
        const res = await server.request('GET', `/fhir/${resource.resourceType}?${query}&_count=1000`);
        expect(res.status, query).to.equal(200);
        if ((res.json.entry ?? []).some((e: any) => e.resource?.id === created.json.id)) { found = true; break; }
      }
      expect(found, `found by one of ${queries.slice(0, 5).join(' ; ')}`).to.equal(true);
    });
  }

  describe('with this server\'s profiles (profiles/)', () => {
    let profiled: TestServer;
    before(async () => { profiled = await startTestServer(); });
    after(async () => profiled.stop());

    const breakProfiles: Record<string, string> = {
      'Observation-decimal.json': 'Observation.subject',
      'RiskAssessment-population.json': 'RiskAssessment.prediction',
    };

    it('accepts every other example and rejects exactly the two that break the profiles, at the right element', async () => {
      const rejected: Record<string, string[]> = {};
      for (const { file, resource } of examples) {
        const res = await profiled.request('POST', `/fhir/${resource.resourceType}`, { body: resource });
        if (res.status === 422) rejected[file] = res.json.issue.flatMap((i: any) => i.expression ?? []);
        else expect(res.status, file).to.equal(201);
      }
      expect(Object.keys(rejected).sort()).to.deep.equal(Object.keys(breakProfiles).sort());
      for (const [file, expression] of Object.entries(breakProfiles)) expect(rejected[file]).to.include(expression);
    });
  });
});
