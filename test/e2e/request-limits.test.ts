/**
 * Requests that used to stall the server or answer 500 (issue 10), through the real HTTP server:
 * each is refused with its 4xx and an OperationOutcome, and stores nothing. The search limits run
 * at their defaults (the reproductions of the issue); the body limits are set small by config.
 */
import http from 'node:http';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { startTestServer, type TestResponse, type TestServer } from '../support/test-server.js';

const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
const PATCH = { 'Content-Type': 'application/json-patch+json' };
const codes = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);

/**
 * A request with a method fetch refuses to send (TRACE, CONNECT), by node:http. The answer to a
 * CONNECT comes as a 'connect' event, its body as the bytes that follow on the socket.
 */
function rawRequest(port: number, method: string, path: string): Promise<{ status: number; allow: string | undefined; json: any }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path });
    const answer = (response: http.IncomingMessage, body: NodeJS.ReadableStream, head = '') => {
      let text = head;
      body.setEncoding('utf8');
      body.on('data', (chunk: string) => { text += chunk; });
      body.on('end', () => resolve({ status: response.statusCode!, allow: response.headers.allow, json: text ? JSON.parse(text) : undefined }));
    };
    request.on('response', (response) => answer(response, response));
    request.on('connect', (response, socket, head) => answer(response, socket, head.toString('utf8')));
    request.on('error', reject);
    request.end();
  });
}

/**
 * Streams a chunked body (no Content-Length) of up to `totalBytes`, stopping as soon as the
 * server answers: tells whether the answer came before the body was complete.
 */
