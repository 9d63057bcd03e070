/** CachingVault over a real vault file: cached answers, "none" included, stay exact. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CachingVault } from '../../src/deid/caching-vault.js';
import { SqlitePseudonymVault } from '../../src/deid/vault.js';

describe('CachingVault (over a real vault file)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'caching-vault-'));
  const open = (maxEntries?: number) => new CachingVault(
    SqlitePseudonymVault.open({ file: path.join(dir, `${crypto.randomUUID()}.sqlite`), key: crypto.randomBytes(32), synchronous: 'NORMAL' }), maxEntries);

  it('a cached "none" becomes the pseudonym once this vault makes it', () => {
    const vault = open();
    expect(vault.lookup('mrn', 'A-1')).to.equal(undefined);
    const p = vault.pseudonymize('mrn', 'A-1');
    expect(vault.lookup('mrn', 'A-1')).to.equal(p);
    expect(vault.pseudonymize('mrn', 'A-1')).to.equal(p);
    expect(vault.reveal('mrn', p)).to.equal('A-1');
    vault.close();
  });

  it('answers like the vault beyond its capacity (it starts over, never answers wrong)', () => {
    const vault = open(3);
    const made = Array.from({ length: 10 }, (_, i) => vault.pseudonymize('mrn', `B-${i}`));
    for (let i = 0; i < 10; i++) expect(vault.lookup('mrn', `B-${i}`)).to.equal(made[i]);
    expect(vault.lookup('other', 'B-1')).to.equal(undefined);
    vault.close();
  });
});
