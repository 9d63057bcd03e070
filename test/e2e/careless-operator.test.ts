/**
 * What a careless operator does: starts a second server on the same DATA_DIR, or leaves the
 * server reachable under a Host name an attacker chooses.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { LOCK_FILE_NAME } from '../../src/data-dir-lock.js';
import { startTestServer, temporaryDataDir, type TestServer } from '../support/test-server.js';
import { rejectionOf } from '../support/rejection-of.js';

const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/**
 * A request with a Host header of the test's choosing (fetch always sends the URL's own host),
 * to the server's real address.
 */
function requestWithHost(server: TestServer, method: string, urlPath: string, host: string, body?: unknown): Promise<{ status: number; location: string | undefined; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request({
      host: '127.0.0.1', port: server.port, method, path: urlPath,
      headers: { Host: host, ...(payload ? { 'Content-Type': 'application/fhir+json' } : {}) },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { text += chunk; });
      response.on('end', () => resolve({
        status: response.statusCode!, location: response.headers.location, json: text ? JSON.parse(text) : undefined,
      }));
    });
    request.on('error', reject);
    request.end(payload);
  });
}


describe('one server per DATA_DIR (lock file)', function () {
  let dataDir: string;
  beforeEach(() => { dataDir = temporaryDataDir('fhir-ledger-lock-'); });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('a second server on the same folder refuses to start, naming the pid that holds it; after close, a new one starts', async () => {
    const first = await startTestServer({ dataDir });
    let third: TestServer | undefined;
    try {
      expect(fs.readFileSync(path.join(dataDir, LOCK_FILE_NAME), 'utf8').trim()).to.equal(String(process.pid));
      const error = await rejectionOf(startTestServer({ dataDir }));
      expect(error.message).to.include(`in use by another fhir-ledger process (pid ${process.pid})`);
      expect(error.message).to.include(dataDir);
      // The refused server left the first one's lock and service alone.
      expect((await first.request('GET', '/fhir/metadata')).status).to.equal(200);
      await first.close();
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE_NAME))).to.equal(false);
      third = await startTestServer({ dataDir });
      expect((await third.request('GET', '/fhir/metadata')).status).to.equal(200);
    } finally {
      await first.close().catch(() => undefined);
      await third?.close();
    }
  });

  it('takes over a stale lock whose process is gone', async () => {
    // A pid that cannot be running: above Linux's pid_max limit (2^22).
    fs.writeFileSync(path.join(dataDir, LOCK_FILE_NAME), '4194305\n');
    const server = await startTestServer({ dataDir });
    try {
      expect(fs.readFileSync(path.join(dataDir, LOCK_FILE_NAME), 'utf8').trim()).to.equal(String(process.pid));
    } finally {
      await server.close();
    }
  });

  it('a refused start (a bad mapping table) releases the lock', async () => {
    const error = await rejectionOf(startTestServer({ dataDir, deidMapping: path.join(dataDir, 'missing.json') }));
    expect(error.message).to.match(/Mapping table/);
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE_NAME))).to.equal(false);
  });

  describe('two `fhir-ledger serve` processes', function () {
    this.timeout(60_000);
    const children: ChildProcess[] = [];
    after(() => { for (const child of children) if (child.exitCode === null) child.kill('SIGKILL'); });

    /** Starts `serve` and resolves with its base URL, or with its exit code and stderr if it stops first. */
    function serve(): Promise<{ baseUrl?: string; exitCode?: number | null; stderr: string; child: ChildProcess }> {
      const child = spawn(process.execPath, [cli, 'serve'], {
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LEDGER: 'off', DEID_MAPPING: 'none', LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk) => { stderr += String(chunk); });
      return new Promise((resolve) => {
        child.once('exit', (exitCode) => resolve({ exitCode, stderr, child }));
        readline.createInterface({ input: child.stdout! }).on('line', (line) => {
          try {
            const record = JSON.parse(line) as { baseUrl?: string };
            if (record.baseUrl) resolve({ baseUrl: record.baseUrl, stderr, child });
          } catch { /* not a JSON log line */ }
        });
      });
    }

    it('started at the same moment, exactly one serves; the other exits naming its pid', async () => {
      const [a, b] = await Promise.all([serve(), serve()]);
      const serving = [a, b].filter((p) => p.baseUrl !== undefined);
      const refused = [a, b].filter((p) => p.baseUrl === undefined);
      expect(serving, `${a.stderr}\n${b.stderr}`).to.have.length(1);
      expect(refused[0]!.exitCode).to.not.equal(0);
      expect(refused[0]!.stderr).to.include(`in use by another fhir-ledger process (pid ${serving[0]!.child.pid})`);
      expect((await fetch(`${serving[0]!.baseUrl}/metadata`)).status).to.equal(200);
      const exited = new Promise((resolve) => serving[0]!.child.once('exit', resolve));
      serving[0]!.child.kill('SIGTERM');
      await exited;
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE_NAME))).to.equal(false);
    });
  });
});

