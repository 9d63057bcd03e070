/**
 * The Bundles the server returns: searchset paging links (search.html#paging), the searchset
 * outcome entry (search.html#errors) and history entries (http.html#history).
 */
import { expect } from 'chai';
import {
  historyBundle, pagingLinks, searchsetBundle, statusLine, versionLocation, weakETag, type BundleLink, type VersionView,
} from '../../src/fhir/bundle-builders.js';

const BASE = 'http://example.org/fhir';
const SELF = `${BASE}/Patient`;

function link(links: BundleLink[], relation: string): URL | undefined {
  const found = links.filter((l) => l.relation === relation);
  expect(found.length, `at most one ${relation} link`).to.be.at.most(1);
  return found[0] ? new URL(found[0].url) : undefined;
}

function offsetOf(url: URL | undefined): string | null | undefined {
  return url === undefined ? undefined : url.searchParams.get('_offset');
}

function version(id: string, versionId: number, json: object | null, lastUpdated = '2024-05-01T10:00:00.000Z'): VersionView {
  return { resourceType: 'Patient', id, versionId, lastUpdated, deleted: json === null, json: json === null ? null : JSON.stringify(json) };
}

describe('bundle-builders', () => {
  describe('pagingLinks', () => {
    const params: [string, string][] = [['name', 'Lee'], ['identifier', 'urn:x|1'], ['_count', '10'], ['_offset', '20']];

    it('gives absolute URLs that keep every other parameter and rewrite _offset', () => {
      const links = pagingLinks(SELF, params, 20, 10, 10, 45);
      expect(links.map((l) => l.relation)).to.deep.equal(['self', 'first', 'previous', 'next']);
      for (const l of links) {
        const url = new URL(l.url); // throws on a relative URL
        expect(`${url.origin}${url.pathname}`).to.equal(SELF);
        expect(url.searchParams.get('name')).to.equal('Lee');
        expect(url.searchParams.get('identifier')).to.equal('urn:x|1');
        expect(url.searchParams.get('_count')).to.equal('10');
        expect(url.searchParams.getAll('_offset').length, 'one _offset at most').to.be.at.most(1);
      }
      expect(offsetOf(link(links, 'self'))).to.equal('20');
      expect(offsetOf(link(links, 'first'))).to.equal(null);
      expect(offsetOf(link(links, 'previous'))).to.equal('10');
      expect(offsetOf(link(links, 'next'))).to.equal('30');
    });

    it('keeps repeated parameters (AND) in order', () => {
      const links = pagingLinks(SELF, [['gender', 'male'], ['gender', 'female']], 0, 10, 10, undefined);
      expect(link(links, 'next')!.searchParams.getAll('gender')).to.deep.equal(['male', 'female']);
    });

    const rows: { why: string; offset: number; pageLength: number; total: number | undefined; previous?: string | null; next?: string }[] = [
      { why: 'first page with a total and more to come', offset: 0, pageLength: 10, total: 25, next: '10' },
      { why: 'last page with a total', offset: 20, pageLength: 5, total: 25, previous: '10' },
      { why: 'a page ending exactly at the total', offset: 10, pageLength: 10, total: 20, previous: null },
      { why: 'a second page with a short previous', offset: 5, pageLength: 10, total: 40, previous: null, next: '15' },
      { why: 'a full page without a total (there may be more)', offset: 0, pageLength: 10, total: undefined, next: '10' },
      { why: 'a short page without a total', offset: 30, pageLength: 3, total: undefined, previous: '20' },
      { why: 'an empty result', offset: 0, pageLength: 0, total: 0 },
    ];
    for (const row of rows) {
      it(`${row.why}`, () => {
        const links = pagingLinks(SELF, [['name', 'Lee']], row.offset, 10, row.pageLength, row.total);
        expect(link(links, 'self')).to.not.equal(undefined);
        expect(offsetOf(link(links, 'first'))).to.equal(null);
        expect(offsetOf(link(links, 'previous'))).to.equal(row.previous);
        expect(offsetOf(link(links, 'next'))).to.equal(row.next);
      });
    }

    it('with _count=0 gives only self', () => {
      const links = pagingLinks(SELF, [['_count', '0']], 0, 0, 0, 12);
      expect(links).to.deep.equal([{ relation: 'self', url: `${SELF}?_count=0` }]);
    });

    it('without parameters the self link is the bare search URL', () => {
      expect(pagingLinks(SELF, [], 0, 10, 2, 2)).to.deep.equal([
        { relation: 'self', url: SELF },
        { relation: 'first', url: SELF },
      ]);
    });
  });

  describe('searchsetBundle', () => {
    const asMatches = (versions: VersionView[]) => versions.map((v) => ({ version: v, resource: JSON.parse(v.json!), mode: 'match' as const }));
    const matches = [version('a', 2, { resourceType: 'Patient', id: 'a' }), version('b', 1, { resourceType: 'Patient', id: 'b' })];
    const links: BundleLink[] = [{ relation: 'self', url: SELF }];

    it('lists matches with fullUrl and search.mode match', () => {
      const bundle = searchsetBundle(BASE, asMatches(matches), 2, links, []) as any;
      expect(bundle).to.deep.include({ resourceType: 'Bundle', type: 'searchset', total: 2, link: links });
      expect(bundle.entry).to.deep.equal([
        { fullUrl: `${BASE}/Patient/a`, resource: { resourceType: 'Patient', id: 'a' }, search: { mode: 'match' } },
        { fullUrl: `${BASE}/Patient/b`, resource: { resourceType: 'Patient', id: 'b' }, search: { mode: 'match' } },
      ]);
    });

    it('reports ignored parameters in one OperationOutcome entry with search.mode outcome', () => {
      const ignored = [
        { name: 'shoe-size', reason: "Unknown search parameter 'shoe-size' for Patient" },
        { name: 'name:above', reason: "Modifier ':above' is not supported" },
      ];
      const bundle = searchsetBundle(BASE, asMatches(matches), undefined, links, ignored) as any;
      expect(bundle).to.not.have.property('total');
      expect(bundle.entry).to.have.length(3);
      const outcome = bundle.entry[2];
      expect(outcome.search).to.deep.equal({ mode: 'outcome' });
      expect(outcome.resource.resourceType).to.equal('OperationOutcome');
      expect(outcome.resource.issue.map((i: any) => [i.severity, i.code, i.diagnostics])).to.deep.equal([
        ['warning', 'not-supported', ignored[0]!.reason],
        ['warning', 'not-supported', ignored[1]!.reason],
      ]);
    });

    it('an empty result has no entry, but still its outcome when something was ignored', () => {
      expect(searchsetBundle(BASE, [], 0, links, [])).to.not.have.property('entry');
      const withOutcome = searchsetBundle(BASE, [], 0, links, [{ name: 'x', reason: 'r' }]) as any;
      expect(withOutcome.entry.map((e: any) => e.search.mode)).to.deep.equal(['outcome']);
    });
  });

  describe('historyBundle', () => {
    const versions = [
      version('p1', 3, null, '2024-05-03T00:00:00.000Z'),
      version('p1', 2, { resourceType: 'Patient', id: 'p1', active: false }, '2024-05-02T00:00:00.000Z'),
      version('p1', 1, { resourceType: 'Patient', id: 'p1', active: true }, '2024-05-01T00:00:00.000Z'),
    ];

    it('gives each version its request, response status and weak ETag', () => {
      const bundle = historyBundle(BASE, versions, 7, [{ relation: 'self', url: `${BASE}/Patient/p1/_history` }]) as any;
      expect(bundle).to.deep.include({ resourceType: 'Bundle', type: 'history', total: 7 });
      const [deleted, updated, created] = bundle.entry;

      expect(deleted).to.not.have.property('resource');
      expect(deleted.fullUrl).to.equal(`${BASE}/Patient/p1`);
      expect(deleted.request).to.deep.equal({ method: 'DELETE', url: 'Patient/p1' });
      expect(deleted.response).to.deep.equal({ status: '204 No Content', etag: 'W/"3"', lastModified: '2024-05-03T00:00:00.000Z' });

      expect(updated.resource).to.deep.equal({ resourceType: 'Patient', id: 'p1', active: false });
      expect(updated.request).to.deep.equal({ method: 'PUT', url: 'Patient/p1' });
      expect(updated.response).to.deep.include({ status: '200 OK', etag: 'W/"2"' });

      expect(created.resource).to.deep.equal({ resourceType: 'Patient', id: 'p1', active: true });
      expect(created.request).to.deep.equal({ method: 'POST', url: 'Patient' });
      expect(created.response).to.deep.include({ status: '201 Created', etag: 'W/"1"' });
    });

    it('an empty history has a total and no entry', () => {
      const bundle = historyBundle(BASE, [], 0, []);
      expect(bundle).to.deep.include({ type: 'history', total: 0 });
      expect(bundle).to.not.have.property('entry');
    });
  });

  describe('small helpers', () => {
    it('versionLocation, weakETag and statusLine', () => {
      expect(versionLocation(BASE, version('x', 4, {}))).to.equal(`${BASE}/Patient/x/_history/4`);
      expect(weakETag(12)).to.equal('W/"12"');
      expect(statusLine(412)).to.equal('412 Precondition Failed');
      expect(statusLine(201)).to.equal('201 Created');
      expect(statusLine(418)).to.equal('418');
    });
  });
});
