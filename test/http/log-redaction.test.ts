/**
 * The request log's view of a URL (issue: de-identification): ids and versions masked in the
 * route, every query value masked except result-control parameters, client text that is not a
 * parameter name masked too.
 */
import { expect } from 'chai';
import { redactQuery, redactRequestUrl, redactRoute } from '../../src/http/log-redaction.js';

const TYPES = new Set(['Patient', 'Observation', 'RiskAssessment', 'Bundle']);
const isResourceType = (s: string) => TYPES.has(s);

const ROUTES: [string, string][] = [
  ['/fhir', '/fhir'],
  ['/fhir/', '/fhir'],
  ['/fhir/metadata', '/fhir/metadata'],
  ['/fhir/_history', '/fhir/_history'],
  ['/fhir/_search', '/fhir/_search'],
  ['/fhir/$ledger', '/fhir/$ledger'],
  ['/fhir/Patient', '/fhir/Patient'],
  ['/fhir/Patient/_history', '/fhir/Patient/_history'],
  ['/fhir/Observation/_search', '/fhir/Observation/_search'],
  ['/fhir/Patient/$validate', '/fhir/Patient/$validate'],
  ['/fhir/Patient/MRN12345', '/fhir/Patient/:id'],
  ['/fhir/Patient/MRN12345/', '/fhir/Patient/:id'],
  ['/fhir/Patient/MRN12345/_history', '/fhir/Patient/:id/_history'],
  ['/fhir/Patient/MRN12345/_history/3', '/fhir/Patient/:id/_history/:vid'],
  ['/fhir/Patient/MRN12345/_history/MRN999', '/fhir/Patient/:id/_history/:vid'],
  ['/fhir/Patient/MRN12345/_history/3/$verify', '/fhir/Patient/:id/_history/:vid/$verify'],
  ['/fhir/Patient/MRN12345/$verify', '/fhir/Patient/:id/$verify'],
  ['/fhir/Patient/MRN12345/%24verify', '/fhir/Patient/:id/$verify'],
  ['/fhir/Patient/MRN12345/$validate', '/fhir/Patient/:id/$validate'],
  ['/fhir/Patient/MRN12345/Observation', '/fhir/Patient/:id/Observation'],
  // Ids that look like the grammar's words are still in an id position.
  ['/fhir/Patient/metadata', '/fhir/Patient/:id'],
  ['/fhir/Patient/Observation', '/fhir/Patient/:id'],
  // 404s: unknown types, unknown operations, extra segments, paths outside /fhir.
  ['/fhir/Spaceship/1', '/fhir/:type/:id'],
  ['/fhir/Quxworthy', '/fhir/:type'],
  ['/fhir/MRN12345', '/fhir/:type'],
  ['/fhir/$MRN12345', '/fhir/:type'],
  ['/fhir/Patient/$quxworthy', '/fhir/Patient/:id'],
  ['/fhir/Patient/MRN12345/Quxworthy', '/fhir/Patient/:id/:type'],
  ['/fhir/Patient/MRN12345/$quxworthy', '/fhir/Patient/:id/:type'],
  ['/fhir/Patient/MRN12345/Observation/MRN678', '/fhir/Patient/:id/Observation/:segment'],
  ['/fhir/Patient/MRN12345/_history/3/MRN678', '/fhir/Patient/:id/_history/:vid/:segment'],
  ['/fhir/metadata/MRN12345', '/fhir/metadata/:segment'],
  ['/fhir/Patient/has%20space', '/fhir/Patient/:id'],
  ['/fhir/Patient/%E0%A4%A', '/fhir/Patient/:id'],
  ['/', '/'],
  ['/MRN12345', '/:segment'],
  ['/favicon.ico', '/:segment'],
  ['/Patient/MRN12345', '/:segment/:segment'],
];

