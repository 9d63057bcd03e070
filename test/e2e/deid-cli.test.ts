/** `fhir-ledger deid`: the real CLI process on real NDJSON files. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startTestServer, temporaryDataDir } from '../support/test-server.js';

const cli = path.resolve('dist/src/cli.js');

function run(args: string[], dataDir: string) {
  return spawnSync(process.execPath, [cli, 'deid', ...args], {
    env: { ...process.env, DATA_DIR: dataDir, DEID_MAPPING: '' }, encoding: 'utf8',
  });
}

describe('fhir-ledger deid (CLI, NDJSON)', function () {
  // Each test starts a CLI process, which loads the R4 definitions (most of its run time): a few
  // seconds alone, several times that on a loaded 2-core machine. The bound catches a hang only.
  this.timeout(180_000);
  const dir = temporaryDataDir('deid-cli-');
  const input = path.join(dir, 'in.ndjson');
  const output = path.join(dir, 'out.ndjson');

  before(() => {
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) {
      const patient = `ehr-${i % 20}`;
      lines.push(JSON.stringify(i % 2 === 0
        ? { resourceType: 'Patient', id: patient, name: [{ family: `Quxworthy${i}` }], birthDate: '1950-02-03', identifier: [{ system: 'http://h.example/mrn', value: `MRN-${i % 20}` }] }
        : { resourceType: 'Observation', id: `obs-${i}`, status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${patient}` }, effectiveDateTime: '2021-03-04T05:06:07Z', valueQuantity: { value: i } }));
    }
    lines.push('{not json Quxworthy');
    lines.push(JSON.stringify({ resourceType: 'Patient', birthDate: 'Quxworthy-date' }));
    fs.writeFileSync(input, `${lines.join('\n')}\n`);
  });

  it('de-identifies every valid line, links a patient\'s lines, reports bad lines by number only, exits 1', () => {
    const result = run([input, output], path.join(dir, 'data'));
    expect(result.status).to.equal(1);
    expect(result.stderr).to.match(/de-identifying: \d+\/\d+ bytes \(100%\)/);
    expect(result.stderr).to.include('line 401 rejected: not JSON');
    expect(result.stderr).to.include('line 402 rejected: invalid Patient');
    expect(result.stderr).not.to.include('Quxworthy');
    const out = fs.readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(out).to.have.length(400);
    const text = JSON.stringify(out);
    expect(text).not.to.match(/Quxworthy|MRN-|ehr-|1950-02-03|2021-03-04/);
    // Lines 0 and 20 are Patient ehr-0; lines 1 and 21 Observations of Patient ehr-1.
    expect(out[20].id).to.equal(out[0].id);
    expect(out[20].identifier[0].value).to.equal(out[0].identifier[0].value);
    expect(out[21].subject.reference).to.equal(out[1].subject.reference);
    expect(out[1].subject.reference).to.match(/^Patient\/[0-9a-f-]{36}$/);
    // Nothing was stored: no vault was created in the data folder.
    expect(fs.existsSync(path.join(dir, 'data', 'vault'))).to.equal(false);
  });

  it('--mapping research shifts dates instead of cutting them to the year', () => {
    const result = run(['--mapping', 'research', input, output], path.join(dir, 'data'));
    expect(result.status).to.equal(1);
    const out = fs.readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(out[0].birthDate).to.match(/^\d{4}-\d{2}-\d{2}$/);
    expect(out[0].birthDate).not.to.equal('1950-02-03');
  });

  it('--mapping research keeps a patient\'s intervals exactly, whichever line comes first', () => {
    const file = path.join(dir, 'intervals.ndjson');
    const obs = (id: string, date: string) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/p1' }, effectiveDateTime: date });
    fs.writeFileSync(file, [obs('o0', '1990-01-22'), { resourceType: 'Patient', id: 'p1', birthDate: '1990-01-02' }, obs('o1', '1990-01-02'), obs('o2', '1990-01-12')]
      .map((r) => JSON.stringify(r)).join('\n'));
    const result = run(['--mapping', 'research', file, output], path.join(dir, 'data'));
    expect(result.status, result.stderr).to.equal(0);
    const [o0, patient, o1, o2] = fs.readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(patient.birthDate).not.to.equal('1990-01-02');
    for (const o of [o0, o1, o2]) expect(o.subject.reference).to.equal(`Patient/${patient.id}`);
    const days = (a: string, b: string) => (Date.parse(b) - Date.parse(a)) / 86_400_000;
    expect([o1, o2, o0].map((o) => days(patient.birthDate, o.effectiveDateTime))).to.deep.equal([0, 10, 20]);
  });

  it('--mapping research uses the date shifts a server already stored (read only)', async () => {
    const dataDir = temporaryDataDir('deid-cli-vault-');
    try {
      const server = await startTestServer({ deidMapping: 'research', dataDir });
      let stored: { birthDate: string; id: string };
      try {
        expect((await server.request('PUT', '/fhir/Patient/ehr-v-1', { body: { resourceType: 'Patient', id: 'ehr-v-1', birthDate: '1966-06-06' } })).status).to.equal(201);
        stored = (await server.request('GET', '/fhir/Patient/ehr-v-1')).json;
      } finally {
        await server.close();
      }
      const file = path.join(dir, 'known.ndjson');
      fs.writeFileSync(file, `${JSON.stringify({ resourceType: 'Patient', id: 'ehr-v-1', birthDate: '1966-06-06' })}\n`);
      const result = run(['--mapping', 'research', file, output], dataDir);
      expect(result.status, result.stderr).to.equal(0);
      const out = JSON.parse(fs.readFileSync(output, 'utf8'));
      expect(out.id).to.equal(stored.id);
      expect(out.birthDate).to.equal(stored.birthDate);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown table by name', () => {
    const result = run(['--mapping', path.join(dir, 'missing.json'), input, output], path.join(dir, 'data'));
    expect(result.status).not.to.equal(0);
    expect(result.stderr).to.include('Mapping table error');
  });
});
