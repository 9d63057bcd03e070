/**
 * De-identification benchmark (issue: de-identification, "Performance"): create Observation
 * throughput of the REST core benchmark (32 connections, the same body) with DEID_MAPPING=none
 * and with the shipped tables, in alternating rounds so drift on the machine hits every setting
 * alike. LEDGER=off in every setting: this isolates the table, the vault and the id translation.
 * Also, informational: creating identified Patients (names, address, phone, MRN and SSN; a new
 * MRN each time, so every create writes a new vault pair).
 * Usage: npm run bench:deid  [-- --duration 10 --rounds 3]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { benchObservation, load, numberArg, postJson, repoRoot, startFhirServer } from './support/fhir-server-process.js';

const duration = numberArg('duration', 10);
const rounds = numberArg('rounds', 3);
const SETTINGS = ['none', 'safe-harbor', 'research'] as const;

function identifiedPatientRequests(): autocannon.Request[] {
  // autocannon cycles through these; each carries an MRN of its own.
  return Array.from({ length: 5000 }, (_, i) => ({
    method: 'POST', path: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({
      resourceType: 'Patient', gender: 'female', birthDate: `19${String(10 + (i % 80)).padStart(2, '0')}-03-04`,
      identifier: [{ system: 'http://hospital.example/mrn', value: `MRN-${process.pid}-${i}-${Math.random().toString(36).slice(2)}` },
        { system: 'http://hl7.org/fhir/sid/us-ssn', value: `999-${String(i % 100).padStart(2, '0')}-${String(i).padStart(4, '0')}` }],
      name: [{ family: `Family${i}`, given: ['Given'] }],
      telecom: [{ system: 'phone', value: `555-${String(i).padStart(4, '0')}` }],
      address: [{ line: [`${i} Main Street`], city: 'Springfield', state: 'MA', postalCode: '01103' }],
    }),
  }));
}

async function measure(work: string, setting: string, round: number): Promise<{ observations: number; patients: number }> {
  const dataDir = path.join(work, `${setting}-${round}`);
  const server = await startFhirServer(dataDir, path.join(work, `${setting}-${round}.log`), { DEID_MAPPING: setting, LEDGER: 'off' });
  try {
    const patient = await postJson(`${server.baseUrl}/Patient`, { resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01' });
    for (let i = 0; i < 200; i++) await postJson(`${server.baseUrl}/Observation`, benchObservation(i, patient.id));
    const observations = await load(`${setting} round ${round}: create Observation`, {
      url: `${server.baseUrl}/Observation`, connections: 32, duration, method: 'POST',
      headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(benchObservation(1, patient.id)),
    });
    const patients = await load(`${setting} round ${round}: create identified Patient`, {
      url: server.baseUrl.replace(/\/fhir$/, ''), connections: 32, duration: Math.max(3, Math.round(duration / 2)), requests: identifiedPatientRequests(),
    });
    return { observations: observations.requests.average, patients: patients.requests.average };
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-deid-bench-'));
  const results = new Map<string, { observations: number[]; patients: number[] }>(SETTINGS.map((s) => [s, { observations: [], patients: [] }]));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const setting of SETTINGS) {
        const r = await measure(work, setting, round);
        results.get(setting)!.observations.push(r.observations);
        results.get(setting)!.patients.push(r.patients);
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const none = results.get('none')!;
  const rows = SETTINGS.map((setting) => {
    const r = results.get(setting)!;
    const obsCost = 1 - mean(r.observations) / mean(none.observations);
    const patCost = 1 - mean(r.patients) / mean(none.patients);
    return `| ${setting} | ${mean(r.observations).toFixed(0)} /s (${r.observations.map((x) => x.toFixed(0)).join(', ')}) | ${setting === 'none' ? '—' : `${(obsCost * 100).toFixed(1)} %`} | ${mean(r.patients).toFixed(0)} /s | ${setting === 'none' ? '—' : `${(patCost * 100).toFixed(1)} %`} |`;
  });
  const table = [
    `| DEID_MAPPING | create Observation, 32 conn. (rounds) | cost vs none (target < 15 %) | create identified Patient, 32 conn. | cost vs none |`,
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  const report = {
    date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, durationSeconds: duration, rounds,
    results: Object.fromEntries(results),
  };
  const out = path.join(repoRoot, 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'deid.json'), `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(out, 'deid.md'), `${table}\n`);
  process.stdout.write(`${table}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
