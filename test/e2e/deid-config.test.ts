/**
 * De-identification configuration as the server sees it at start and on writes:
 *
 *  - a bad mapping table refuses the start with a message naming the rule: an unknown method, a
 *    path that is not FHIRPath, a path naming a non-existent element (Patient.nmae), a generalize
 *    without settings.kind on a string (and a file that is missing or not JSON);
 *  - DEID_MAPPING=none stores resources as sent and logs a warning at start; no DEID_MAPPING at
 *    all means safe-harbor;
 *  - an unavailable vault (a key file that does not exist, a vault path that is a directory, a
 *    malformed key) lets the server start, but every write is refused with a 503 OperationOutcome
 *    and nothing is stored;
 *  - every de-identified stored version carries meta.tag {urn:fhir-ledger:deid-mapping-table,
 *    sha256 of the table file's bytes}.
 *  - a refused start leaves no file of the data folder open.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { memoryLogger } from '../support/leak-scan.js';
import { startTestServer, temporaryDataDir, type TestServer } from '../support/test-server.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAPPINGS = path.join(repoRoot, 'mappings');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const SAFE_HARBOR_SHA256 = sha256(fs.readFileSync(path.join(MAPPINGS, 'safe-harbor.json')));
const RESEARCH_SHA256 = sha256(fs.readFileSync(path.join(MAPPINGS, 'research.json')));
const TABLE_TAG_SYSTEM = 'urn:fhir-ledger:deid-mapping-table';

const patient = (extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  identifier: [{ system: 'http://hospital.example.org/mrn', value: 'MRN-40417' }],
  name: [{ family: 'Brightwater', given: ['Ottoline'] }],
  gender: 'female',
  birthDate: '1958-09-14',
  ...extra,
});

const observation = (subject: string) => ({
  resourceType: 'Observation', status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: subject },
  effectiveDateTime: '2019-05-06T07:08:09Z',
  valueQuantity: { value: 64, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

/** File descriptors of this process that point into `dir` (Linux /proc). */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(path.join('/proc/self/fd', fd));
      if (target.startsWith(dir + path.sep)) out.push(target);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

