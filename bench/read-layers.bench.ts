/**
 * Where the time of a read by id goes: the same bytes served by bare Koa, then with the
 * request logger, then by the whole http/ layer without storage; the full server's figure comes
 * from bench/rest-core.bench.ts. Usage: node dist/bench/read-layers.bench.js [--duration 6]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const here = path.dirname(fileURLToPath(import.meta.url));
const durationArg = process.argv.indexOf('--duration');
const duration = durationArg > 0 ? Number(process.argv[durationArg + 1]) : 6;

async function measure(layer: string, bodyFile: string, logFile: string): Promise<number> {
  const child = spawn(process.execPath, [path.join(here, 'read-layers-server.js'), layer, bodyFile, logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${layer} exited with ${code}`)));
    readline.createInterface({ input: child.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  try {
    const result = await autocannon({ url: `http://127.0.0.1:${port}/fhir/Patient/${path.basename(bodyFile, '.json')}`, connections: 32, duration });
    if (result.non2xx + result.errors > 0) throw new Error(`${layer}: failed requests`);
    return result.requests.average;
  } finally {
    child.removeAllListeners('exit');
    child.kill();
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
    const rows: [string, number][] = [];
    for (const layer of ['bare', 'log', 'router', 'http']) rows.push([layer, await measure(layer, bodyFile, path.join(work, `${layer}.log`))]);
    const bare = rows[0]![1];
    const table = ['| layer | req/s | % of bare Koa |', '|---|---|---|',
      ...rows.map(([layer, rps]) => `| ${layer} | ${rps.toFixed(0)} | ${(rps / bare * 100).toFixed(0)} % |`)].join('\n');
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
