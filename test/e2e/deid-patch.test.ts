/**
 * PATCH under a mapping table (FHIR R4 http.html#patch): the patch applies to the stored,
 * de-identified version, and the patched whole is re-checked without re-applying the rules that
 * are not idempotent to what the stored version already holds. Reproduces issue 10: with a table
 * that hashes identifiers, each PATCH of `gender` re-hashed the MRN (H(MRN) → H(H(MRN))) and the
 * patient could no longer be found by it; under a table that shifts dates PATCH was refused.
 * Run under three tables: a small cryptoHash table, safe-harbor (pseudonymize) and research
 * (pseudonymize and dateShift).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startTestServer, type TestServer } from '../support/test-server.js';

const MRN_SYSTEM = 'urn:mrn';
const PATCH_HEADERS = { 'Content-Type': 'application/json-patch+json' };

/** Days from `a` to `b` (calendar dates, UTC). */
function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(b.slice(0, 10)) - Date.parse(a.slice(0, 10))) / 86_400_000);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-patch-tables-'));
const hashTable = path.join(tmp, 'hash-identifiers.json');
fs.writeFileSync(hashTable, JSON.stringify({
  name: 'hash-identifiers',
  rules: [{ path: 'Patient.identifier', method: 'cryptoHash', comment: 'the MRN becomes HMAC-SHA256(MRN)' }],
}));

const tables: { name: string; deidMapping: string; shiftsDates: boolean }[] = [
  { name: 'a table that cryptoHashes identifiers', deidMapping: hashTable, shiftsDates: false },
  { name: 'safe-harbor (identifiers pseudonymized)', deidMapping: 'safe-harbor', shiftsDates: false },
  { name: 'research (identifiers pseudonymized, dates shifted)', deidMapping: 'research', shiftsDates: true },
];

for (const table of tables) {
  describe(`PATCH under ${table.name} (e2e)`, () => {
    let server: TestServer;
    let id: string;

    before(async () => {
      server = await startTestServer({ deidMapping: table.deidMapping });
      const created = await server.request('POST', '/fhir/Patient', {
        body: {
          resourceType: 'Patient', identifier: [{ system: MRN_SYSTEM, value: '123' }],
          gender: 'female', birthDate: '1970-03-04', active: true,
        },
      });
      expect(created.status, created.text).to.equal(201);
      id = created.json.id;
    });
    after(async () => {
      await server?.stop();
    });

    const versions = async () => {
      const history = await server.request('GET', `/fhir/Patient/${id}/_history`);
      expect(history.status).to.equal(200);
      return (history.json.entry as { resource: Record<string, any> }[]).map((e) => e.resource).reverse();
    };
    const findByMrn = async (mrn: string) => {
      const found = await server.request('GET', `/fhir/Patient?identifier=${encodeURIComponent(`${MRN_SYSTEM}|${mrn}`)}`);
      expect(found.status).to.equal(200);
      return (found.json.entry ?? []).map((e: { resource: { id: string } }) => e.resource.id);
    };

    it('PATCH /gender twice: the stored identifier and dates are unchanged, and the patient is still found by its MRN', async () => {
      for (const gender of ['male', 'female']) {
        const patched = await server.request('PATCH', `/fhir/Patient/${id}`, {
          body: [{ op: 'replace', path: '/gender', value: gender }], headers: PATCH_HEADERS,
        });
        expect(patched.status, patched.text).to.equal(200);
        expect(patched.json.gender).to.equal(gender);
      }
      const all = await versions();
      expect(all.map((v) => v.meta.versionId)).to.deep.equal(['1', '2', '3']);
      const first = all[0]!;
      expect(first.identifier[0].value, 'the MRN is stored de-identified').to.not.equal('123');
      for (const v of all) {
        expect(v.identifier, `version ${v.meta.versionId}`).to.deep.equal(first.identifier);
        expect(v.birthDate, `version ${v.meta.versionId}`).to.equal(first.birthDate);
      }
      expect(await findByMrn('123')).to.deep.equal([id]);
    });

    it('a value the patch introduces is de-identified like any write; the stored ones stay as they were', async () => {
      const before = (await versions()).at(-1)!;
      const patched = await server.request('PATCH', `/fhir/Patient/${id}`, {
        body: [
          // Inserted first: the stored identifier moves to index 1, and stays unchanged.
          { op: 'add', path: '/identifier/0', value: { system: MRN_SYSTEM, value: '456' } },
          { op: 'add', path: '/deceasedDateTime', value: '2020-01-10T08:00:00Z' },
        ],
        headers: PATCH_HEADERS,
      });
      expect(patched.status, patched.text).to.equal(200);
      const stored = (await versions()).at(-1)!;
      expect(stored.identifier).to.have.length(2);
      expect(stored.identifier[1]).to.deep.equal(before.identifier[0]);
      expect(stored.identifier[0].value).to.not.equal('456');
      expect(stored.identifier[0].value).to.not.equal(before.identifier[0].value);
      expect(await findByMrn('456')).to.deep.equal([id]);
      expect(await findByMrn('123')).to.deep.equal([id]);
      expect(stored.birthDate).to.equal(before.birthDate);
      if (table.shiftsDates) {
        // The new date moves by the patient's offset, the one its birth date moved by at create.
        const offset = daysBetween('1970-03-04', stored.birthDate);
        expect(offset).to.be.lessThan(0);
        expect(daysBetween('2020-01-10', stored.deceasedDateTime)).to.equal(offset);
        expect(stored.deceasedDateTime.slice(10)).to.equal('T08:00:00Z');
      }
    });

    it('PATCH again after that leaves every stored value as it is', async () => {
      const before = (await versions()).at(-1)!;
      const patched = await server.request('PATCH', `/fhir/Patient/${id}`, {
        body: [{ op: 'replace', path: '/active', value: false }], headers: PATCH_HEADERS,
      });
      expect(patched.status, patched.text).to.equal(200);
      const stored = (await versions()).at(-1)!;
      expect(stored.active).to.equal(false);
      const { meta: _m1, active: _a1, ...kept } = stored;
      const { meta: _m2, active: _a2, ...was } = before;
      expect(kept).to.deep.equal(was);
    });
  });
}

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
