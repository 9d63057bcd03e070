/**
 * The Store port's contract (src/store/store.ts), as tests any adapter must pass: versions and
 * history order, single and batched reads, delete versions, all-or-nothing transactions (ledger
 * leaves included), gap-free leaves in commit order under concurrent transactions, read-your-
 * writes inside a transaction and committed-only reads outside, search basics, paging snapshots
 * and their token errors, and long OR / AND lists.
 *
 * An adapter's test file calls `describeStoreContract(name, makeStore)` with a factory that
 * gives each test a new, empty store on the real database (DESIGN.md rule 6).
 */
import { expect } from 'chai';
import { FhirError } from '../../../src/fhir/fhir-error.js';
import type { SearchQuery } from '../../../src/fhir/search-query.js';
import type { NewVersion, Store, StoredVersion } from '../../../src/store/store.js';
import { deletionOf, familyOf, ids, label, observation, patient, query, versionOf } from './store-fixtures.js';

/** A new, empty store and how to dispose of it (close it, remove its files or schema). */
export interface StoreUnderTest {
  store: Store;
  dispose(): Promise<void>;
}

export function describeStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`Store contract: ${name}`, function () {
    let made: StoreUnderTest[] = [];
    let store: Store;

    beforeEach(async () => {
      const subject = await makeStore();
      made.push(subject);
      store = subject.store;
    });

    afterEach(async () => {
      for (const subject of made) await subject.dispose();
      made = [];
    });

    async function write(...versions: NewVersion[]): Promise<void> {
      await store.transaction(async (tx) => {
        for (const v of versions) await tx.writeVersion(v);
      });
    }

    /** The error a promise rejects with (fails the test when it resolves). */
    async function rejection(promise: Promise<unknown>): Promise<unknown> {
      return promise.then((value) => expect.fail(`expected a rejection, got ${JSON.stringify(value)}`), (error: unknown) => error);
    }

    describe('versions', () => {
      it('reads the current version and every version by number', async () => {
        await write(versionOf(patient('p1', 'Alpha'), 1, '2024-01-01T00:00:00.000Z'));
        await write(versionOf(patient('p1', 'Beta'), 2, '2024-01-02T00:00:00.000Z'));

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

      it('a delete version: readCurrent shows it deleted, old versions stay readable, search no longer finds it', async () => {
        await write(versionOf(patient('p1', 'Gone'), 1), versionOf(patient('p2', 'Gone'), 1));
        await write(deletionOf('Patient', 'p1', 2, '2024-06-01T00:00:00.000Z'));

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
        await write(versionOf(patient('p1', 'Back'), 3));
        expect(ids((await store.search(query('Patient', [['family', 'Back']]))).versions)).to.deep.equal(['p1']);
      });

      it('readCurrentMany: current versions in the order asked, deletes included, unknown left out, each once', async () => {
        await write(versionOf(patient('a', 'A1'), 1), versionOf(patient('b', 'B1'), 1), versionOf(observation('o', '1234-5'), 1));
        await write(versionOf(patient('a', 'A2'), 2), deletionOf('Patient', 'b', 2));
        const read = await store.readCurrentMany([
          { resourceType: 'Observation', id: 'o' }, { resourceType: 'Patient', id: 'missing' }, { resourceType: 'Patient', id: 'b' },
          { resourceType: 'Patient', id: 'a' }, { resourceType: 'Observation', id: 'a' }, { resourceType: 'Patient', id: 'b' },
        ]);
        expect(read.map(label)).to.deep.equal(['Observation/o/1', 'Patient/b/2', 'Patient/a/2']);
        expect(read[1]).to.include({ deleted: true, json: null });
        expect(familyOf(read[2])).to.equal('A2');
        // Each one as readCurrent has it.
        for (const v of read) expect(v).to.deep.equal(await store.readCurrent(v.resourceType, v.id));
        expect(await store.readCurrentMany([])).to.deep.equal([]);
      });

      it('readCurrentMany answers more keys than one batch or one statement\'s variables, in order', async () => {
        const n = 1200;
        await write(...Array.from({ length: n }, (_, i) => versionOf(patient(`m${i}`, 'Many'), 1)));
        // Reversed, with unknown keys between: order and gaps must come out right across batches.
        const keys = Array.from({ length: n }, (_, i) => [
          { resourceType: 'Patient', id: `m${n - 1 - i}` }, { resourceType: 'Patient', id: `unknown${i}` },
        ]).flat();
        const read = await store.readCurrentMany(keys);
        expect(read.map((v) => v.id)).to.deep.equal(Array.from({ length: n }, (_, i) => `m${n - 1 - i}`));
      });
    });

    describe('history', () => {
      it('is newest first (commit order), with a total, filtered by type, id and since', async () => {
        await write(versionOf(patient('a', 'A1'), 1, '2024-01-01T00:00:00.000Z'));
        await write(versionOf(patient('b', 'B1'), 1, '2024-01-02T00:00:00.000Z'));
        await write(versionOf(observation('o', '1234-5'), 1, '2024-01-03T00:00:00.000Z'));
        await write(versionOf(patient('a', 'A2'), 2, '2024-01-04T00:00:00.000Z'));

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

      it('orders by commit, not by lastUpdated', async () => {
        await write(versionOf(patient('late', 'L'), 1, '2030-01-01T00:00:00.000Z'));
        await write(versionOf(patient('early', 'E'), 1, '2001-01-01T00:00:00.000Z'));
        expect((await store.history({ count: 10, offset: 0 })).versions.map(label)).to.deep.equal(['Patient/early/1', 'Patient/late/1']);
      });
    });

    describe('transactions', () => {
      it('reads inside see the transaction\'s own writes; reads outside see committed data only', async () => {
        let insideRead: StoredVersion | undefined;
        let insideMany: StoredVersion[] = [];
        let insideSearch: string[] = [];
        let outsideRead: StoredVersion | undefined | 'not read' = 'not read';
        let outsideSearch: number | undefined;
        await store.transaction(async (tx) => {
          await tx.writeVersion(versionOf(patient('p1', 'Alpha'), 1));
          insideRead = await tx.readCurrent('Patient', 'p1');
          insideMany = await tx.readCurrentMany([{ resourceType: 'Patient', id: 'p1' }]);
          insideSearch = ids((await tx.search(query('Patient', [['family', 'Alpha']]))).versions);
          outsideRead = await store.readCurrent('Patient', 'p1');
          outsideSearch = (await store.search(query('Patient', [['family', 'Alpha']]))).total;
        });
        expect(familyOf(insideRead)).to.equal('Alpha');
        expect(insideMany.map(label)).to.deep.equal(['Patient/p1/1']);
        expect(insideSearch).to.deep.equal(['p1']);
        expect(outsideRead, 'uncommitted writes are invisible to store reads').to.equal(undefined);
        expect(outsideSearch).to.equal(0);
        expect(familyOf(await store.readCurrent('Patient', 'p1')), 'visible once transaction() resolved').to.equal('Alpha');
      });

      it('a transaction that throws keeps nothing: no version, index row, history entry or ledger leaf', async () => {
        await write(versionOf(patient('a', 'Kept'), 1));
        const sizeBefore = await store.ledger.treeSize();
        const failure = new Error('rejected by the service layer');
        const outcome = await rejection(store.transaction(async (tx) => {
          await tx.writeVersion(versionOf(patient('a', 'Lost'), 2));
          await tx.writeVersion(versionOf(patient('b', 'Lost'), 1));
          // The first Observation ever: whatever the adapter sets up for its parameters goes too.
          await tx.writeVersion(versionOf(observation('o-lost', '1111-1'), 1));
          expect(familyOf(await tx.readCurrent('Patient', 'a')), 'own write visible before the throw').to.equal('Lost');
          throw failure;
        }));
        expect(outcome).to.equal(failure);

        const a = await store.readCurrent('Patient', 'a');
        expect(a?.versionId).to.equal(1);
        expect(familyOf(a)).to.equal('Kept');
        expect(await store.readVersion('Patient', 'a', 2)).to.equal(undefined);
        expect(await store.readCurrent('Patient', 'b')).to.equal(undefined);
        expect(await store.readCurrentMany([{ resourceType: 'Observation', id: 'o-lost' }])).to.deep.equal([]);
        expect((await store.history({ count: 10, offset: 0 })).total).to.equal(1);
        expect((await store.search(query('Patient', [['family', 'Lost']]))).total).to.equal(0);
        expect(ids((await store.search(query('Patient', [['family', 'Kept']]))).versions)).to.deep.equal(['a']);
        expect(await store.ledger.treeSize(), 'no leaf of the failed transaction').to.equal(sizeBefore);
        expect(await store.ledger.leafOfVersion('Patient', 'a', 2)).to.equal(undefined);

        // The store goes on: the next leaf takes the next index, and the parameters work.
        await write(versionOf(observation('o-kept', '1111-1'), 1));
        expect((await store.ledger.leafOfVersion('Observation', 'o-kept', 1))?.leafIndex).to.equal(sizeBefore);
        expect(ids((await store.search(query('Observation', [['code', 'http://loinc.org|1111-1']]))).versions)).to.deep.equal(['o-kept']);
      });

      it('keeps nothing of a transaction that fails after awaiting something else, and the store stays usable', async () => {
        await write(versionOf(patient('a', 'Before'), 1));
        const outcome = await rejection(store.transaction(async (tx) => {
          await tx.writeVersion(versionOf(patient('a', 'After'), 2));
          await new Promise((resolve) => setImmediate(resolve));
          JSON.parse('{');
        }));
        expect(outcome).to.be.instanceOf(SyntaxError);
        expect(familyOf(await store.readCurrent('Patient', 'a'))).to.equal('Before');
        await write(versionOf(patient('a', 'Later'), 2));
        expect(familyOf(await store.readCurrent('Patient', 'a'))).to.equal('Later');
      });

      it('a conditional create (check, then write) by 20 concurrent transactions creates exactly one resource', async () => {
        await write(versionOf(patient('other', 'Other', 'mrn-other'), 1));
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
    });

    describe('ledger leaves', () => {
      it('are 0..n-1 without gaps, in commit order, under concurrent transactions (some failing)', async () => {
        const written = new Map<string, NewVersion>();
        const outcomes = await Promise.allSettled(Array.from({ length: 24 }, (_, t) => store.transaction(async (tx) => {
          const versions = Array.from({ length: 1 + (t % 3) }, (_, k) => versionOf(patient(`t${t}-${k}`, 'Leaf'), 1));
          for (const v of versions) {
            await tx.writeVersion(v);
            // Give other transactions the chance to interleave, if the adapter lets them.
            await new Promise((resolve) => setImmediate(resolve));
          }
          if (t % 5 === 4) throw new Error(`transaction ${t} gives up`);
          for (const v of versions) written.set(v.id, v);
          return t;
        })));
        const committed = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
        expect(committed).to.have.length(24 - 4);

        const n = await store.ledger.treeSize();
        expect(n).to.equal(written.size);
        const leaves = await store.ledger.leavesWithVersions(0, n + 10);
        expect(leaves.map((l) => l.leafIndex)).to.deep.equal(Array.from({ length: n }, (_, i) => i));
        // Each version has the leaf the write path gave it, and it stands for that version.
        for (const leaf of leaves) {
          const given = written.get(leaf.id)!;
          expect(leaf.leafHash.equals(given.leaf.leafHash), leaf.id).to.equal(true);
          expect(leaf.salt.equals(given.leaf.salt)).to.equal(true);
          expect(leaf.version).to.include({ resourceType: 'Patient', id: given.id, versionId: 1 });
        }
        // A transaction's leaves commit together: contiguous, in the order it wrote them.
        const transactionOf = (id: string) => id.slice(0, id.indexOf('-'));
        const runs = leaves.map((l) => transactionOf(l.id)).filter((t, i, all) => i === 0 || all[i - 1] !== t);
        expect(new Set(runs).size, 'each transaction is one run of leaves').to.equal(runs.length);
        for (const t of committed) {
          const own = leaves.filter((l) => transactionOf(l.id) === `t${t}`).map((l) => l.id);
          expect(own).to.deep.equal(Array.from({ length: 1 + (t % 3) }, (_, k) => `t${t}-${k}`));
        }
        // A later commit gets the next index.
        await write(versionOf(patient('t0-0', 'Leaf'), 2));
        expect((await store.ledger.leafOfVersion('Patient', 't0-0', 2))?.leafIndex).to.equal(n);
      });
    });

    describe('search', () => {
      it('token, string, date and reference parameters; _sort; total', async () => {
        await write(
          versionOf({ ...patient('p1', 'Lovelace'), gender: 'female', birthDate: '1815-12-10' }, 1),
          versionOf({ ...patient('p2', 'Turing'), gender: 'male', birthDate: '1912-06-23' }, 1),
          versionOf({ ...patient('p3', 'Love'), gender: 'female', birthDate: '1990-01-01' }, 1),
          versionOf(observation('o1', '2339-0', 'Patient/p1'), 1),
          versionOf(observation('o2', '2339-0', 'Patient/p2'), 1),
          versionOf(observation('o3', '29463-7', 'Patient/p1'), 1),
        );
        const found = async (type: string, entries: [string, string][]) => ids((await store.search(query(type, entries))).versions);
        expect(await found('Patient', [['gender', 'female']])).to.deep.equal(['p1', 'p3']);
        expect(await found('Patient', [['family', 'love']]), 'string: starts with, any case').to.deep.equal(['p1', 'p3']);
        expect(await found('Patient', [['family:exact', 'Love']])).to.deep.equal(['p3']);
        expect(await found('Patient', [['birthdate', 'lt1900']])).to.deep.equal(['p1']);
        expect(await found('Patient', [['birthdate', '1912']])).to.deep.equal(['p2']);
        expect(await found('Observation', [['subject', 'Patient/p1']])).to.deep.equal(['o1', 'o3']);
        expect(await found('Observation', [['subject', 'Patient/p1'], ['code', 'http://loinc.org|2339-0']])).to.deep.equal(['o1']);
        expect(await found('Observation', [['code', '2339-0,29463-7']])).to.deep.equal(['o1', 'o2', 'o3']);

        const byBirth = await store.search(query('Patient', [['_sort', '-birthdate']]));
        expect(byBirth.versions.map((v) => v.id)).to.deep.equal(['p3', 'p2', 'p1']);
        expect(byBirth.total).to.equal(3);
        const byFamily = await store.search(query('Patient', [['_sort', 'family'], ['_count', '2']]));
        expect(byFamily.versions.map((v) => v.id)).to.deep.equal(['p3', 'p1']);
        expect(byFamily.total, 'total counts all matches, not the page').to.equal(3);
        expect(byFamily.hasMore).to.equal(true);
      });

      it('index rows are replaced on update: the old value no longer matches, the new one does', async () => {
        await write(versionOf(patient('p1', 'Oldfamily', 'mrn-1'), 1));
        await write(versionOf(patient('p2', 'Bystander', 'mrn-2'), 1));
        expect(ids((await store.search(query('Patient', [['family', 'Oldfamily']]))).versions)).to.deep.equal(['p1']);

        await write(versionOf(patient('p1', 'Newfamily', 'mrn-1b'), 2));
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

      it('a system-level search matches the common parameters across types', async () => {
        await write(versionOf(patient('p1', 'Lee'), 1), versionOf(patient('p2', 'Kim'), 1), versionOf(observation('o1', '1234-5'), 1));
        const page = await store.search(query(null, [['_id', 'p1,o1']]));
        expect(page.total).to.equal(2);
        expect(page.versions.map((v) => `${v.resourceType}/${v.id}`).sort()).to.deep.equal(['Observation/o1', 'Patient/p1']);
      });

      it('1,000 OR values (code=c0,…,c999) and 1,000 AND criteria (code=… repeated) are answered', async () => {
        const codes = Array.from({ length: 1000 }, (_, i) => `c${i}`);
        await write(
          versionOf(observation('all', codes), 1),
          versionOf(observation('first', 'c0'), 1),
          versionOf(observation('last', 'c999'), 1),
          versionOf(observation('none', 'other'), 1),
        );
        const or = await store.search(query('Observation', [['code', codes.join(',')]]));
        expect(ids(or.versions)).to.deep.equal(['all', 'first', 'last']);
        expect(or.total).to.equal(3);
        const orWithSystem = await store.search(query('Observation', [['code', codes.map((c) => `http://loinc.org|${c}`).join(',')]]));
        expect(ids(orWithSystem.versions)).to.deep.equal(['all', 'first', 'last']);
        const notAny = await store.search(query('Observation', [['code:not', codes.join(',')]]));
        expect(ids(notAny.versions)).to.deep.equal(['none']);

        const and = await store.search(query('Observation', codes.map((c) => ['code', c] as [string, string])));
        expect(ids(and.versions)).to.deep.equal(['all']);
        expect(and.total).to.equal(1);
        const andMissingOne = await store.search(query('Observation', [...codes.slice(1), 'absent'].map((c) => ['code', c] as [string, string])));
        expect(andMissingOne.total).to.equal(0);
      });

      it('several thousand OR values, of mixed shapes, are answered', async () => {
        await write(versionOf(observation('x', 'c4321'), 1), versionOf(observation('y', 'c9'), 1));
        const values = Array.from({ length: 5000 }, (_, i) => (i % 2 === 0 ? `c${i}` : `http://loinc.org|c${i}`));
        // Strings too: a start-of-name range per value.
        expect(ids((await store.search(query('Observation', [['code', values.join(',')]]))).versions)).to.deep.equal(['x', 'y']);
        await write(versionOf(patient('p1', 'Zed'), 1));
        const names = Array.from({ length: 3000 }, (_, i) => `name${i}`).concat('ze');
        expect(ids((await store.search(query('Patient', [['family', names.join(',')]]))).versions)).to.deep.equal(['p1']);
      });
    });

    describe('paging', () => {
      it('pages with _count/_offset, and the largest offset the parser accepts is an empty page, not an error', async () => {
        await write(...Array.from({ length: 5 }, (_, i) => versionOf(patient(`p${i}`, 'Page'), 1)));
        const page = await store.search(query('Patient', [['family', 'Page'], ['_count', '2'], ['_offset', '2']]));
        expect(page.total).to.equal(5);
        expect(page.versions.map((v) => v.id)).to.deep.equal(['p2', 'p3'], 'creation order without _sort');
        const far = await store.search(query('Patient', [['_offset', String(Number.MAX_SAFE_INTEGER)]]));
        expect(far.versions).to.deep.equal([]);
        expect(far.total).to.equal(5);
      });

      it('later pages with the snapshot: nothing created since joins in, each resource as it was at the first page', async () => {
        await write(...Array.from({ length: 5 }, (_, i) => versionOf(patient(`s${i}`, 'Snap'), 1)));
        const first = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2']]));
        expect(first.hasMore).to.equal(true);
        expect(first.versions.map((v) => v.id)).to.deep.equal(['s0', 's1']);
        await write(versionOf(patient('s3', 'Other'), 2), deletionOf('Patient', 's4', 2), versionOf(patient('s9', 'Snap'), 1));
        const later = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2'], ['_offset', '2'], ['_snapshot', first.snapshot]]));
        expect(later.versions.map((v) => [v.id, v.versionId, familyOf(v)])).to.deep.equal([['s2', 1, 'Snap'], ['s3', 1, 'Snap']]);
        expect(later.snapshot, 'the same token goes on').to.equal(first.snapshot);
        const last = await store.search(query('Patient', [['family', 'Snap'], ['_count', '2'], ['_offset', '4'], ['_snapshot', first.snapshot]]));
        expect(last.versions.map((v) => [v.id, v.versionId, v.deleted])).to.deep.equal([['s4', 1, false]]);
        expect(last.hasMore).to.equal(false);
        expect(last.total).to.equal(5);
        // The page size may change between pages: it is not part of what the token names.
        const resized = await store.search(query('Patient', [['family', 'Snap'], ['_count', '3'], ['_offset', '1'], ['_snapshot', first.snapshot]]));
        expect(resized.versions.map((v) => v.id)).to.deep.equal(['s1', 's2', 's3']);
        // A new first page sees the new state.
        expect(ids((await store.search(query('Patient', [['family', 'Snap']]))).versions)).to.deep.equal(['s0', 's1', 's2', 's9']);
      });

      it('a token that is malformed, forged or from another search is a 400 that names no data', async () => {
        await write(...Array.from({ length: 5 }, (_, i) => versionOf(patient(`t${i}`, 'Secretname'), 1)));
        const entries: [string, string][] = [['family', 'Secretname'], ['_count', '2']];
        const first = await store.search(query('Patient', entries));
        const [seq, rid, digest] = first.snapshot.split('-') as [string, string, string];
        const withToken = (q: SearchQuery, token: string): SearchQuery => ({ ...q, offset: 2, snapshot: token });
        const flipped = digest.replace(/^./, (c) => (c === '0' ? '1' : '0'));
        const bad: Record<string, string> = {
          'random text': 'not-a-token',
          'a huge number': `${'9'.repeat(40)}-${rid}-${digest}`,
          'a position the store has not reached': `${Number(seq) + 1000}-${Number(rid) + 1000}-${digest}`,
          'negative numbers': `-1--1-${digest}`,
          'unicode': `${seq}-${rid}-${digest.slice(0, 15)}é`,
          'a tampered digest': `${seq}-${rid}-${flipped}`,
          'the empty string': '',
          'a very long text': 'x'.repeat(100_000),
        };
        for (const [what, token] of Object.entries(bad)) {
          const error = await rejection(store.search(withToken(query('Patient', entries), token)));
          expect(error, what).to.be.instanceOf(FhirError);
          expect((error as FhirError).status, what).to.equal(400);
          expect((error as FhirError).message, what).not.to.match(/Secretname|t\d/);
        }
        const fromAnotherQuery: Record<string, SearchQuery> = {
          'another type': query('Observation', [['_count', '2']]),
          'other criteria': query('Patient', [['family', 'Other'], ['_count', '2']]),
          'another sort': query('Patient', [['family', 'Secretname'], ['_sort', '-_id'], ['_count', '2']]),
          'a system-level search': query(null, [['_count', '2']]),
        };
        for (const [what, other] of Object.entries(fromAnotherQuery)) {
          const error = await rejection(store.search(withToken(other, first.snapshot)));
          expect(error, what).to.be.instanceOf(FhirError);
          expect((error as FhirError).status, what).to.equal(400);
          expect((error as FhirError).message, what).to.match(/another search/);
        }
        // Inside a transaction the same rules hold.
        const inTx = await rejection(store.transaction((tx) => tx.search(withToken(query('Patient', entries), 'forged'))));
        expect((inTx as FhirError).status).to.equal(400);
        // And the right token still works.
        expect((await store.search(withToken(query('Patient', entries), first.snapshot))).versions.map((v) => v.id)).to.deep.equal(['t2', 't3']);
      });
    });
  });
}
