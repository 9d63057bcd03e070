/**
 * A resource with many identifiers under safe-harbor (issue 10: a Patient with 20,000 identifiers
 * made 20,000 synchronous, fsynced vault writes and held the server for 15 s). Its new pairs are
 * now one vault transaction, and the vault's batches yield to the event loop, so reads by id by
 * other clients are answered while it is processed. The real vault (SqlitePseudonymVault,
 * synchronous=FULL) is observed through the vault port, which server.ts lets a caller choose.
 */
import fs from 'node:fs';
import { expect } from 'chai';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import type { PseudonymVault, VaultEntryKey } from '../../src/deid/deid-types.js';
import { SqlitePseudonymVault } from '../../src/deid/vault.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { temporaryDataDir } from '../support/test-server.js';

const IDENTIFIERS = 20_000;
const SYSTEM = 'http://hospital.example.org/mrn';

/** The vault port with what the test observes: batch calls, and whether a pseudonymizeMany is running. */
class ObservedVault implements PseudonymVault {
  pseudonymizeCalls: number[] = [];
  creating = false;
  constructor(readonly inner: SqlitePseudonymVault) {}
  lookupMany(keys: readonly VaultEntryKey[]) { return this.inner.lookupMany(keys); }
  async pseudonymizeMany(keys: readonly VaultEntryKey[]) {
    this.pseudonymizeCalls.push(keys.length);
    this.creating = true;
    try {
      return await this.inner.pseudonymizeMany(keys);
    } finally {
      this.creating = false;
    }
  }
  revealMany(keys: readonly VaultEntryKey[]) { return this.inner.revealMany(keys); }
  lookupInAnyDomain(real: string) { return this.inner.lookupInAnyDomain(real); }
  dateOffsetDays(subject: string, maxDays: number) { return this.inner.dateOffsetDays(subject, maxDays); }
  knownDateOffsetDays(subject: string) { return this.inner.knownDateOffsetDays(subject); }
  close() { return this.inner.close(); }
}

describe(`a Patient with ${IDENTIFIERS.toLocaleString('en')} identifiers under safe-harbor (e2e, real vault)`, function () {
  this.timeout(300_000);
  const dataDir = temporaryDataDir('fhir-ledger-vault-batch-');
  let server: RunningServer;
  let vault: ObservedVault;
  const request = (method: string, url: string, body?: unknown) => fetch(`${server.baseUrl}${url}`, {
    method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'Content-Type': 'application/fhir+json' } }),
  });

  before(async () => {
    const config = loadConfig({}, {
      port: 0, host: '127.0.0.1', dataDir, ledgerMode: 'off', deidMapping: 'safe-harbor', sqliteSynchronous: 'FULL',
      maxBodyBytes: 64 * 1024 * 1024, maxElementRepetitions: 25_000,
    });
    server = await startServer(config, pino({ level: 'silent' }), {
      openPseudonymVault: (key) => {
        vault = new ObservedVault(SqlitePseudonymVault.open({ file: config.vaultFile, key, synchronous: 'FULL' }));
        return vault;
      },
    });
  });
  after(async () => {
    await server?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('stores its new pairs in one vault transaction, and answers reads by id meanwhile', async () => {
    const small = await request('POST', '/Patient', { resourceType: 'Patient', identifier: [{ system: SYSTEM, value: 'SMALL-1' }] });
    expect(small.status).to.equal(201);
    const smallId = ((await small.json()) as { id: string }).id;

    const transactionsBefore = vault.inner.writeTransactions;
    const callsBefore = vault.pseudonymizeCalls.length;
    const identifier = Array.from({ length: IDENTIFIERS }, (_, i) => ({ system: SYSTEM, value: `BIG-${i}` }));
    let done = false;
    const big = request('POST', '/Patient', { resourceType: 'Patient', identifier, gender: 'other' })
      .finally(() => { done = true; });

    // Reads by id, one after another, until the big create is answered; count those answered
    // while the vault was creating the big batch's pairs.
    let answeredWhileCreating = 0;
    let reads = 0;
    while (!done) {
      const read = await request('GET', `/Patient/${smallId}`);
      expect(read.status).to.equal(200);
      await read.arrayBuffer();
      reads++;
      if (vault.creating) answeredWhileCreating++;
    }
    const created = await big;
    expect(created.status, await created.clone().text()).to.equal(201);
    const stored = (await created.json()) as { id: string; identifier: { value: string }[] };

    expect(vault.pseudonymizeCalls.slice(callsBefore), 'one pseudonymizeMany for the resource').to.deep.equal([IDENTIFIERS]);
    expect(vault.inner.writeTransactions - transactionsBefore, 'vault write transactions').to.equal(1);
    expect(answeredWhileCreating, `reads answered while the pairs were created (of ${reads} reads)`).to.be.greaterThan(0);

    expect(stored.identifier).to.have.length(IDENTIFIERS);
    const values = new Set(stored.identifier.map((i) => i.value));
    expect(values.size).to.equal(IDENTIFIERS);
    expect(values.has('BIG-0')).to.equal(false);
    const found = await request('GET', `/Patient?identifier=${encodeURIComponent(`${SYSTEM}|BIG-${IDENTIFIERS - 1}`)}&_elements=id`);
    expect(((await found.json()) as { entry?: { resource: { id: string } }[] }).entry?.map((e) => e.resource.id)).to.deep.equal([stored.id]);
  });

  it('writes nothing to the vault when the same identifiers are sent again (all pairs known)', async () => {
    const transactionsBefore = vault.inner.writeTransactions;
    const identifier = Array.from({ length: IDENTIFIERS }, (_, i) => ({ system: SYSTEM, value: `BIG-${i}` }));
    const again = await request('POST', '/Patient', { resourceType: 'Patient', identifier });
    expect(again.status).to.equal(201);
    await again.arrayBuffer();
    expect(vault.inner.writeTransactions - transactionsBefore).to.equal(0);
  });
});
