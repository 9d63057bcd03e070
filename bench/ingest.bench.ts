/**
 * Realistic ingest benchmark (issue 10, "Performance"): Synthea-like patient transaction Bundles
 * (bench/support/synthea-ingest-bundle.ts: Patient, Encounters, Observations, Conditions, Claims;
 * about 3.3 KB a resource as sent, pretty-printed as Synthea writes them) POSTed back to back by N
 * clients, with the default safe-harbor mapping table and the ledger on. Reports resources/s and
 * its ratio to bare Koa req/s in the same run (target ≥ 8 %), and resources per CPU-second of the
 * server process (from /proc/<pid>/stat; the embedded chain node is counted apart), also as a
 * ratio to bare Koa's requests per CPU-second, which other load on a shared machine moves less.
 * Usage: npm run bench:ingest  [-- --clients 4 --duration 30 --patients 30 --encounters 10]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBareKoaBaseline } from './support/bare-koa-baseline.js';
import { percentile, postJsonText, runClosedLoop } from './support/closed-loop-clients.js';
import { numberArg, postJson, startFhirServer } from './support/fhir-server-process.js';
import { cpuSpent, sampleCpu } from './support/process-cpu.js';
import { bundleStatistics, bundleText, syntheaIngestBundle } from './support/synthea-ingest-bundle.js';
import { writeBenchResults } from './support/bench-results.js';

const clients = numberArg('clients', 4);
const duration = numberArg('duration', 30);
const patients = numberArg('patients', 30);
const encounters = numberArg('encounters', 10);
const baselineSeconds = 5;
const bundleTimeoutMs = 120_000;
const targetRatio = 0.08;

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-ingest-bench-'));
  const server = await startFhirServer(path.join(work, 'data'), path.join(work, 'requests.log'), { DEID_MAPPING: 'safe-harbor', LEDGER: 'on' });
  let baseline: Awaited<ReturnType<typeof startBareKoaBaseline>> | undefined;
  try {
    const records = Array.from({ length: patients }, () => syntheaIngestBundle({ encounters }));
    const stats = bundleStatistics(records);
    const texts = records.map((bundle) => bundleText(bundle));
    const resourcesIn = records.map((bundle) => bundle.entry.length as number);
    process.stderr.write(`${patients} records, ${stats.resources} resources, ${stats.bytesPerResource.toFixed(0)} bytes a resource as sent (${stats.compactBytesPerResource.toFixed(0)} compact)\n`);

    // Warm-up (one record, not counted), and a Patient whose read is the bare-Koa baseline's bytes.
    const warm = await postJsonText(server.baseUrl, bundleText(syntheaIngestBundle({ encounters })), AbortSignal.timeout(bundleTimeoutMs));
    if (warm !== 200) throw new Error(`the warm-up transaction answered ${warm}`);
    const patient = await postJson(`${server.baseUrl}/Patient`, { resourceType: 'Patient', gender: 'female', birthDate: '1970-01-01', name: [{ family: 'Bench' }] });
    baseline = await startBareKoaBaseline(`${server.baseUrl}/Patient/${patient.id}`, work);
    const before = await baseline.measure('bare Koa, same bytes (before)', baselineSeconds);

    const cpuBefore = sampleCpu(server.child.pid!);
    const run = await runClosedLoop({
      clients, durationMs: duration * 1000, maxRequests: 100_000, timeoutMs: bundleTimeoutMs,
      send: (index, signal) => postJsonText(server.baseUrl, texts[index % texts.length]!, signal),
    });
    const cpu = cpuSpent(cpuBefore, sampleCpu(server.child.pid!));
    const ok = run.completions.filter((c) => c.status === 200);
    // Which record each completion sent is not kept; the records differ little in size, so count
    // the mean resources a record holds.
    const meanResources = resourcesIn.reduce((a, b) => a + b, 0) / resourcesIn.length;
    const resources = ok.length * meanResources;
    const resourcesPerSec = resources / (run.elapsedMs / 1000);
    const latencies = run.completions.map((c) => c.endMs - c.startMs);
    process.stderr.write(`ingest: ${ok.length} of ${run.completions.length} records 200, ${resourcesPerSec.toFixed(0)} resources/s, server CPU ${cpu.server.toFixed(1)} s\n`);

    const after = await baseline.measure('bare Koa, same bytes (after)', baselineSeconds);
    const [bareBefore, bareAfter] = [before.reqPerSec, after.reqPerSec];
    const bareKoa = (bareBefore + bareAfter) / 2;
    const bareKoaPerCpuSecond = (before.reqPerCpuSecond + after.reqPerCpuSecond) / 2;
    const ratio = resourcesPerSec / bareKoa;
    const failed = run.completions.length - ok.length;
    const report = {
      date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model,
      clients, durationSeconds: duration, elapsedSeconds: run.elapsedMs / 1000, patients, encountersPerPatient: encounters,
      records: stats,
      transactions: { ok: ok.length, failed, timeouts: run.timeouts, errors: run.errors, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) },
      resourcesPerSec, bareKoaReqPerSec: { before: bareBefore, after: bareAfter, mean: bareKoa }, ratioToBareKoa: ratio,
      serverCpuSeconds: cpu.server, chainNodeCpuSeconds: cpu.descendants,
      resourcesPerServerCpuSecond: resources / cpu.server,
      bareKoaReqPerCpuSecond: { before: before.reqPerCpuSecond, after: after.reqPerCpuSecond, mean: bareKoaPerCpuSecond },
      cpuRatioToBareKoa: resources / cpu.server / bareKoaPerCpuSecond,
    };
    const table = [
      `| realistic ingest (${clients} clients, ${duration} s; safe-harbor and ledger on) | result | target |`,
      '|---|---|---|',
      `| records | ${patients} Synthea-like patients × ${encounters} visits: ${(stats.resources / patients).toFixed(0)} resources a record (${Object.entries(stats.byType).map(([t, n]) => `${t} ${n}`).join(', ')}), ${(stats.bytesPerResource / 1024).toFixed(2)} KB a resource as sent (${(stats.compactBytesPerResource / 1024).toFixed(2)} KB compact) | ~3.4 KB |`,
      `| throughput | ${resourcesPerSec.toFixed(0)} resources/s (${ok.length} records 200${failed ? `, ${failed} not 200` : ''}${run.timeouts ? `, ${run.timeouts} timed out` : ''}${run.errors ? `, ${run.errors} errors` : ''}; p50 ${report.transactions.p50Ms.toFixed(0)} ms, p99 ${report.transactions.p99Ms.toFixed(0)} ms a record) | |`,
      `| ratio to bare Koa req/s | ${(ratio * 100).toFixed(1)} % (bare Koa ${bareKoa.toFixed(0)} req/s: before ${bareBefore.toFixed(0)}, after ${bareAfter.toFixed(0)}) | ≥ ${targetRatio * 100} % (${ratio >= targetRatio ? 'met' : 'not met'}) |`,
      `| resources per server-CPU-second | ${report.resourcesPerServerCpuSecond.toFixed(0)} (server process ${cpu.server.toFixed(1)} CPU-s; its ${cpuBefore.descendants.size} child processes (the embedded chain node) ${cpu.descendants.toFixed(1)} CPU-s apart) | (informational) |`,
      `| the same per CPU-second, as a ratio to bare Koa's requests per CPU-second | ${(report.cpuRatioToBareKoa * 100).toFixed(1)} % (bare Koa ${bareKoaPerCpuSecond.toFixed(0)} req per CPU-s) | (informational; less sensitive to other load on the machine) |`,
    ].join('\n');
    writeBenchResults('ingest', report, table);
  } finally {
    baseline?.stop();
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