const QUERIES: [string, string][] = [
  ['', ''],
  ['name=Quxworthy', 'name=***'],
  ['name:exact=Zebulon%20Quxworthy', 'name:exact=***'],
  ['identifier=http://hospital.example/mrn|MRN-778899', 'identifier=***'],
  ['identifier=http%3A%2F%2Fhospital.example%2Fmrn%7CMRN-778899', 'identifier=***'],
  ['birthdate=1931-02-03&gender=female', 'birthdate=***&gender=***'],
  ['_id=MRN12345', '_id=***'],
  ['subject=Patient/MRN12345', 'subject=***'],
  ['subject:Patient.name=Quxworthy', 'subject:Patient.name=***'],
  ['_has:Observation:patient:code=1234-5', '_has:Observation:patient:code=***'],
  ['phone=555-0100&email=z%40example.org&address=1%20Main%20St', 'phone=***&email=***&address=***'],
  ['_tag=urn:x|MRN1&_profile=http://x&_security=R', '_tag=***&_profile=***&_security=***'],
  // Result-control parameters keep their values.
  ['_count=10&_offset=20', '_count=10&_offset=20'],
  ['_sort=-birthdate,name&_summary=count&_total=accurate', '_sort=-birthdate,name&_summary=count&_total=accurate'],
  ['_elements=name,gender&_include=Observation:subject:Patient', '_elements=name,gender&_include=Observation:subject:Patient'],
  ['_include:iterate=Observation:subject&_revinclude=Observation:subject', '_include:iterate=Observation:subject&_revinclude=Observation:subject'],
  ['_format=application/fhir%2Bjson&_pretty=true', '_format=application/fhir%2Bjson&_pretty=true'],
  ['_snapshot=1712345678901&_contained=both&_containedType=container', '_snapshot=1712345678901&_contained=both&_containedType=container'],
  // …unless the value does not have the shape of one.
  ['_count=MRN12345', '_count=***'],
  ['_sort=Zebulon%20Quxworthy', '_sort=***'],
  ['_elements=' + 'a'.repeat(201), '_elements=***'],
  // Names are client text too: only plausible names are shown.
  ['Zebulon%20Quxworthy=1', '***=***'],
  ['%27%20OR%201%3D1=1', '***=***'],
  ['1931-02-03=x', '***=***'],
  [`${'a'.repeat(101)}=1`, '***=***'],
  ['flag', 'flag=***'],
  ['name=a&name=b', 'name=***&name=***'],
  ['a%26b=1', '***=***'],
];

describe('log redaction', () => {
  describe('redactRoute', () => {
    for (const [path, route] of ROUTES) {
      it(`${path} → ${route}`, () => {
        expect(redactRoute(path, isResourceType)).to.equal(route);
      });
    }
  });

  describe('redactQuery', () => {
    for (const [query, redacted] of QUERIES) {
      it(`${query.slice(0, 80) || '(empty)'} → ${redacted.slice(0, 80) || '(empty)'}`, () => {
        expect(redactQuery(query)).to.equal(redacted);
      });
    }
  });

  it('redactRequestUrl gives a query only when there is one', () => {
    expect(redactRequestUrl('/fhir/Patient/MRN12345', '', isResourceType)).to.deep.equal({ route: '/fhir/Patient/:id' });
    expect(redactRequestUrl('/fhir/Patient', 'name=Quxworthy&_count=5', isResourceType))
      .to.deep.equal({ route: '/fhir/Patient', query: 'name=***&_count=5' });
  });

  it('never lets a distinctive string through, whatever the URL', () => {
    const secret = 'Quxworthy778899';
    const paths = ['', '/x', '/$y', '/_history', '/_history/z'].flatMap((suffix) => [
      `/fhir/${secret}${suffix}`, `/fhir/Patient/${secret}${suffix}`, `/fhir/Patient/1/${secret}${suffix}`,
      `/fhir/Patient/1/_history/${secret}${suffix}`, `/${secret}${suffix}`,
    ]);
    for (const path of paths) expect(redactRoute(path, isResourceType), path).to.not.include(secret);
    // A name is shown when it is shaped like a parameter name; client text with a space is not.
    const names = ['name', 'identifier', '_id', 'birthdate', '_count', '_sort', '_elements', '_format', 'x:y', `${secret} x`];
    for (const name of names) {
      for (const value of [secret, `${secret} ${secret}`, `a|${secret}`, `Patient/${secret}`]) {
        const query = new URLSearchParams([[name, value]]).toString();
        const redacted = redactQuery(query);
        expect(redacted.startsWith(name.includes(' ') ? '***=' : `${name}=`), redacted).to.equal(true);
        if (!['_sort', '_elements', '_format'].includes(name) || value.includes(' ')) {
          expect(redacted, query).to.not.include(secret);
        }
      }
    }
  });
});