function streamBody(port: number, path: string, contentType: string, prefix: string, totalBytes: number):
  Promise<{ status: number; json: any; answeredBeforeEnd: boolean }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'Content-Type': contentType } });
    let sent = 0;
    let ended = false;
    let answered = false;
    const chunk = Buffer.alloc(16 * 1024, 'a');
    request.on('response', (response) => {
      answered = true;
      const answeredBeforeEnd = !ended;
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (c: string) => { text += c; });
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode!, json: JSON.parse(text), answeredBeforeEnd });
      });
    });
    // The server may close the connection while the client still writes.
    request.on('error', (error) => { if (!answered) reject(error); });
    request.write(prefix);
    const pump = () => {
      while (!answered && !request.destroyed) {
        if (sent >= totalBytes) {
          ended = true;
          request.end();
          return;
        }
        sent += chunk.length;
        if (!request.write(chunk)) {
          request.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

function expectOutcome(res: TestResponse, status: number, code?: string): any {
  expect(res.status, res.text.slice(0, 300)).to.equal(status);
  expect(res.json?.resourceType).to.equal('OperationOutcome');
  if (code !== undefined) expect(res.json.issue[0].code).to.equal(code);
  return res.json.issue[0];
}

describe('request limits (e2e)', () => {
  let server: TestServer;
  let patientId: string;
  const storedVersions = async () => (await server.request('GET', '/fhir/_history?_count=0')).json.total as number;

  before(async () => {
    server = await startTestServer({ maxBodyBytes: 2 * 1024 * 1024, maxFormBodyBytes: 4096, maxElementRepetitions: 50 });
    const created = await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', gender: 'female' } });
    expect(created.status).to.equal(201);
    patientId = created.json.id;
    for (const code of ['c1', 'c2']) {
      const observation = await server.request('POST', '/fhir/Observation', { body: {
        resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code }] },
        subject: { reference: `Patient/${patientId}` }, valueQuantity: { value: 1 },
      } });
      expect(observation.status).to.equal(201);
    }
  });
  after(async () => server.stop());

  describe('search (defaults: 8 _sort keys, 100 OR values, 16 AND repetitions, 100 parameters)', () => {
    const refused: { name: string; path: string; diagnostics: RegExp }[] = [
      { name: '200 _sort keys (stalled 40 s)', path: `/fhir/Observation?_sort=${Array.from({ length: 200 }, (_, i) => (i % 2 ? '-date' : 'code')).join(',')}`, diagnostics: /_sort has 200 keys/ },
      { name: '9 _sort keys', path: '/fhir/Observation?_sort=code,date,status,subject,category,encounter,performer,_id,_lastUpdated', diagnostics: /_sort has 9 keys/ },
      { name: 'code=c0&…&code=c999 (a 500 from SQLite)', path: `/fhir/Observation?${codes(1000).map((c) => `code=${c}`).join('&')}`, diagnostics: /1000 parameters/ },
      { name: 'code repeated 17 times', path: `/fhir/Observation?${codes(17).map((c) => `code=${c}`).join('&')}`, diagnostics: /'code' is repeated more than 16 times/ },
      { name: 'code=c0,…,c999 (a 500 from SQLite)', path: `/fhir/Observation?code=${codes(1000).join(',')}`, diagnostics: /'code' has 1000 values/ },
      { name: '101 OR values', path: `/fhir/Observation?code=${codes(101).join(',')}`, diagnostics: /'code' has 101 values/ },
      { name: '101 parameters', path: `/fhir/Observation?${Array(101).fill('_include=Observation:subject').join('&')}`, diagnostics: /101 parameters/ },
      { name: 'a system search with 101 _id values', path: `/fhir?_id=${codes(101).join(',')}`, diagnostics: /'_id' has 101 values/ },
    ];
    for (const c of refused) {
      it(`${c.name} → 400 too-costly`, async () => {
        const issue = expectOutcome(await server.request('GET', c.path), 400, 'too-costly');
        expect(issue.diagnostics).to.match(c.diagnostics);
      });
    }

    it('the same over POST _search (form body) → 400', async () => {
      const res = await server.request('POST', '/fhir/Observation/_search', { body: `code=${codes(101).join(',')}`, headers: FORM });
      expectOutcome(res, 400, 'too-costly');
    });

    it('at the limits a search runs: 8 _sort keys, 16 AND repetitions of 100 OR values', async () => {
      const sorted = await server.request('GET', '/fhir/Observation?_sort=code,-date,status,subject,category,encounter,performer,_id');
      expect(sorted.status, sorted.text.slice(0, 300)).to.equal(200);
      const query = Array.from({ length: 16 }, (_, j) => `code=${codes(100).map((c, i) => (i === j ? 'c1' : `${c}x`)).join(',')}`).join('&');
      const res = await server.request('GET', `/fhir/Observation?${query}`);
      expect(res.status, res.text.slice(0, 300)).to.equal(200);
      expect(res.json.resourceType).to.equal('Bundle');
    });

    it('a conditional create whose criteria are over a limit → 400, nothing stored', async () => {
      const before = await storedVersions();
      const res = await server.request('POST', '/fhir/Patient', {
        body: { resourceType: 'Patient' }, headers: { 'If-None-Exist': `identifier=${codes(1000).join(',')}` },
      });
      expectOutcome(res, 400, 'too-costly');
      expect(await storedVersions()).to.equal(before);
    });
  });

  describe('bodies', () => {
    it('a form body over MAX_FORM_BODY_BYTES → 413 (a 10 MB one took 10 s)', async () => {
      const res = await server.request('POST', '/fhir/Observation/_search', { body: `code=c1&_elements=${'a,'.repeat(5 * 1024 * 1024)}`, headers: FORM });
      expectOutcome(res, 413, 'too-long');
    });

    it('a form body under the limit is searched', async () => {
      const res = await server.request('POST', '/fhir/Observation/_search', { body: `code=c1&_elements=${'status,'.repeat(400)}`, headers: FORM });
      expect(res.status, res.text.slice(0, 300)).to.equal(200);
      expect(res.json.entry).to.have.length(1);
    });

    it('a chunked form body (no Content-Length) over the limit is refused while it streams', async () => {
      const res = await streamBody(server.port, '/fhir/Observation/_search', FORM['Content-Type'], 'code=', 64 * 1024 * 1024);
      expect(res.status).to.equal(413);
      expect(res.json.resourceType).to.equal('OperationOutcome');
      expect(res.answeredBeforeEnd, 'answered before the client finished sending').to.equal(true);
    });

    it('a chunked JSON body over MAX_BODY_BYTES is refused while it streams, not after buffering it all', async () => {
      const before = await storedVersions();
      const res = await streamBody(server.port, '/fhir/Patient', 'application/fhir+json', '{"resourceType":"Patient","gender":"', 64 * 1024 * 1024);
      expect(res.status).to.equal(413);
      expect(res.json.issue[0].code).to.equal('too-long');
      expect(res.answeredBeforeEnd, 'answered before the client finished sending').to.equal(true);
      expect(await storedVersions()).to.equal(before);
    });
  });

  describe('element repetitions (MAX_ELEMENT_REPETITIONS, 50 here)', () => {
    const patient = (identifiers: number) => ({
      resourceType: 'Patient', identifier: Array.from({ length: identifiers }, (_, i) => ({ system: 'urn:example:mrn', value: `m${i}` })),
    });

    it('a Patient with 20,000 identifiers (stalled the server 15 s) → 413 at Patient.identifier, nothing stored', async () => {
      const before = await storedVersions();
      const issue = expectOutcome(await server.request('POST', '/fhir/Patient', { body: patient(20_000) }), 413, 'too-long');
      expect(issue.expression).to.deep.equal(['Patient.identifier']);
      expect(await storedVersions()).to.equal(before);
    });

    it('one repetition over the limit → 413 with the element path, also inside a transaction', async () => {
      const before = await storedVersions();
      const direct = expectOutcome(await server.request('POST', '/fhir/Patient', { body: patient(51) }), 413, 'too-long');
      expect(direct.expression).to.deep.equal(['Patient.identifier']);
      const bundle = {
        resourceType: 'Bundle', type: 'transaction',
        entry: [{ resource: patient(1), request: { method: 'POST', url: 'Patient' } }, { resource: patient(51), request: { method: 'POST', url: 'Patient' } }],
      };
      const inBundle = expectOutcome(await server.request('POST', '/fhir', { body: bundle }), 413, 'too-long');
      expect(inBundle.expression).to.deep.equal(['Bundle.entry[1].resource.identifier']);
      expect(await storedVersions()).to.equal(before);
    });

    it('at the limit a resource is stored', async () => {
      expect((await server.request('POST', '/fhir/Patient', { body: patient(50) })).status).to.equal(201);
    });

    it("a batch's entries are not an element's repetitions: 60 entries run", async () => {
      const batch = { resourceType: 'Bundle', type: 'batch', entry: Array.from({ length: 60 }, () => ({ request: { method: 'GET', url: `Patient/${patientId}` } })) };
      const res = await server.request('POST', '/fhir', { body: batch });
      expect(res.status, res.text.slice(0, 300)).to.equal(200);
      expect(res.json.entry).to.have.length(60);
    });
  });

  describe('numbers outside the IEEE double range (were stored and served as null)', () => {
    for (const value of ['1e400', '-1e400']) {
      it(`valueQuantity.value ${value} → 422 at Observation.valueQuantity.value, nothing stored`, async () => {
        const before = await storedVersions();
        const body = `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/${patientId}"},"valueQuantity":{"value":${value}}}`;
        const issue = expectOutcome(await server.request('POST', '/fhir/Observation', { body }), 422, 'value');
        expect(issue.expression).to.deep.equal(['Observation.valueQuantity.value']);
        expect(await storedVersions()).to.equal(before);
      });
    }

    it('in a PATCH value → 422, the resource unchanged', async () => {
      const res = await server.request('PATCH', `/fhir/Patient/${patientId}`, {
        body: '[{"op":"add","path":"/multipleBirthInteger","value":1e400}]', headers: PATCH,
      });
      expectOutcome(res, 422, 'value');
      expect((await server.request('GET', `/fhir/Patient/${patientId}`)).json.meta.versionId).to.equal('1');
    });
  });

  describe('JSON Patch of odd paths: never a 500, and a refused patch changes nothing', () => {
    const rows: { ops: unknown[]; status?: number }[] = [
      { ops: [{ op: 'remove', path: '' }], status: 422 },
      { ops: [{ op: 'replace', path: '', value: null }], status: 422 },
      { ops: [{ op: 'replace', path: '', value: 3 }], status: 422 },
      { ops: [{ op: 'replace', path: '', value: [] }], status: 422 },
      { ops: [{ op: 'replace', path: '', value: { resourceType: 'Observation' } }], status: 422 },
      { ops: [{ op: 'move', from: '/gender', path: '' }], status: 422 },
      { ops: [{ op: 'copy', from: '/gender', path: '' }], status: 422 },
      { ops: [{ op: 'add', path: '', value: 'x' }], status: 422 },
      { ops: [{ op: 'remove', path: '/id' }], status: 422 },
      { ops: [{ op: 'replace', path: '/id', value: 'other' }], status: 422 },
      { ops: [{ op: 'remove', path: '/resourceType' }], status: 422 },
      { ops: [{ op: 'replace', path: '/resourceType', value: 'Observation' }], status: 422 },
      { ops: [{ op: 'move', from: '/id', path: '/gender' }], status: 422 },
      { ops: [{ op: 'test', path: '', value: {} }], status: 400 },
      { ops: [{ op: 'remove', path: '/nonexistent/deep' }], status: 400 },
      { ops: [{ op: 'unknown', path: '/gender' }], status: 400 },
      { ops: [{ op: 'remove' }], status: 400 },
      { ops: [{ op: 'add', path: '/meta/versionId', value: 'x' }] },
      { ops: [{ op: 'replace', path: '/meta/versionId', value: '99' }] },
      { ops: [{ op: 'remove', path: '/meta' }] },
      { ops: [{ op: 'replace', path: '/meta', value: 'x' }] },
    ];
    for (const row of rows) {
      it(`${JSON.stringify(row.ops)} → ${row.status ?? 'any status below 500'}`, async () => {
        const before = (await server.request('GET', `/fhir/Patient/${patientId}`)).json;
        const res = await server.request('PATCH', `/fhir/Patient/${patientId}`, { body: JSON.stringify(row.ops), headers: PATCH });
        expect(res.status, res.text.slice(0, 300)).to.be.below(500);
        if (row.status !== undefined) expect(res.status, res.text.slice(0, 300)).to.equal(row.status);
        if (res.status >= 400) {
          expect(res.json.resourceType).to.equal('OperationOutcome');
          expect((await server.request('GET', `/fhir/Patient/${patientId}`)).json).to.deep.equal(before);
        } else {
          // Whatever a patch does to meta, the server writes the version and its meta itself: a
          // patch of versionId or lastUpdated alone changes no content, so no version is written.
          expect(res.json.meta.versionId).to.equal(before.meta.versionId);
        }
      });
    }
  });

  describe('methods outside the FHIR RESTful API', () => {
    for (const [method, path] of [['TRACE', '/fhir/Patient'], ['TRACE', `/fhir/Patient/${'x'}`], ['TRACE', '/'], ['PROPFIND', '/fhir/Patient'], ['CONNECT', '/fhir/Patient']] as const) {
      it(`${method} ${path} → 405 with Allow and an OperationOutcome`, async () => {
        const res = await rawRequest(server.port, method, path);
        expect(res.status).to.equal(405);
        expect(res.allow).to.contain('GET');
        expect(res.json.resourceType).to.equal('OperationOutcome');
        expect(res.json.issue[0].code).to.equal('not-supported');
      });
    }

    it('OPTIONS answers with the methods (it is how clients and CORS ask)', async () => {
      const res = await rawRequest(server.port, 'OPTIONS', '/fhir/Patient');
      expect(res.status).to.equal(204);
      expect(res.allow).to.contain('POST');
    });
  });

  it('every limit is configuration, read from the environment', () => {
    const config = loadConfig({
      MAX_FORM_BODY_BYTES: '2048', MAX_ELEMENT_REPETITIONS: '7', SEARCH_MAX_SORT_KEYS: '3',
      SEARCH_MAX_OR_VALUES: '4', SEARCH_MAX_AND_REPETITIONS: '5', SEARCH_MAX_PARAMETERS: '6', LEDGER: 'off',
    });
    expect([config.maxFormBodyBytes, config.maxElementRepetitions, config.searchMaxSortKeys, config.searchMaxOrValues,
      config.searchMaxAndRepetitions, config.searchMaxParameters]).to.deep.equal([2048, 7, 3, 4, 5, 6]);
    const defaults = loadConfig({ LEDGER: 'off' });
    expect([defaults.maxFormBodyBytes, defaults.maxElementRepetitions, defaults.searchMaxSortKeys, defaults.searchMaxOrValues,
      defaults.searchMaxAndRepetitions, defaults.searchMaxParameters]).to.deep.equal([65536, 1000, 8, 100, 16, 100]);
    expect(() => loadConfig({ SEARCH_MAX_OR_VALUES: '0', LEDGER: 'off' })).to.throw(/SEARCH_MAX_OR_VALUES/);
  });
});
