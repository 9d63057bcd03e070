/**
 * The bare-Koa baseline every throughput target is a ratio to (issue 10, "Performance": absolute
 * throughput differs about 2.5× between the machines this project runs on). As in the REST core
 * benchmark: a bare Koa server answers every GET with the bytes and headers the FHIR server sends
 * for one Patient read, loaded with 32 connections; a benchmark measures it before and after its
 * own runs and takes the mean, so a slow stretch of this shared machine weighs on both alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { load } from './fhir-server-process.js';
import { processCpuSeconds } from './process-cpu.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bareKoaScript = path.join(here, '..', 'bare-koa-server.js');

/** The first stdout line of `child` that is a JSON object with `key`. */
export function waitForJsonLine(child: ChildProcess, key: string): Promise<Record<string, unknown>> {
  const lines = readline.createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`process exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        if (record[key] !== undefined) { lines.close(); child.removeAllListeners('exit'); resolve(record); }
      } catch { /* other output */ }
    });
  });
}

export interface BareKoaRound {
  reqPerSec: number;
  /**
   * Requests per CPU-second of the bare Koa process: less sensitive than req/s to other load on
   * a shared machine, to compare with a FHIR server figure per server-CPU-second.
   */
  reqPerCpuSecond: number;
}

export interface BareKoaBaseline {
  /** One 32-connection round of reads. */
  measure(name: string, durationSeconds: number): Promise<BareKoaRound>;
  stop(): void;
}

/**
 * Starts the bare Koa server with the body the FHIR server returns for `fhirReadUrl` (a read by
 * id), written to `workDir`.
 */
export async function startBareKoaBaseline(fhirReadUrl: string, workDir: string): Promise<BareKoaBaseline> {
  const response = await fetch(fhirReadUrl);
  const bodyFile = path.join(workDir, 'bare-koa-body.json');
  fs.writeFileSync(bodyFile, await response.text());
  const child = spawn(process.execPath, [bareKoaScript, bodyFile, response.headers.get('etag') ?? 'W/"1"'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = (await waitForJsonLine(child, 'port')).port as number;
  const readPath = new URL(fhirReadUrl).pathname;
  return {
    async measure(name, durationSeconds) {
      const cpuBefore = processCpuSeconds(child.pid!);
      const result = await load(name, { url: `http://127.0.0.1:${port}${readPath}`, connections: 32, duration: durationSeconds });
      return { reqPerSec: result.requests.average, reqPerCpuSecond: result.requests.total / (processCpuSeconds(child.pid!) - cpuBefore) };
    },
    stop() { child.kill('SIGTERM'); },
  };
}
