/**
 * Paging snapshots: the tokens, and the bounded, time-limited list of kept result sets.
 */
import { expect } from 'chai';
import { parseSnapshotToken, SearchSnapshots, snapshotToken } from '../../../src/store/sqlite/search-snapshots.js';

describe('search snapshots', () => {
  it('a token carries the store position and the query digest and reads back; anything else is no token', () => {
    const digest = '0123456789abcdef';
    expect(snapshotToken({ seq: 1234, rid: 56, queryDigest: digest })).to.equal(`1234-56-${digest}`);
    expect(parseSnapshotToken(`1234-56-${digest}`)).to.deep.equal({ seq: 1234, rid: 56, queryDigest: digest });
    for (const bad of ['', '12', '12-', '-12', '1234-56', `-1-2-${digest}`, `1-2-${digest}0`, `1-2-${digest.toUpperCase()}`,
      `a-1-${digest}`, `1234567890123456-1-${digest}`, `1-2-${digest.slice(1)}é`]) {
      expect(parseSnapshotToken(bad), bad).to.equal(undefined);
    }
  });

  it('keeps at most its capacity, dropping the least recently read', () => {
    const kept = new SearchSnapshots(2);
    kept.remember('a', { rids: [1], complete: true });
    kept.remember('b', { rids: [2], complete: true });
    expect(kept.get('a')?.rids).to.deep.equal([1]);
    kept.remember('c', { rids: [3], complete: true });
    expect(kept.get('b')).to.equal(undefined);
    expect(kept.get('a')?.rids).to.deep.equal([1]);
    expect(kept.get('c')?.rids).to.deep.equal([3]);
  });

  it('forgets a list not read for longer than its time to live; reading renews it', () => {
    let now = 0;
    const kept = new SearchSnapshots(10, 1000, () => now);
    kept.remember('a', { rids: [1], complete: true });
    kept.remember('b', { rids: [2], complete: true });
    now = 900;
    expect(kept.get('a')).to.not.equal(undefined);
    now = 1500;
    expect(kept.get('b')).to.equal(undefined);
    expect(kept.get('a')).to.not.equal(undefined);
  });
});