describe('Location and paging links without PUBLIC_BASE_URL (Host header)', function () {
  let server: TestServer;
  before(async () => { server = await startTestServer(); });
  after(async () => server.stop());

  const patient = { resourceType: 'Patient', gender: 'female' };

  it('a forged Host gets the server\'s own base, not the forged one', async () => {
    const created = await requestWithHost(server, 'POST', '/fhir/Patient', 'evil.example', patient);
    expect(created.status).to.equal(201);
    expect(created.location).to.match(new RegExp(`^${server.baseUrl}/Patient/[^/]+/_history/1$`));
    const page = await requestWithHost(server, 'GET', '/fhir/Patient?_count=1', `evil.example:${server.port}`);
    const links: string[] = page.json.link.map((l: { url: string }) => l.url);
    expect(links).to.not.deep.equal([]);
    for (const url of links) expect(url.startsWith(`${server.baseUrl}/`), url).to.equal(true);
  });

  it('an allowed Host (localhost with the listening port) is used', async () => {
    const host = `localhost:${server.port}`;
    const created = await requestWithHost(server, 'POST', '/fhir/Patient', host, patient);
    expect(created.location).to.match(new RegExp(`^http://${host}/fhir/Patient/[^/]+/_history/1$`));
    const page = await requestWithHost(server, 'GET', '/fhir/Patient?_count=1', host);
    const links: string[] = page.json.link.map((l: { url: string }) => l.url);
    expect(links).to.not.deep.equal([]);
    for (const url of links) expect(url.startsWith(`http://${host}/fhir/`), url).to.equal(true);
  });

  it('ALLOWED_HOSTS replaces the defaults; a name without port is allowed on any port', async () => {
    const proxied = await startTestServer({ allowedHosts: ['fhir.example.org'] });
    try {
      const viaProxy = await requestWithHost(proxied, 'POST', '/fhir/Patient', 'fhir.example.org', patient);
      expect(viaProxy.location).to.match(/^http:\/\/fhir\.example\.org\/fhir\/Patient\//);
      const direct = await requestWithHost(proxied, 'POST', '/fhir/Patient', `localhost:${proxied.port}`, patient);
      expect(direct.location!.startsWith(`${proxied.baseUrl}/`)).to.equal(true);
    } finally {
      await proxied.stop();
    }
  });

  it('ALLOWED_HOSTS is read as host or host:port, and refuses a URL', () => {
    expect(loadConfig({ ALLOWED_HOSTS: 'FHIR.example.org, [::1]:8080,' }).allowedHosts).to.deep.equal(['fhir.example.org', '[::1]:8080']);
    expect(loadConfig({}).allowedHosts).to.equal(undefined);
    expect(() => loadConfig({ ALLOWED_HOSTS: 'https://fhir.example.org' })).to.throw(/ALLOWED_HOSTS/);
  });
});
