/**
 * What SqliteStore adds to the Store contract (contract/store-contract.ts runs that on it), on
 * a real SQLite file in a temporary folder (DESIGN.md rule 6: no mocks): transactions sharing
 * one group commit, durability across close/reopen, paging after a restart, the coherence of the
 * in-memory current-version cache, and readCurrentMany through that cache.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CurrentVersionCache } from '../../src/store/current-version-cache.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { NewVersion, StoredVersion, StoreTransaction } from '../../src/store/store.js';
import { deletionOf, familyOf, ids, observation, patient, query, versionOf } from './contract/store-fixtures.js';

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

  describe('paging', () => {
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

    it('readCurrentMany mixes cached and read versions, in order, and sees updates', async () => {
      const store = openStore(100);
      await write(store, versionOf(patient('p1', 'First'), 1), versionOf(patient('p2', 'First'), 1));
      await store.readCurrent('Patient', 'p2'); // cached; p1 is not
      const keys = [{ resourceType: 'Patient', id: 'p2' }, { resourceType: 'Patient', id: 'p1' }];
      expect((await store.readCurrentMany(keys)).map((v) => `${v.id}/${v.versionId}`)).to.deep.equal(['p2/1', 'p1/1']);
      await write(store, versionOf(patient('p1', 'Second'), 2), deletionOf('Patient', 'p2', 2));
      expect((await store.readCurrentMany(keys)).map((v) => `${v.id}/${v.versionId}/${v.deleted}`)).to.deep.equal(['p2/2/true', 'p1/2/false']);
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