describe('de-identification configuration (e2e)', function () {
  this.timeout(60_000);
  let tmp: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-deid-config-'));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Writes a table file and returns its path. */
  function table(name: string, content: unknown): string {
    const file = path.join(tmp, `${name}.json`);
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return file;
  }

  /** Starting with `deidMapping` must fail; returns the error's message. */
  async function refusedStart(deidMapping: string): Promise<string> {
    const dataDir = temporaryDataDir('fhir-ledger-deid-bad-table-');
    try {
      let server: TestServer | undefined;
      try {
        server = await startTestServer({ deidMapping, dataDir });
      } catch (error) {
        return (error as Error).message;
      }
      await server.close();
      expect.fail(`the server started with the table ${deidMapping}`);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    return '';
  }

  describe('a bad mapping table refuses the start with a message naming the rule', () => {
    const keepMeta = { path: 'Resource.meta', method: 'keep' };
    const cases: { name: string; rule: Record<string, unknown>; says: RegExp }[] = [
      { name: 'an unknown method', rule: { path: 'Patient.name', method: 'scramble' },
        says: /rule 2 \(Patient\.name\): unknown method 'scramble'; known: keep, redact, pseudonymize, cryptoHash, dateShift, generalize, substitute/ },
      { name: 'a path that is not FHIRPath', rule: { path: 'Patient.name[[0', method: 'redact' },
        says: /rule 2 \(Patient\.name\[\[0\): not a FHIRPath expression/ },
      { name: 'a path naming a non-existent element', rule: { path: 'Patient.nmae', method: 'redact' },
        says: /rule 2 \(Patient\.nmae\): .*no element 'nmae'/ },
      { name: 'a generalize without settings.kind on a string', rule: { path: 'Patient.name.family', method: 'generalize' },
        says: /rule 2 \(Patient\.name\.family\): generalize needs settings\.kind year, birthDate, zip3 or age/ },
      { name: 'a generalize whose kind is unknown', rule: { path: 'Patient.birthDate', method: 'generalize', settings: { kind: 'decade' } },
        says: /rule 2 \(Patient\.birthDate\): generalize needs settings\.kind/ },
      { name: 'a type that is not an R4 type', rule: { path: 'descendants().ofType(HumanNmae)', method: 'redact' },
        says: /rule 2 \(descendants\(\)\.ofType\(HumanNmae\)\): 'HumanNmae' is not an R4 type/ },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const file = table(c.name.replace(/\W+/g, '-'), { name: 'bad', rules: [keepMeta, c.rule] });
        const message = await refusedStart(file);
        expect(message).to.match(/^Mapping table error: /);
        expect(message).to.include(file);
        expect(message).to.match(c.says);
      });
    }

    it('a table file that does not exist, or is not JSON', async () => {
      const missing = path.join(tmp, 'no-such-table.json');
      expect(await refusedStart(missing)).to.equal(`Mapping table error: cannot read ${missing}: ENOENT`);
      const notJson = table('not-json', '{ "name": "x", "rules": [');
      expect(await refusedStart(notJson)).to.equal(`Mapping table error: ${notJson} is not valid JSON`);
    });

    it('a refused start leaves no file of the data folder open', async function () {
      if (!fs.existsSync('/proc/self/fd')) this.skip();
      const dataDir = temporaryDataDir('fhir-ledger-deid-bad-table-');
      try {
        const file = table('leak-check', { name: 'bad', rules: [keepMeta, { path: 'Patient.nmae', method: 'redact' }] });
        let refused = false;
        try {
          const server = await startTestServer({ deidMapping: file, dataDir });
          await server.close();
        } catch {
          refused = true;
        }
        expect(refused).to.equal(true);
        expect(openFilesUnder(dataDir), 'files of the data folder still open after the refused start').to.deep.equal([]);
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe('DEID_MAPPING', () => {
    it('none: resources are stored as sent, and the server warns at start', async () => {
      const dataDir = temporaryDataDir('fhir-ledger-deid-none-');
      const log = memoryLogger('info');
      const config = loadConfig({ DEID_MAPPING: 'none', DATA_DIR: dataDir, LEDGER: 'off', PORT: '0', HOST: '127.0.0.1' });
      expect(config.deidMapping).to.equal('none');
      const server = await startServer(config, log.logger);
      try {
        const warnings = log.lines().filter((l) => l.level === 40);
        expect(warnings.map((l) => l.msg)).to.include('DEID_MAPPING=none: resources are stored as sent, identifiers included');
        const created = await fetch(`${server.baseUrl}/Patient`, {
          method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(patient()),
        });
        expect(created.status).to.equal(201);
        const body = await created.json() as any;
        const read = await (await fetch(`${server.baseUrl}/Patient/${body.id}`)).json() as any;
        expect(read.name).to.deep.equal([{ family: 'Brightwater', given: ['Ottoline'] }]);
        expect(read.identifier[0].value).to.equal('MRN-40417');
        expect(read.birthDate).to.equal('1958-09-14');
        expect((read.meta.tag ?? []).some((t: any) => t.system === TABLE_TAG_SYSTEM)).to.equal(false);
        expect(fs.existsSync(path.join(dataDir, 'vault')), 'no vault is made without a table').to.equal(false);
      } finally {
        await server.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('unset: safe-harbor is the default', async () => {
      const dataDir = temporaryDataDir('fhir-ledger-deid-default-');
      const log = memoryLogger('info');
      const config = loadConfig({ DATA_DIR: dataDir, LEDGER: 'off', PORT: '0', HOST: '127.0.0.1' });
      expect(config.deidMapping).to.equal('safe-harbor');
      const server = await startServer(config, log.logger);
      try {
        const inForce = log.lines().find((l) => l.msg === 'de-identification mapping table in force');
        expect(inForce).to.include({ table: 'safe-harbor', sha256: SAFE_HARBOR_SHA256 });
        expect(log.lines().some((l) => l.level === 40)).to.equal(false);
        const created = await fetch(`${server.baseUrl}/Patient`, {
          method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(patient()),
        });
        const body = await created.json() as any;
        expect(body).to.not.have.property('name');
        expect(body.meta.tag).to.deep.include({ system: TABLE_TAG_SYSTEM, code: SAFE_HARBOR_SHA256, display: 'safe-harbor mapping table' });
      } finally {
        await server.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe('an unavailable vault: the server starts, every write is refused with 503, nothing is stored', () => {
    const variants: { name: string; overrides: () => Record<string, string>; reason: RegExp }[] = [
      { name: 'vaultKeyFile names a file that does not exist', overrides: () => ({ vaultKeyFile: path.join(tmp, 'missing', 'vault.key') }),
        reason: /Vault key: the key file .*missing\/vault\.key does not exist/ },
      { name: 'vaultFile is a directory', overrides: () => {
        const dir = path.join(tmp, `vault-dir-${Date.now()}`);
        fs.mkdirSync(dir);
        return { vaultFile: dir };
      }, reason: /Pseudonym vault: cannot open the vault file/ },
      { name: 'vaultKey is malformed', overrides: () => ({ vaultKey: 'not-a-key' }),
        reason: /Vault key: the configured key value is malformed/ },
    ];
    for (const v of variants) {
      it(v.name, async () => {
        const log = memoryLogger('info');
        const server = await startTestServer({ deidMapping: 'safe-harbor', ...v.overrides() }, log.logger);
        try {
          const startError = log.lines().find((l) => l.level === 50);
          expect(startError?.msg).to.equal('pseudonym vault unavailable: writes will be refused');
          expect(String(startError?.reason)).to.match(v.reason);
          expect(log.text(), 'the key never reaches the log').to.not.include('not-a-key');

          const writes: [string, string, unknown, Record<string, string>?][] = [
            ['POST', '/fhir/Patient', patient()],
            ['POST', '/fhir/Patient', patient(), { 'If-None-Exist': 'identifier=http://hospital.example.org/mrn|MRN-40417' }],
            ['PUT', '/fhir/Patient/ehr-1', { ...patient(), id: 'ehr-1' }],
            ['PUT', `/fhir/Patient?identifier=${encodeURIComponent('http://hospital.example.org/mrn|MRN-40417')}`, patient()],
            ['POST', '/fhir/Observation', observation('Patient/ehr-1')],
            ['POST', '/fhir', { resourceType: 'Bundle', type: 'transaction', entry: [
              { fullUrl: 'urn:uuid:6b1f1bb0-7c42-4d0e-9a43-3c1f4bcf2a11', resource: patient(), request: { method: 'POST', url: 'Patient' } },
              { resource: observation('urn:uuid:6b1f1bb0-7c42-4d0e-9a43-3c1f4bcf2a11'), request: { method: 'POST', url: 'Observation' } },
            ] }],
          ];
          for (const [method, url, body, headers] of writes) {
            const res = await server.request(method, url, { body, ...(headers ? { headers } : {}) });
            expect(res.status, `${method} ${url}: ${res.text}`).to.equal(503);
            expect(res.json.resourceType).to.equal('OperationOutcome');
            expect(res.json.issue[0].code).to.equal('transient');
            expect(res.json.issue[0].diagnostics).to.match(/De-identification is unavailable, so writes are refused rather than storing identified data/);
            expect(res.text).to.not.include('Brightwater');
          }
          for (const url of ['/fhir/Patient', '/fhir/Observation', '/fhir/Patient?identifier=MRN-40417']) {
            const res = await server.request('GET', url);
            expect(res.status).to.equal(200);
            expect(res.json.entry ?? [], url).to.deep.equal([]);
          }
          const history = await server.request('GET', '/fhir/_history');
          expect(history.json.total).to.equal(0);
          const read = await server.request('GET', '/fhir/Patient/ehr-1');
          expect(read.status).to.equal(404);
        } finally {
          await server.stop();
        }
      });
    }
  });

  describe('meta.tag names the table every stored version was made with (sha256 of the file bytes)', () => {
    async function storeEverything(server: TestServer): Promise<any[]> {
      const p = await server.request('POST', '/fhir/Patient', { body: patient() });
      expect(p.status, p.text).to.equal(201);
      const put = await server.request('PUT', '/fhir/Patient/ehr-7', { body: { ...patient({ identifier: [{ system: 'urn:mrn', value: 'M7' }] }), id: 'ehr-7' } });
      expect(put.status, put.text).to.equal(201);
      const again = await server.request('PUT', '/fhir/Patient/ehr-7', { body: { ...patient({ identifier: [{ system: 'urn:mrn', value: 'M7' }] }), id: 'ehr-7', gender: 'other' } });
      expect(again.status, again.text).to.equal(200);
      const cond = await server.request('PUT', `/fhir/Patient?identifier=${encodeURIComponent('urn:mrn|M7')}`, { body: patient({ identifier: [{ system: 'urn:mrn', value: 'M7' }] }) });
      expect(cond.status, cond.text).to.equal(200);
      const o = await server.request('POST', '/fhir/Observation', { body: observation('Patient/ehr-7') });
      expect(o.status, o.text).to.equal(201);
      const tx = await server.request('POST', '/fhir', { body: { resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:0d8e3f56-1a4c-4f1f-8a55-1d7f0d9b6e21', resource: patient(), request: { method: 'POST', url: 'Patient' } },
        { resource: observation('urn:uuid:0d8e3f56-1a4c-4f1f-8a55-1d7f0d9b6e21'), request: { method: 'POST', url: 'Observation' } },
        { resource: { resourceType: 'Encounter', id: 'enc-1', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
          subject: { reference: 'urn:uuid:0d8e3f56-1a4c-4f1f-8a55-1d7f0d9b6e21' }, period: { start: '2019-05-06T07:00:00Z' } }, request: { method: 'PUT', url: 'Encounter/enc-1' } },
      ] } });
      expect(tx.status, tx.text).to.equal(200);
      const history = await server.request('GET', '/fhir/_history?_count=1000');
      expect(history.json.total).to.equal(8);
      return history.json.entry.map((e: any) => e.resource);
    }

    const tables: { name: string; deidMapping: () => string; sha256: () => string; display: string }[] = [
      { name: 'safe-harbor', deidMapping: () => 'safe-harbor', sha256: () => SAFE_HARBOR_SHA256, display: 'safe-harbor mapping table' },
      { name: 'research', deidMapping: () => 'research', sha256: () => RESEARCH_SHA256, display: 'research mapping table' },
      { name: 'a table file of its own', deidMapping: () => path.join(tmp, 'own-table.json'), sha256: () => sha256(fs.readFileSync(path.join(tmp, 'own-table.json'))), display: 'own mapping table' },
    ];
    before(() => {
      // The shipped safe-harbor rules under another name, with other bytes (so another sha256).
      const own = JSON.parse(fs.readFileSync(path.join(MAPPINGS, 'safe-harbor.json'), 'utf8'));
      fs.writeFileSync(path.join(tmp, 'own-table.json'), JSON.stringify({ ...own, name: 'own', description: 'a copy' }));
    });

    for (const t of tables) {
      it(`${t.name}: every stored version carries its sha256`, async () => {
        const server = await startTestServer({ deidMapping: t.deidMapping() });
        try {
          const versions = await storeEverything(server);
          expect(new Set(versions.map((v) => v.resourceType))).to.deep.equal(new Set(['Patient', 'Observation', 'Encounter']));
          for (const v of versions) {
            const tags = v.meta.tag.filter((x: any) => x.system === TABLE_TAG_SYSTEM);
            expect(tags, `${v.resourceType}/${v.id} v${v.meta.versionId}`).to.deep.equal([{ system: TABLE_TAG_SYSTEM, code: t.sha256(), display: t.display }]);
          }
          expect(t.sha256()).to.match(/^[0-9a-f]{64}$/);
        } finally {
          await server.stop();
        }
      });
    }

    it('a tag a client sends with the table system is replaced, not kept beside the real one', async () => {
      const server = await startTestServer({ deidMapping: 'safe-harbor' });
      try {
        const res = await server.request('POST', '/fhir/Patient', { body: patient({ meta: { tag: [{ system: TABLE_TAG_SYSTEM, code: 'forged' }, { system: 'urn:other', code: 'x' }] } }) });
        expect(res.status, res.text).to.equal(201);
        expect(res.json.meta.tag).to.deep.equal([{ system: 'urn:other', code: 'x' }, { system: TABLE_TAG_SYSTEM, code: SAFE_HARBOR_SHA256, display: 'safe-harbor mapping table' }]);
      } finally {
        await server.stop();
      }
    });
  });
});
