/** CachingVault over a real vault file: cached answers, "none" included, stay exact. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CachingVault } from '../../src/deid/caching-vault.js';
import { lookupOne, pseudonymizeOne, revealOne } from '../../src/deid/deid-types.js';
import { SqlitePseudonymVault } from '../../src/deid/vault.js';

describe('CachingVault (over a real vault file)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'caching-vault-'));
  const open = (maxEntries?: number) => new CachingVault(
    SqlitePseudonymVault.open({ file: path.join(dir, `${crypto.randomUUID()}.sqlite`), key: crypto.randomBytes(32), synchronous: 'NORMAL' }), maxEntries);

  it('a cached "none" becomes the pseudonym once this vault makes it', async () => {
    const vault = open();
    expect(await lookupOne(vault, 'mrn', 'A-1')).to.equal(undefined);
    const p = await pseudonymizeOne(vault, 'mrn', 'A-1');
    expect(await lookupOne(vault, 'mrn', 'A-1')).to.equal(p);
    expect(await pseudonymizeOne(vault, 'mrn', 'A-1')).to.equal(p);
    expect(await revealOne(vault, 'mrn', p)).to.equal('A-1');
    await vault.close();
  });

  it('answers like the vault beyond its capacity (it starts over, never answers wrong)', async () => {
    const vault = open(3);
    const made = await vault.pseudonymizeMany(Array.from({ length: 10 }, (_, i) => ({ domain: 'mrn', value: `B-${i}` })));
    for (let i = 0; i < 10; i++) expect(await lookupOne(vault, 'mrn', `B-${i}`)).to.equal(made[i]);
    expect(await lookupOne(vault, 'other', 'B-1')).to.equal(undefined);
    await vault.close();
  });

  it('answers a batch of cached keys without asking the vault, and asks only for the misses', async () => {
    const asked: number[] = [];
    const base = SqlitePseudonymVault.open({ file: path.join(dir, `${crypto.randomUUID()}.sqlite`), key: crypto.randomBytes(32), synchronous: 'NORMAL' });
    const counting = new Proxy(base, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (name === 'lookupMany' || name === 'pseudonymizeMany') {
          return (keys: unknown[]) => { asked.push(keys.length); return (value as (k: unknown[]) => unknown).call(target, keys); };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const vault = new CachingVault(counting);
    const keys = [{ domain: 'mrn', value: 'C-1' }, { domain: 'mrn', value: 'C-2' }];
    const made = await vault.pseudonymizeMany(keys);
    expect(asked).to.deep.equal([2]);
    expect(await vault.lookupMany(keys)).to.deep.equal(made);
    expect(await vault.pseudonymizeMany([...keys, { domain: 'mrn', value: 'C-3' }])).to.have.length(3);
    expect(asked).to.deep.equal([2, 1]);
    await vault.close();
  });
});
