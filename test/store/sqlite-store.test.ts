/**
 * SqliteStore on a real SQLite file in a temporary folder (DESIGN.md rule 5: no mocks):
 * versions, history, all-or-nothing transactions inside a group commit, race-free
 * check-then-write, durability across close/reopen, index replacement, deletes, and the
 * coherence of the in-memory current-version cache.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Resource } from '../../src/fhir/resource.js';
import { SearchIndexExtractor } from '../../src/fhir/search-index/search-index-extractor.js';
import { SearchParameterRegistry } from '../../src/fhir/search-parameter-registry.js';
import { parseSearchQuery } from '../../src/fhir/search-query-parser.js';
import type { SearchQuery } from '../../src/fhir/search-query.js';
import { CurrentVersionCache } from '../../src/store/current-version-cache.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { NewVersion, StoredVersion, StoreTransaction } from '../../src/store/store.js';

const registry = SearchParameterRegistry.loadR4();
const extractor = new SearchIndexExtractor(registry);

/** A search as the REST layer would parse it; strict, so a typo in a test fails loudly. */
function query(resourceType: string | null, entries: [string, string][]): SearchQuery {
  return parseSearchQuery(resourceType, [...entries, ['_total', 'accurate']], registry, {
    defaultCount: 100, maxCount: 1000, strict: true,
  }).query;
}

function patient(id: string, family: string, identifier = `mrn-${id}`): Resource {
  return {
    resourceType: 'Patient', id, name: [{ family, given: ['Test'] }],
    identifier: [{ system: 'urn:test:mrn', value: identifier }], birthDate: '1970-01-01',
  };
}

function observation(id: string, code: string): Resource {
  return {
    resourceType: 'Observation', id, status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] }, subject: { reference: 'Patient/p1' },
  };
}

/** The version the service layer would write: meta owned by the server, index entries extracted. */
function versionOf(resource: Resource, versionId: number, lastUpdated = new Date().toISOString()): NewVersion {
  const stored: Resource = { ...resource, meta: { versionId: String(versionId), lastUpdated } };
  return {
    resourceType: resource.resourceType, id: resource.id!, versionId, lastUpdated,
    json: JSON.stringify(stored), indexEntries: extractor.extract(stored),
  };
}

function deletionOf(resourceType: string, id: string, versionId: number, lastUpdated = new Date().toISOString()): NewVersion {
  return { resourceType, id, versionId, lastUpdated, json: null, indexEntries: [] };
}

function familyOf(version: StoredVersion | undefined): string | undefined {
  return version?.json ? (JSON.parse(version.json) as { name: { family: string }[] }).name[0]!.family : undefined;
}

function ids(versions: StoredVersion[]): string[] {
  return versions.map((v) => v.id).sort();
}

