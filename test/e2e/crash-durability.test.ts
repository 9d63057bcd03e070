/**
 * Crash test: the server runs as its own process under a write load, is killed with SIGKILL
 * mid-load, and restarted on the same data folder; every write it acknowledged must be there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { temporaryDataDir } from '../support/test-server.js';
import { waitFor } from '../support/wait-for.js';

const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

interface ServerProcess { child: ChildProcess; baseUrl: string; exited: Promise<unknown> }

async function startServerProcess(dataDir: string): Promise<ServerProcess> {
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines = readline.createInterface({ input: child.stdout! });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`server exited early with ${String(code)}`)));
    lines.on('line', (line) => {
      try {
        const record = JSON.parse(line) as { baseUrl?: string };
        if (record.baseUrl) resolve(record.baseUrl);
      } catch { /* not a JSON log line */ }
    });
  });
  child.stdout!.resume();
  return { child, baseUrl, exited };
}

describe('durability under kill -9 (e2e, separate process)', function () {
  this.timeout(120_000);
  const dataDir = temporaryDataDir('fhir-ledger-crash-');
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('every acknowledged write survives SIGKILL during a write load', async () => {
    const first = await startServerProcess(dataDir);
    const acknowledged: { type: string; id: string; versionId: string }[] = [];
    let killed = false;
    const worker = async (n: number) => {
      for (let i = 0; !killed; i++) {
        try {
          const body = i % 5 === 0
            ? { resourceType: 'Bundle', type: 'transaction', entry: Array.from({ length: 10 }, () => ({ resource: { resourceType: 'Patient', gender: 'male' }, request: { method: 'POST', url: 'Patient' } })) }
            : { resourceType: 'Observation', status: 'final', code: { text: `w${n}-${i}` }, subject: { reference: 'Patient/x' } };
          const url = body.resourceType === 'Bundle' ? first.baseUrl : `${first.baseUrl}/Observation`;
          const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(body) });
          const json = await res.json() as any;
          if (res.status === 201) acknowledged.push({ type: 'Observation', id: json.id, versionId: json.meta.versionId });
          if (res.status === 200 && json.type === 'transaction-response') {
            for (const e of json.entry) {
              const [, , , , type, id, , vid] = e.response.location.split('/');
              acknowledged.push({ type, id, versionId: vid });
            }
          }
        } catch {
          return; // the connection died with the server: that write was not acknowledged
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, n) => worker(n));
    // Killed mid-load, once enough writes are acknowledged to make losing one likely to show.
    await waitFor(() => acknowledged.length >= 200, { timeoutMs: 90_000, what: () => `200 acknowledged writes (${acknowledged.length} so far)` });
    first.child.kill('SIGKILL');
    killed = true;
    await Promise.all(workers);
    await first.exited;
    expect(acknowledged.length).to.be.greaterThan(100);
    expect(fs.existsSync(path.join(dataDir, 'fhir.sqlite'))).to.equal(true);

    const second = await startServerProcess(dataDir);
    try {
      const missing: string[] = [];
      for (const a of acknowledged) {
        const res = await fetch(`${second.baseUrl}/${a.type}/${a.id}/_history/${a.versionId}`);
        if (res.status !== 200) missing.push(`${a.type}/${a.id}`);
      }
      expect(missing, `${missing.length} of ${acknowledged.length} acknowledged writes lost`).to.deep.equal([]);
      const history = await (await fetch(`${second.baseUrl}/_history?_count=0`)).json() as any;
      expect(history.total).to.be.at.least(acknowledged.length);
      // No half-write: Patients only arrive in transactions of 10, so a torn transaction would
      // leave a count that is not a multiple of 10.
      const patients = await (await fetch(`${second.baseUrl}/Patient?_total=accurate&_count=0`)).json() as any;
      expect(patients.total % 10).to.equal(0);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
