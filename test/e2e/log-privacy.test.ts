/**
 * Issue (de-identification): "No identifier reaches a log line or an error message".
 *
 * The real server logs to an in-memory stream while requests carry distinctive identifier
 * strings in path ids, search values, bodies and bad input. No response to bad input may
 * echo them (while still saying what was wrong), and no log line may contain them at all.
 */
import { expect } from 'chai';
import { pino } from 'pino';
import { startTestServer, type TestServer } from '../support/test-server.js';

const MRN = 'MRN-778899';
const GIVEN = 'Zebulon';
const FAMILY = 'Quxworthy';
const BIRTH_DATE = '1931-02-03';
const SECRETS = [MRN, GIVEN, FAMILY, BIRTH_DATE];
const MRN_SYSTEM = 'http://hospital.example/mrn';

const patient = {
  resourceType: 'Patient',
  id: MRN,
  identifier: [{ system: MRN_SYSTEM, value: MRN }],
  name: [{ family: FAMILY, given: [GIVEN] }],
  birthDate: BIRTH_DATE,
};

interface BadInput {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  /** What the OperationOutcome still has to say. */
  says: RegExp;
}

const strict = { Prefer: 'handling=strict' };
const q = encodeURIComponent;

const BAD_INPUT: BadInput[] = [
  { name: 'malformed JSON with the name in it', method: 'POST', path: '/fhir/Patient',
    body: `{"resourceType":"Patient","name":[{"family": ${FAMILY}, "given": ["${GIVEN}"]}]}`, status: 400, says: /^Malformed JSON/ },
  { name: 'malformed JSON cut off after the name', method: 'POST', path: '/fhir/Patient',
    body: `{"resourceType":"Patient","name":[{"family": "${FAMILY}"`, status: 400, says: /^Malformed JSON/ },
  { name: 'invalid id in the URL', method: 'PUT', path: `/fhir/Patient/${q(`${MRN} ${FAMILY}`)}`,
    body: { ...patient, id: `${MRN} ${FAMILY}` }, status: 400, says: /Invalid resource id/ },
  { name: 'invalid id on read', method: 'GET', path: `/fhir/Patient/${q(`${FAMILY}*${MRN}`)}`, status: 400, says: /Invalid resource id/ },
  { name: 'body id does not match the URL id', method: 'PUT', path: '/fhir/Patient/other-id', body: patient,
    status: 400, says: /does not match the id in the URL/ },
  { name: 'body resourceType does not match the endpoint', method: 'POST', path: '/fhir/Patient',
    body: { resourceType: FAMILY, id: MRN }, status: 400, says: /resourceType does not match the endpoint Patient/ },
  { name: 'another resource type in the body of a PUT', method: 'PUT', path: `/fhir/Patient/${MRN}`,
    body: { resourceType: 'Observation', id: MRN, status: 'final', code: { text: FAMILY } }, status: 400, says: /does not match the endpoint Patient/ },
  { name: 'unknown id', method: 'GET', path: `/fhir/Patient/${FAMILY}-${MRN}`, status: 404, says: /No Patient with this id exists/ },
  { name: 'unknown id in history', method: 'GET', path: `/fhir/Patient/${FAMILY}-${MRN}/_history`, status: 404, says: /No Patient with this id exists/ },
  { name: 'unknown resource type', method: 'GET', path: `/fhir/${FAMILY}/${MRN}`, status: 404, says: /Unknown resource type/ },
  { name: 'version that is not a number', method: 'GET', path: `/fhir/Patient/${MRN}/_history/${FAMILY}`, status: 404, says: /version does not exist/ },
  { name: 'version that does not exist', method: 'GET', path: `/fhir/Patient/${MRN}/_history/778899`, status: 404, says: /version does not exist/ },
  { name: 'URL that matches no interaction', method: 'GET', path: `/fhir/Patient/${MRN}/_history/1/${FAMILY}`, status: 404, says: /No FHIR interaction for GET/ },
  { name: 'date search value that is not a date', method: 'GET', path: `/fhir/Patient?birthdate=${FAMILY}${BIRTH_DATE}`, status: 400, says: /'birthdate': expected a FHIR date/ },
  { name: 'token search value with too many parts', method: 'GET', path: `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${MRN}|${FAMILY}`)}`, status: 400, says: /'identifier': expected a code/ },
  { name: 'number search value that is not a number', method: 'GET', path: `/fhir/RiskAssessment?probability=${MRN}`, status: 400, says: /'probability': expected a decimal/ },
  { name: '_count that is not a number', method: 'GET', path: `/fhir/Patient?_count=${MRN}`, status: 400, says: /'_count': expected a non-negative integer/ },
  { name: 'parameter name that is not a name', method: 'GET', path: `/fhir/Patient?${q(`${FAMILY} ${MRN}`)}=1`, headers: strict, status: 400, says: /Unknown search parameter \(not a valid name\)/ },
  { name: 'modifier that is not a modifier', method: 'GET', path: `/fhir/Patient?name:${q(`${FAMILY} ${MRN}`)}=1`, headers: strict, status: 400, says: /Modifier \(not a valid name\) is not supported for parameter 'name'/ },
  { name: '_sort by something that is not a name', method: 'GET', path: `/fhir/Patient?_sort=${q(`${FAMILY} ${MRN}`)}`, headers: strict, status: 400, says: /Cannot sort by \(not a valid name\)/ },
  { name: 'conditional create naming another type', method: 'POST', path: '/fhir/Patient', body: { resourceType: 'Patient' },
    headers: { 'If-None-Exist': `${FAMILY}?identifier=${MRN}` }, status: 400, says: /Conditional criteria name another resource type; expected Patient/ },
  { name: 'unknown element whose name is an identifier', method: 'POST', path: '/fhir/Patient',
    body: { resourceType: 'Patient', [`${FAMILY} ${MRN}`]: { value: null } }, status: 422, says: /Unknown element '\(invalid element name\)'/ },
  { name: 'date element that is not a date', method: 'POST', path: '/fhir/Patient',
    body: { resourceType: 'Patient', birthDate: `${FAMILY}-${BIRTH_DATE}` }, status: 422, says: /not a valid FHIR date/ },
  { name: 'code element that is not a code of its value set', method: 'POST', path: '/fhir/Patient',
    body: { resourceType: 'Patient', gender: MRN }, status: 422, says: /Invalid code: must be one of/ },
  { name: 'id element that is not an id', method: 'POST', path: '/fhir/Patient/$validate',
    body: { resourceType: 'Patient', id: `${FAMILY} ${MRN}` }, status: 200, says: /not a valid FHIR id/ },
  { name: 'JSON Patch on a path that does not exist', method: 'PATCH', path: `/fhir/Patient/${MRN}`,
    body: JSON.stringify([{ op: 'replace', path: '/gender/0', value: FAMILY }]), headers: { 'Content-Type': 'application/json-patch+json' },
    status: 400, says: /JSON Patch could not be applied/ },
  { name: 'transaction touching one id twice', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: { resourceType: 'Patient', id: `${FAMILY}-1` }, request: { method: 'PUT', url: `Patient/${FAMILY}-1` } },
    { resource: { resourceType: 'Patient', id: `${FAMILY}-1` }, request: { method: 'PUT', url: `Patient/${FAMILY}-1` } },
  ] }, status: 400, says: /Bundle.entry\[0\] and Bundle.entry\[1\] both modify the same Patient/ },
  { name: 'transaction entry with a URL this server cannot process', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'transaction', entry: [
    { request: { method: 'GET', url: `${FAMILY}/${MRN}/x/y/z` } },
  ] }, status: 400, says: /request.url: No FHIR interaction for GET on this URL/ },
  { name: 'transaction entry reading an unknown id', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'batch', entry: [
    { request: { method: 'GET', url: `Patient/${FAMILY}-${MRN}` } },
  ] }, status: 200, says: /No Patient with this id exists/ },
  { name: 'transaction with a conditional reference of an unknown type', method: 'POST', path: '/fhir', body: { resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `${FAMILY}?identifier=${MRN}` } },
      request: { method: 'POST', url: 'Observation' } },
  ] }, status: 404, says: /Unknown resource type/ },
];

/** Every diagnostics text in a response (an OperationOutcome, or a batch's entry outcomes). */
function diagnosticsOf(json: any): string[] {
  if (json?.resourceType === 'OperationOutcome') return json.issue.map((i: any) => i.diagnostics ?? '');
  if (json?.resourceType === 'Bundle') return (json.entry ?? []).flatMap((e: any) => diagnosticsOf(e.response?.outcome));
  return [];
}

describe('log and error privacy (e2e)', () => {
  let server: TestServer;
  const logChunks: string[] = [];
  const logText = () => logChunks.join('');
  const logLines = () => logText().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    const logger = pino({ level: 'trace' }, { write: (chunk: string) => { logChunks.push(chunk); } });
    server = await startTestServer({}, logger);
    const put = await server.request('PUT', `/fhir/Patient/${MRN}`, { body: patient });
    expect(put.status, put.text).to.equal(201);
  });
  after(async () => server.stop());

  describe('OperationOutcomes do not echo identified input', () => {
    for (const c of BAD_INPUT) {
      it(`${c.name} → ${c.status}, says what is wrong, echoes nothing`, async () => {
        const res = await server.request(c.method, c.path, { ...(c.body !== undefined ? { body: c.body } : {}), ...(c.headers ? { headers: c.headers } : {}) });
        expect(res.status, res.text.slice(0, 500)).to.equal(c.status);
        const diagnostics = diagnosticsOf(res.json);
        expect(diagnostics.some((d) => c.says.test(d)), diagnostics.join(' / ')).to.equal(true);
        for (const secret of SECRETS) expect(res.text, res.text).to.not.include(secret);
      });
    }
  });

  describe('request log lines', () => {
    it('carry no identifier from ids, search values, bodies or bad input', async () => {
      const requests: [string, string, unknown?][] = [
        ['GET', `/fhir/Patient/${MRN}`],
        ['GET', `/fhir/Patient/${MRN}/_history`],
        ['GET', `/fhir/Patient/${MRN}/_history/1`],
        ['GET', `/fhir/Patient/${MRN}/Observation?code=${MRN}`],
        ['GET', `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${MRN}`)}`],
        ['GET', `/fhir/Patient?name=${FAMILY}&_count=5`],
        ['GET', `/fhir/Patient?name:exact=${GIVEN}&birthdate=${BIRTH_DATE}&_sort=-birthdate`],
        ['GET', `/fhir/Patient?_id=${MRN}&_summary=count`],
        ['GET', `/fhir/Observation?subject=Patient/${MRN}&subject:Patient.name=${FAMILY}`],
        // A name that is not shaped like a parameter name is masked too (a plausible one is shown).
        ['GET', `/fhir/Patient?${q(`${GIVEN} ${FAMILY}`)}=${q(MRN)}`],
        ['GET', `/fhir/${FAMILY}/${MRN}`],
        ['GET', `/${FAMILY}/${MRN}?birthdate=${BIRTH_DATE}`],
        ['DELETE', `/fhir/Patient?identifier=${q(`${MRN_SYSTEM}|${FAMILY}`)}`],
      ];
      for (const [method, path] of requests) await server.request(method, path);
      const form = await server.request('POST', '/fhir/Patient/_search', {
        body: `identifier=${q(`${MRN_SYSTEM}|${MRN}`)}&name=${FAMILY}`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      expect(form.status).to.equal(200);
      expect(form.json.total ?? form.json.entry?.length).to.equal(1);

      const text = logText();
      expect(text.length).to.be.greaterThan(0);
      for (const secret of SECRETS) expect(text, `log contains ${secret}`).to.not.include(secret);
    });

    it('name the route and the query parameters, with values masked', () => {
      const lines = logLines().filter((l) => l.msg === 'request');
      const seen = lines.map((l) => `${l.method} ${l.route}${l.query !== undefined ? `?${l.query}` : ''} ${l.status}`);
      expect(seen).to.include('PUT /fhir/Patient/:id 201');
      expect(seen).to.include('GET /fhir/Patient/:id/_history/:vid 200');
      expect(seen).to.include('GET /fhir/Patient/:id/Observation?code=*** 200');
      expect(seen).to.include('GET /fhir/Patient?identifier=*** 200');
      expect(seen).to.include('GET /fhir/Patient?name=***&_count=5 200');
      expect(seen).to.include('GET /fhir/Patient?name:exact=***&birthdate=***&_sort=-birthdate 200');
      expect(seen).to.include('GET /fhir/Patient?***=*** 200');
      expect(seen).to.include('GET /fhir/:type/:id 404');
      expect(seen).to.include('GET /:segment/:segment?birthdate=*** 404');
      expect(seen).to.include('POST /fhir/Patient/_search 200');
      for (const line of lines) {
        expect(Object.keys(line).sort()).to.deep.equal(
          ['durationMs', 'hostname', 'level', 'method', 'msg', 'pid', 'route', 'status', 'time', ...(line.query !== undefined ? ['query'] : [])].sort());
      }
    });

    it('log a 4xx as a normal line, without its message', () => {
      const lines = logLines();
      expect(lines.filter((l) => l.msg === 'request' && typeof l.status === 'number' && l.status >= 400).length).to.be.greaterThan(10);
      expect(lines.filter((l) => l.msg === 'request failed')).to.deep.equal([]);
      expect(logText()).to.not.match(/Malformed JSON|does not match|Invalid resource id|OperationOutcome/);
    });
  });
});
