/**
 * Where the time of a read by id goes: the same bytes served by bare Koa, then with the
 * request logger, then with the FHIR base's dispatch and URL parsing, then by the whole
 * http/ layer and the executor without storage, and finally by the real server (read cache on, LEDGER=off).
 * Besides requests per second (which the load generator, sharing the two cores, also limits),
 * it reports the server process's own CPU time per request, from /proc/<pid>/stat: the
 * steadier measure of what each layer costs. Usage: node dist/bench/read-layers.bench.js
 * [--duration 6]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { postJson, startFhirServer } from './support/fhir-server-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const durationArg = process.argv.indexOf('--duration');
const duration = durationArg > 0 ? Number(process.argv[durationArg + 1]) : 6;

/** User + system CPU seconds of a process so far (Linux /proc; clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ", utime and stime are the 12th and 13th fields (proc(5): 14 and 15).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface LayerResult { reqPerSec: number; cpuMicrosPerRequest: number }

async function load(url: string, pid: number, name: string): Promise<LayerResult> {
  const before = cpuSeconds(pid);
  const result = await autocannon({ url, connections: 32, duration });
  const cpu = cpuSeconds(pid) - before;
  if (result.non2xx + result.errors > 0) throw new Error(`${name}: failed requests`);
  return { reqPerSec: result.requests.average, cpuMicrosPerRequest: (cpu * 1e6) / result.requests.total };
}

async function measure(layer: string, bodyFile: string, logFile: string): Promise<LayerResult> {
  const child = spawn(process.execPath, [path.join(here, 'read-layers-server.js'), layer, bodyFile, logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${layer} exited with ${code}`)));
    readline.createInterface({ input: child.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  try {
    return await load(`http://127.0.0.1:${port}/fhir/Patient/${path.basename(bodyFile, '.json')}`, child.pid!, layer);
  } finally {
    child.removeAllListeners('exit');
    child.kill();
  }
}

/** The real server, a Patient of the same shape read by id. */
async function measureServer(work: string): Promise<LayerResult> {
  const server = await startFhirServer(path.join(work, 'data'), path.join(work, 'server.log'), { DEID_MAPPING: 'none', LEDGER: 'off' });
  try {
    const patient = await postJson(`${server.baseUrl}/Patient`, { resourceType: 'Patient', name: [{ family: 'Bench' }], gender: 'female', birthDate: '1970-01-01' });
    return await load(`${server.baseUrl}/Patient/${patient.id}`, server.child.pid!, 'server');
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-layers-'));
  const id = 'b1e6c1a0-0000-4000-8000-000000000001';
  const bodyFile = path.join(work, `${id}.json`);
  fs.writeFileSync(bodyFile, JSON.stringify({
    resourceType: 'Patient', id, meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00.000Z' },
    name: [{ family: 'Bench' }], gender: 'female', birthDate: '1970-01-01',
  }));
  try {
    const rows: [string, LayerResult][] = [];
    for (const layer of ['bare', 'log', 'parse', 'http']) rows.push([layer, await measure(layer, bodyFile, path.join(work, `${layer}.log`))]);
    rows.push(['server', await measureServer(work)]);
    const bare = rows[0]![1];
    const table = ['| layer | req/s | % of bare Koa | server CPU per request |', '|---|---|---|---|',
      ...rows.map(([layer, r]) => `| ${layer} | ${r.reqPerSec.toFixed(0)} | ${(r.reqPerSec / bare.reqPerSec * 100).toFixed(0)} % | ${r.cpuMicrosPerRequest.toFixed(1)} µs |`)].join('\n');
    fs.mkdirSync(path.join(here, '..', '..', 'bench', 'results'), { recursive: true });
    fs.writeFileSync(path.join(here, '..', '..', 'bench', 'results', 'read-layers.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