describe('SqliteStore (real SQLite file)', function () {
  let dir: string;
  let file: string;
  const open: SqliteStore[] = [];

  function openStore(readCacheEntries = 1000): SqliteStore {
    const store = new SqliteStore({ file, synchronous: 'NORMAL', readCacheEntries });
    open.push(store);
    return store;
  }

  async function closeStore(store: SqliteStore): Promise<void> {
    open.splice(open.indexOf(store), 1);
    await store.close();
  }

  async function write(store: SqliteStore, ...versions: NewVersion[]): Promise<void> {
    await store.transaction(async (tx) => {
      for (const v of versions) await tx.writeVersion(v);
    });
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-sqlite-store-'));
    file = path.join(dir, 'nested', 'fhir.sqlite');
  });

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('versions', () => {
    it('reads the current version and every version by number', async () => {
      const store = openStore();
      await write(store, versionOf(patient('p1', 'Alpha'), 1, '2024-01-01T00:00:00.000Z'));
      await write(store, versionOf(patient('p1', 'Beta'), 2, '2024-01-02T00:00:00.000Z'));

      const current = await store.readCurrent('Patient', 'p1');
      expect(current).to.include({ resourceType: 'Patient', id: 'p1', versionId: 2, deleted: false, lastUpdated: '2024-01-02T00:00:00.000Z' });
      expect(familyOf(current)).to.equal('Beta');
      expect(JSON.parse(current!.json!).meta).to.deep.equal({ versionId: '2', lastUpdated: '2024-01-02T00:00:00.000Z' });

      const first = await store.readVersion('Patient', 'p1', 1);
      expect(first).to.include({ versionId: 1, deleted: false, lastUpdated: '2024-01-01T00:00:00.000Z' });
      expect(familyOf(first)).to.equal('Alpha');

      expect(await store.readVersion('Patient', 'p1', 3)).to.equal(undefined);
      expect(await store.readCurrent('Patient', 'p2')).to.equal(undefined);
      expect(await store.readCurrent('Observation', 'p1'), 'ids are per type').to.equal(undefined);
    });

    it('lets a transaction read its own writes before commit, and nobody else', async () => {
      const store = openStore();
      let insideRead: StoredVersion | undefined;
      let outsideRead: StoredVersion | undefined | 'not read' = 'not read';
      await store.transaction(async (tx) => {
        await tx.writeVersion(versionOf(patient('p1', 'Alpha'), 1));
        insideRead = await tx.readCurrent('Patient', 'p1');
        outsideRead = await store.readCurrent('Patient', 'p1');
      });
      expect(familyOf(insideRead)).to.equal('Alpha');
      expect(outsideRead, 'uncommitted writes are invisible to store reads').to.equal(undefined);
      expect(familyOf(await store.readCurrent('Patient', 'p1'))).to.equal('Alpha');
    });
  });

  describe('history', () => {
    it('is newest first, with a total, filtered by type, id and since', async () => {
      const store = openStore();
      await write(store, versionOf(patient('a', 'A1'), 1, '2024-01-01T00:00:00.000Z'));
      await write(store, versionOf(patient('b', 'B1'), 1, '2024-01-02T00:00:00.000Z'));
      await write(store, versionOf(observation('o', '1234-5'), 1, '2024-01-03T00:00:00.000Z'));
      await write(store, versionOf(patient('a', 'A2'), 2, '2024-01-04T00:00:00.000Z'));

      const label = (v: StoredVersion) => `${v.resourceType}/${v.id}/${v.versionId}`;

      const all = await store.history({ count: 10, offset: 0 });
      expect(all.total).to.equal(4);
      expect(all.versions.map(label)).to.deep.equal(['Patient/a/2', 'Observation/o/1', 'Patient/b/1', 'Patient/a/1']);

      const patients = await store.history({ resourceType: 'Patient', count: 10, offset: 0 });
      expect(patients.total).to.equal(3);
      expect(patients.versions.map(label)).to.deep.equal(['Patient/a/2', 'Patient/b/1', 'Patient/a/1']);

      const one = await store.history({ resourceType: 'Patient', id: 'a', count: 10, offset: 0 });
      expect(one.total).to.equal(2);
      expect(one.versions.map((v) => familyOf(v))).to.deep.equal(['A2', 'A1']);

      // http.html#history: _since includes versions at exactly that instant.
      const since = await store.history({ since: Date.parse('2024-01-02T00:00:00.000Z'), count: 10, offset: 0 });
      expect(since.total).to.equal(3);
      expect(since.versions.map(label)).to.deep.equal(['Patient/a/2', 'Observation/o/1', 'Patient/b/1']);

      const page = await store.history({ count: 2, offset: 1 });
      expect(page.total, 'total counts all versions, not the page').to.equal(4);
      expect(page.versions.map(label)).to.deep.equal(['Observation/o/1', 'Patient/b/1']);
    });
  });

  describe('transactions (group commit, one SAVEPOINT each)', () => {
    it('a transaction that throws keeps nothing; its neighbours in the same group commit still commit', async () => {
      const store = openStore();
      const seen: StoreTransaction[] = [];
      const failure = new Error('rejected by the service layer');

      // Started in the same tick, so they run inside one group commit, in this order.
      const first = store.transaction(async (tx) => {
        seen.push(tx);
        await tx.writeVersion(versionOf(patient('a', 'Kept'), 1));
        return 'first';
      });
      const failing = store.transaction(async (tx) => {
        seen.push(tx);
        await tx.writeVersion(versionOf(patient('a', 'Lost'), 2));
        await tx.writeVersion(versionOf(patient('b', 'Lost'), 1));
        // The first Observation ever: its search parameters are interned here, then rolled back.
        await tx.writeVersion(versionOf(observation('o-lost', '1111-1'), 1));
        expect(familyOf(await tx.readCurrent('Patient', 'a')), 'own write visible before the throw').to.equal('Lost');
        throw failure;
      });
      const third = store.transaction(async (tx) => {
        seen.push(tx);
        expect(familyOf(await tx.readCurrent('Patient', 'a')), 'the failed unit is already undone').to.equal('Kept');
        expect(await tx.readCurrent('Patient', 'b')).to.equal(undefined);
        await tx.writeVersion(versionOf(patient('c', 'Kept'), 1));
        await tx.writeVersion(versionOf(observation('o-kept', '1111-1'), 1));
        return 'third';
      });

      const results = await Promise.allSettled([first, failing, third]);
      expect(seen).to.have.length(3);
      expect(seen[1], 'same group commit').to.equal(seen[0]);
      expect(seen[2], 'same group commit').to.equal(seen[0]);
      expect(results[0]).to.deep.equal({ status: 'fulfilled', value: 'first' });
      expect(results[1]).to.deep.equal({ status: 'rejected', reason: failure });
      expect(results[2]).to.deep.equal({ status: 'fulfilled', value: 'third' });

      const check = async (s: SqliteStore): Promise<void> => {
        const a = await s.readCurrent('Patient', 'a');
        expect(a?.versionId).to.equal(1);
        expect(familyOf(a)).to.equal('Kept');
        expect(await s.readVersion('Patient', 'a', 2)).to.equal(undefined);
        expect(await s.readCurrent('Patient', 'b')).to.equal(undefined);
        expect(await s.readCurrent('Observation', 'o-lost')).to.equal(undefined);
        expect(familyOf(await s.readCurrent('Patient', 'c'))).to.equal('Kept');
        expect((await s.history({ count: 10, offset: 0 })).total).to.equal(3);
        expect(ids((await s.search(query('Patient', [['family', 'Lost']]))).versions)).to.deep.equal([]);
        expect(ids((await s.search(query('Patient', [['family', 'Kept']]))).versions)).to.deep.equal(['a', 'c']);
        expect(ids((await s.search(query('Observation', [['code', 'http://loinc.org|1111-1']]))).versions)).to.deep.equal(['o-kept']);
      };
      await check(store);
      // Reopened, the interned parameter ids come from the file: the rolled-back ones must not
      // have been reused by the neighbour without being written again.
      await closeStore(store);
      await check(openStore(0));
    });

    it('a conditional create (check, then write) by 20 concurrent transactions creates exactly one resource', async () => {
      const store = openStore();
      await write(store, versionOf(patient('other', 'Other', 'mrn-other'), 1));
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => store.transaction(async (tx) => {
        // FHIR R4 http.html#ccreate: If-None-Exist, evaluated inside the transaction.
        const found = await tx.search(query('Patient', [['identifier', 'urn:test:mrn|mrn-42']]));
        if (found.versions.length > 0) return `matched ${found.versions[0]!.id}`;
        await tx.writeVersion(versionOf(patient(`p${i}`, 'Racer', 'mrn-42'), 1));
        return 'created';
      })));
      expect(outcomes.filter((o) => o === 'created')).to.have.length(1);
      const created = `p${outcomes.indexOf('created')}`;
      expect(outcomes.filter((o) => o === `matched ${created}`)).to.have.length(19);

      const page = await store.search(query('Patient', [['identifier', 'urn:test:mrn|mrn-42']]));
      expect(page.total).to.equal(1);
      expect(ids(page.versions)).to.deep.equal([created]);
    });

    it('keeps nothing of a transaction that fails after awaiting something else, and the writer stays usable', async () => {
      const store = openStore();
      await write(store, versionOf(patient('a', 'Before'), 1));
      const outcome = await store.transaction(async (tx) => {
        await tx.writeVersion(versionOf(patient('a', 'After'), 2));
        await new Promise((resolve) => setTimeout(resolve, 5));
        JSON.parse('{');
      }).then(() => 'resolved', (error: unknown) => error);
      expect(outcome).to.be.instanceOf(SyntaxError);
      expect(familyOf(await store.readCurrent('Patient', 'a'))).to.equal('Before');
      // The writer is usable afterwards.
      await write(store, versionOf(patient('a', 'Later'), 2));
      expect(familyOf(await store.readCurrent('Patient', 'a'))).to.equal('Later');
    });
  });

  describe('durability', () => {
    it('after close() and reopening the same file, everything acknowledged is there (no cache involved)', async () => {
      const store = openStore();
      const acknowledged = await Promise.all(Array.from({ length: 30 }, (_, i) => store.transaction(async (tx) => {
        await tx.writeVersion(versionOf(patient(`p${i}`, `Family${i}`), 1));
        return `p${i}`;
      })));
      await Promise.all(acknowledged.slice(0, 10).map((id, i) => write(store, versionOf(patient(id, `Updated${i}`), 2))));
      await write(store, deletionOf('Patient', 'p29', 2));
      await closeStore(store);

      const reopened = openStore(0);
      for (let i = 0; i < 30; i++) {
        const current = await reopened.readCurrent('Patient', `p${i}`);
        if (i < 10) {
          expect(current?.versionId).to.equal(2);
          expect(familyOf(current)).to.equal(`Updated${i}`);
          expect(familyOf(await reopened.readVersion('Patient', `p${i}`, 1))).to.equal(`Family${i}`);
        } else if (i === 29) {
          expect(current).to.include({ versionId: 2, deleted: true, json: null });
        } else {
          expect(current?.versionId).to.equal(1);
          expect(familyOf(current)).to.equal(`Family${i}`);
        }
      }
      expect((await reopened.history({ count: 1, offset: 0 })).total).to.equal(41);
      expect((await reopened.search(query('Patient', []))).total).to.equal(29);
      expect(ids((await reopened.search(query('Patient', [['family', 'Updated3']]))).versions)).to.deep.equal(['p3']);
    });

    it('close() waits for transactions already submitted', async () => {
      const store = openStore();
      const submitted = Array.from({ length: 5 }, (_, i) => write(store, versionOf(patient(`q${i}`, 'Late'), 1)));
      await closeStore(store);
      await Promise.all(submitted);

      const reopened = openStore(0);
      expect(ids((await reopened.search(query('Patient', [['family', 'Late']]))).versions)).to.deep.equal(['q0', 'q1', 'q2', 'q3', 'q4']);
    });
  });

  describe('search index rows', () => {
    it('are replaced on update: the old value no longer matches, the new one does', async () => {
      const store = openStore();
      await write(store, versionOf(patient('p1', 'Oldfamily', 'mrn-1'), 1));
      await write(store, versionOf(patient('p2', 'Bystander', 'mrn-2'), 1));
      expect(ids((await store.search(query('Patient', [['family', 'Oldfamily']]))).versions)).to.deep.equal(['p1']);

      await write(store, versionOf(patient('p1', 'Newfamily', 'mrn-1b'), 2));
      const byOld = await store.search(query('Patient', [['family', 'Oldfamily']]));
      expect(byOld.total).to.equal(0);
      expect(byOld.versions).to.deep.equal([]);
      expect((await store.search(query('Patient', [['identifier', 'urn:test:mrn|mrn-1']]))).total).to.equal(0);

      const byNew = await store.search(query('Patient', [['family', 'Newfamily']]));
      expect(byNew.total).to.equal(1);
      expect(byNew.versions[0]).to.include({ id: 'p1', versionId: 2 });
      expect(familyOf(byNew.versions[0])).to.equal('Newfamily');
      expect(ids((await store.search(query('Patient', [['identifier', 'urn:test:mrn|mrn-1b']]))).versions)).to.deep.equal(['p1']);

      // Another resource's rows are untouched, and an unchanged value still matches once.
      expect(ids((await store.search(query('Patient', [['family', 'Bystander']]))).versions)).to.deep.equal(['p2']);
      expect((await store.search(query('Patient', [['birthdate', '1970']]))).total).to.equal(2);
    });

    it('a delete version: readCurrent shows it deleted and search no longer finds it', async () => {
      const store = openStore();
      await write(store, versionOf(patient('p1', 'Gone'), 1), versionOf(patient('p2', 'Gone'), 1));
      await write(store, deletionOf('Patient', 'p1', 2, '2024-06-01T00:00:00.000Z'));

      expect(await store.readCurrent('Patient', 'p1')).to.deep.equal({
        resourceType: 'Patient', id: 'p1', versionId: 2, lastUpdated: '2024-06-01T00:00:00.000Z', deleted: true, json: null,
      });
      expect(familyOf(await store.readVersion('Patient', 'p1', 1)), 'old versions stay readable').to.equal('Gone');
      expect(ids((await store.search(query('Patient', [['family', 'Gone']]))).versions)).to.deep.equal(['p2']);
      expect((await store.search(query('Patient', [['_id', 'p1']]))).total).to.equal(0);
      expect((await store.search(query('Patient', [['gender:missing', 'true']]))).total, 'a deleted resource is not found by :missing either').to.equal(1);

      const history = await store.history({ resourceType: 'Patient', id: 'p1', count: 10, offset: 0 });
      expect(history.versions.map((v) => [v.versionId, v.deleted, v.json === null])).to.deep.equal([[2, true, true], [1, false, false]]);

      // Re-creating after a delete indexes it again.
      await write(store, versionOf(patient('p1', 'Back'), 3));
      expect(ids((await store.search(query('Patient', [['family', 'Back']]))).versions)).to.deep.equal(['p1']);
    });
  });

  describe('system-level search', () => {
    it('matches the common parameters across types', async () => {
      const store = openStore();
      await write(store, versionOf(patient('p1', 'Lee'), 1), versionOf(patient('p2', 'Kim'), 1), versionOf(observation('o1', '1234-5'), 1));
      const page = await store.search(query(null, [['_id', 'p1,o1']]));
      expect(page.total).to.equal(2);
      expect(page.versions.map((v) => `${v.resourceType}/${v.id}`).sort()).to.deep.equal(['Observation/o1', 'Patient/p1']);
    });
  });

  describe('paging', () => {
    it('pages with _count/_offset, and the largest offset the parser accepts is an empty page, not an error', async () => {
      const store = openStore();
      await write(store, ...Array.from({ length: 5 }, (_, i) => versionOf(patient(`p${i}`, 'Page'), 1)));
      const page = await store.search(query('Patient', [['family', 'Page'], ['_count', '2'], ['_offset', '2']]));
      expect(page.total).to.equal(5);
      expect(page.versions.map((v) => v.id)).to.deep.equal(['p2', 'p3'], 'insertion order without _sort');
      const far = await store.search(query('Patient', [['_offset', String(Number.MAX_SAFE_INTEGER)]]));
      expect(far.versions).to.deep.equal([]);
      expect(far.total).to.equal(5);
    });

    it('later pages come from the first page\'s list, each resource as it was then', async () => {
      const store = openStore();
      await write(store, ...Array.from({ length: 5 }, (_, i) => versionOf(patient(`s${i}`, 'Snap'), 1)));
      const first = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2']]));
      expect(first.hasMore).to.equal(true);
      await write(store, versionOf(patient('s3', 'Other'), 2), deletionOf('Patient', 's4', 2), versionOf(patient('s9', 'Snap'), 1));
      const later = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2'], ['_offset', '2'], ['_snapshot', first.snapshot]]));
      expect(later.versions.map((v) => [v.id, v.versionId, familyOf(v)])).to.deep.equal([['s2', 1, 'Snap'], ['s3', 1, 'Snap']]);
      const last = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2'], ['_offset', '4'], ['_snapshot', first.snapshot]]));
      expect(last.versions.map((v) => [v.id, v.versionId, v.deleted])).to.deep.equal([['s4', 1, false]]);
      expect(last.hasMore).to.equal(false);
      expect(last.total).to.equal(5);
    });

    it('without the list (another process, or evicted), later pages still leave out what was created since', async () => {
      const writer = openStore();
      await write(writer, ...Array.from({ length: 4 }, (_, i) => versionOf(patient(`f${i}`, 'Fall'), 1)));
      const first = await writer.search(query('Patient', [['family', 'Fall'], ['_count', '2']]));
      await closeStore(writer);
      const reopened = openStore();
      await write(reopened, versionOf(patient('f8', 'Fall'), 1));
      const second = await reopened.search(query('Patient', [['family', 'Fall'], ['_count', '2'], ['_offset', '2'], ['_snapshot', first.snapshot]]));
      expect(second.versions.map((v) => v.id)).to.deep.equal(['f2', 'f3']);
      expect(second.hasMore).to.equal(false);
      expect(second.total).to.equal(4);
    });
  });

  describe('read cache coherence', () => {
    it('read (fills the cache), update, read again returns the new version', async () => {
      const store = openStore(100);
      await write(store, versionOf(patient('p1', 'First'), 1));
      expect((await store.readCurrent('Patient', 'p1'))?.versionId).to.equal(1);
      expect((await store.readCurrent('Patient', 'p1'))?.versionId).to.equal(1);

      await write(store, versionOf(patient('p1', 'Second'), 2));
      const after = await store.readCurrent('Patient', 'p1');
      expect(after?.versionId).to.equal(2);
      expect(familyOf(after)).to.equal('Second');

      await write(store, deletionOf('Patient', 'p1', 3));
      expect(await store.readCurrent('Patient', 'p1')).to.include({ versionId: 3, deleted: true });
    });

    it('a read while a write is in flight neither sees nor pins a stale or uncommitted version', async () => {
      const store = openStore(100);
      await write(store, versionOf(patient('p1', 'First'), 1));
      await store.readCurrent('Patient', 'p1');

      let releaseWork!: () => void;
      const workMayFinish = new Promise<void>((resolve) => { releaseWork = resolve; });
      let written!: () => void;
      const wroteInside = new Promise<void>((resolve) => { written = resolve; });
      const update = store.transaction(async (tx) => {
        await tx.writeVersion(versionOf(patient('p1', 'Second'), 2));
        written();
        await workMayFinish;
      });
      await wroteInside;
      expect((await store.readCurrent('Patient', 'p1'))?.versionId, 'not committed yet').to.equal(1);
      releaseWork();
      await update;
      expect((await store.readCurrent('Patient', 'p1'))?.versionId, 'committed').to.equal(2);
    });

    it('a rolled-back write never reaches the cache', async () => {
      const store = openStore(100);
      await write(store, versionOf(patient('p1', 'First'), 1));
      await store.readCurrent('Patient', 'p1');
      await store.transaction(async (tx) => {
        await tx.writeVersion(versionOf(patient('p1', 'Phantom'), 2));
        throw new Error('abort');
      }).catch(() => undefined);
      expect(familyOf(await store.readCurrent('Patient', 'p1'))).to.equal('First');
    });
  });

  describe('CurrentVersionCache', () => {
    const v = (id: string, versionId = 1): StoredVersion => ({
      resourceType: 'Patient', id, versionId, lastUpdated: '2024-01-01T00:00:00.000Z', deleted: false, json: '{}',
    });

    it('evicts the least recently used entry beyond its capacity', () => {
      const cache = new CurrentVersionCache(2);
      cache.set(v('a'));
      cache.set(v('b'));
      expect(cache.get('Patient', 'a')?.id).to.equal('a'); // a is now the most recently used
      cache.set(v('c'));
      expect(cache.get('Patient', 'b'), 'b was least recently used').to.equal(undefined);
      expect(cache.get('Patient', 'a')?.id).to.equal('a');
      expect(cache.get('Patient', 'c')?.id).to.equal('c');
    });

    it('when every entry was read since, the oldest goes (second chance), and the cache stays at capacity', () => {
      const cache = new CurrentVersionCache(2);
      cache.set(v('a'));
      cache.set(v('b'));
      cache.get('Patient', 'a');
      cache.get('Patient', 'b');
      cache.set(v('c'));
      expect(cache.get('Patient', 'a')).to.equal(undefined);
      expect(cache.get('Patient', 'b')?.id).to.equal('b');
      expect(cache.get('Patient', 'c')?.id).to.equal('c');
      for (const id of ['d', 'e', 'f', 'g']) cache.set(v(id));
      expect(['b', 'c', 'd', 'e', 'f', 'g'].filter((id) => cache.get('Patient', id) !== undefined)).to.have.length(2);
    });

    it('replacing an entry keeps one entry per resource and refreshes it', () => {
      const cache = new CurrentVersionCache(2);
      cache.set(v('a', 1));
      cache.set(v('b', 1));
      cache.set(v('a', 2));
      cache.set(v('c', 1));
      expect(cache.get('Patient', 'a')?.versionId).to.equal(2);
      expect(cache.get('Patient', 'b')).to.equal(undefined);
      expect(cache.get('Patient', 'c')?.versionId).to.equal(1);
    });

    it('keys by type and id', () => {
      const cache = new CurrentVersionCache(10);
      cache.set(v('a'));
      expect(cache.get('Observation', 'a')).to.equal(undefined);
    });

    it('capacity 0 caches nothing; clear() empties it', () => {
      const off = new CurrentVersionCache(0);
      off.set(v('a'));
      expect(off.get('Patient', 'a')).to.equal(undefined);
      const cache = new CurrentVersionCache(5);
      cache.set(v('a'));
      cache.clear();
      expect(cache.get('Patient', 'a')).to.equal(undefined);
    });
  });
});
