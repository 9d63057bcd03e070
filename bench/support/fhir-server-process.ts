/**
 * What the benchmarks share: the real server as its own process (as in production, logging to a
 * file), a free port, autocannon runs that fail on any failed request, and the Observation the
 * REST core benchmark creates.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const here = path.dirname(fileURLToPath(import.meta.url));
export const cliPath = path.join(here, '..', '..', 'src', 'cli.js');
export const repoRoot = path.resolve(here, '..', '..', '..');

/** `--name value` from the command line, as a number. */
export function numberArg(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? Number(process.argv[index + 1]) : fallback;
}

/** A free TCP port on loopback, so the server can log straight to a file from its first line. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

export interface ServerProcess {
  child: ChildProcess;
  baseUrl: string;
  stop(): Promise<void>;
}

export async function startFhirServer(dataDir: string, logFile: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const log = fs.openSync(logFile, 'w');
  const child = spawn(process.execPath, [cliPath, 'serve'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, ...env },
    stdio: ['ignore', log, 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${port}/fhir`;
  for (let attempt = 0; ; attempt++) {
    try {
      if ((await fetch(`${baseUrl}/metadata`)).ok) break;
    } catch {
      if (attempt > 300 || child.exitCode !== null) throw new Error('the FHIR server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    child, baseUrl,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      // A server stuck in synchronous work (a hostile request) may not get to its SIGTERM handler.
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(kill);
      fs.closeSync(log);
    },
  };
}

export async function postJson(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`seed failed: ${res.status} ${await res.text()}`);
  return res.json();
}

/** An autocannon run that counts non-2xx answers, errors and timeouts instead of failing on them. */
export async function loadCountingFailures(name: string, options: autocannon.Options): Promise<autocannon.Result & { failures: number }> {
  const result = await autocannon(options);
  const failures = result.non2xx + result.errors + result.timeouts;
  process.stderr.write(`${name}: ${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, failures ${failures}\n`);
  return { ...result, failures };
}

/** An autocannon run; any non-2xx, error or timeout fails the benchmark. */
export async function load(name: string, options: autocannon.Options): Promise<autocannon.Result> {
  const result = await loadCountingFailures(name, options);
  if (result.failures > 0) throw new Error(`${name}: ${result.failures} failed requests`);
  return result;
}

/** The Observation of the REST core create benchmark (a heart rate of one patient). */
export function benchObservation(i: number, patientId: string) {
  return {
    resourceType: 'Observation', status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString(),
    valueQuantity: { value: 60 + (i % 40), unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}
