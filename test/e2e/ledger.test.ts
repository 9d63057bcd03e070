/**
 * The ledger end to end: the real server (in-process, ephemeral port) anchoring on a real anvil
 * node through CHAIN_RPC_URL settings; `$ledger`, `$verify` of a version and of a resource;
 * a third-party verifier written from the README's algorithm alone; and tampering with the
 * SQLite file, which `$verify` reports on exactly the version that was changed.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { id as keccakId } from 'ethers';
import { ANVIL_DEV_PRIVATE_KEY, AnvilNode, jsonRpc } from '../../src/ledger/anvil-node.js';
import { deployLedgerAnchor } from '../../src/ledger/ethers-anchor-chain.js';
import { verifyConsistency } from '../../src/ledger/merkle.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { waitFor } from '../support/wait-for.js';

type Parameter = { name: string; valueString?: string; valueInteger?: number; valueBoolean?: boolean; valueCode?: string; part?: Parameter[] };

function param(parameters: Parameter[], name: string): Parameter | undefined {
  return parameters.find((p) => p.name === name);
}
function value(parameters: Parameter[], name: string): string | number | boolean | undefined {
  const p = param(parameters, name);
  return p?.valueString ?? p?.valueInteger ?? p?.valueBoolean ?? p?.valueCode;
}
function values(parameters: Parameter[], name: string): (string | number | boolean | undefined)[] {
  return parameters.filter((p) => p.name === name).map((p) => p.valueString ?? p.valueInteger ?? p.valueBoolean ?? p.valueCode);
}

// ------------------------------------------------------------------ third-party verifier
// Written from the README section "Verifying a version without trusting the server" alone:
// node:crypto, a JSON-RPC endpoint, and the keccak of a function signature.

/** RFC 8785: members sorted by UTF-16 code units, ECMAScript number and string forms, no whitespace. */
function jcs(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  const entries = Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${jcs((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}
const sha256 = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();

async function thirdPartyVerify(input: {
  resourceJson: string | null; deleteRecord?: object; salt: string; leafIndex: number; treeSize: number;
  proof: string[]; root: string; rpcUrl: string; contractAddress: string;
}): Promise<{ proofOk: boolean; chainOk: boolean }> {
  const canonical = jcs(input.resourceJson === null ? input.deleteRecord : JSON.parse(input.resourceJson));
  let r = sha256(Buffer.from([0]), Buffer.from(input.salt, 'hex'), Buffer.from(canonical, 'utf8'));
  let fn = input.leafIndex;
  let sn = input.treeSize - 1;
  for (const hex of input.proof) {
    const p = Buffer.from(hex, 'hex');
    if (sn === 0) return { proofOk: false, chainOk: false };
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const proofOk = sn === 0 && r.toString('hex') === input.root;
  const data = keccakId('rootOf(uint256)').slice(0, 10) + input.treeSize.toString(16).padStart(64, '0');
  const onChain = await jsonRpc(input.rpcUrl, 'eth_call', [{ to: input.contractAddress, data }, 'latest']) as string;
  return { proofOk, chainOk: onChain.slice(2) === input.root };
}

// ------------------------------------------------------------------ the tests

describe('ledger end to end (server + anvil)', function () {
  this.timeout(60_000);
  let anvil: AnvilNode;
  let server: TestServer;
  let contractAddress: string;

  async function waitForAnchoring(minimumTreeSize: number): Promise<Parameter[]> {
    let status: Parameter[] = [];
    await waitFor(async () => {
      status = (await server.request('GET', '/fhir/$ledger')).json.parameter as Parameter[];
      const treeSize = value(status, 'treeSize') as number;
      return treeSize >= minimumTreeSize && value(status, 'anchoredSize') === treeSize;
    }, { intervalMs: 50, what: () => `anchored: ${JSON.stringify(status)}` });
    return status;
  }

  before(async () => {
    anvil = await AnvilNode.start();
    contractAddress = (await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY })).contractAddress;
    server = await startTestServer({
      ledgerMode: 'rpc', chainRpcUrl: anvil.rpcUrl, chainPrivateKey: ANVIL_DEV_PRIVATE_KEY, ledgerContractAddress: contractAddress,
      ledgerBatchLeaves: 1000, ledgerBatchSeconds: 0.1,
    });
  });
  after(async () => {
    await server?.stop();
    await anvil?.stop();
  });

  let patientId: string;

  it('anchors every version, deletes included, and $ledger reports the log', async () => {
    const created = await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', name: [{ family: 'Lee' }], gender: 'female' } });
    expect(created.status).to.equal(201);
    patientId = created.json.id;
    const updated = await server.request('PUT', `/fhir/Patient/${patientId}`, {
      body: { resourceType: 'Patient', id: patientId, name: [{ family: 'Lee', given: ['Ann'] }], gender: 'female' },
    });
    expect(updated.status).to.equal(200);
    expect((await server.request('DELETE', `/fhir/Patient/${patientId}`)).status).to.equal(204);
    for (let i = 0; i < 5; i++) {
      const obs = await server.request('POST', '/fhir/Observation', {
        body: { resourceType: 'Observation', status: 'final', code: { text: `obs ${i}` }, subject: { reference: `Patient/${patientId}` }, valueQuantity: { value: 1.5 + i, unit: 'mg' } },
      });
      expect(obs.status).to.equal(201);
    }
    const status = await waitForAnchoring(8);
    expect(value(status, 'mode')).to.equal('rpc');
    expect(value(status, 'pendingLeaves')).to.equal(0);
    const last = param(status, 'lastAnchor')!.part!;
    expect(value(last, 'treeSize')).to.equal(8);
    expect(value(last, 'transactionHash')).to.match(/^0x[0-9a-f]{64}$/);
    expect(value(last, 'chainId')).to.equal('31337');
    expect(value(last, 'contractAddress')).to.equal(contractAddress);
    const anchorer = param(status, 'anchorer')!.part!;
    expect(value(anchorer, 'healthy')).to.equal(true);
    expect(value(anchorer, 'state')).to.equal('idle');
  });

  it('$verify of a version: content, proof and on-chain root agree', async () => {
    const response = await server.request('GET', `/fhir/Patient/${patientId}/_history/2/$verify`);
    expect(response.status).to.equal(200);
    expect(response.json.resourceType).to.equal('Parameters');
    const p = response.json.parameter as Parameter[];
    expect(value(p, 'reference')).to.equal(`Patient/${patientId}/_history/2`);
    expect(value(p, 'verified')).to.equal(true);
    expect(value(p, 'status')).to.equal('verified');
    expect(values(p, 'failed')).to.deep.equal([]);
    expect(value(p, 'contentMatchesLeaf')).to.equal(true);
    expect(value(p, 'proofMatchesRoot')).to.equal(true);
    expect(value(p, 'rootOnChain')).to.equal(true);
    expect(value(p, 'leafIndex')).to.equal(1);
    expect(value(p, 'treeSize')).to.equal(8);
    expect(value(p, 'leafHash')).to.match(/^[0-9a-f]{64}$/);
    expect(value(p, 'salt')).to.match(/^[0-9a-f]{64}$/);
    expect(param(p, 'inclusionProof')!.part!.map((x) => x.valueString)).to.have.length(3);
    expect(value(p, 'transactionHash')).to.match(/^0x[0-9a-f]{64}$/);
    expect(value(p, 'blockNumber')).to.be.a('number');
    expect(value(p, 'chainId')).to.equal('31337');
    expect(value(p, 'contractAddress')).to.equal(contractAddress);
  });

  it('a third party verifies a version from the resource JSON, the proof and the chain alone', async () => {
    const vread = await server.request('GET', `/fhir/Patient/${patientId}/_history/2`);
    const p = (await server.request('GET', `/fhir/Patient/${patientId}/_history/2/$verify`)).json.parameter as Parameter[];
    const evidence = {
      salt: value(p, 'salt') as string, leafIndex: value(p, 'leafIndex') as number, treeSize: value(p, 'treeSize') as number,
      proof: param(p, 'inclusionProof')!.part!.map((x) => x.valueString!), root: value(p, 'anchoredRoot') as string,
      rpcUrl: anvil.rpcUrl, contractAddress: value(p, 'contractAddress') as string,
    };
    expect(await thirdPartyVerify({ ...evidence, resourceJson: vread.text })).to.deep.equal({ proofOk: true, chainOk: true });
    // Any change to the content breaks it.
    const altered = vread.text.replace('"Ann"', '"Anne"');
    expect(await thirdPartyVerify({ ...evidence, resourceJson: altered })).to.deep.equal({ proofOk: false, chainOk: true });
    // Member order and whitespace do not matter (RFC 8785).
    const reformatted = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(vread.text)).reverse()), null, 2);
    expect(await thirdPartyVerify({ ...evidence, resourceJson: reformatted })).to.deep.equal({ proofOk: true, chainOk: true });

    // A delete version: the delete record, with lastUpdated from the history entry.
    const history = (await server.request('GET', `/fhir/Patient/${patientId}/_history`)).json;
    const deletion = history.entry.find((e: { request: { method: string } }) => e.request.method === 'DELETE');
    const d = (await server.request('GET', `/fhir/Patient/${patientId}/_history/3/$verify`)).json.parameter as Parameter[];
    expect(value(d, 'deleted')).to.equal(true);
    expect(await thirdPartyVerify({
      resourceJson: null,
      deleteRecord: { resourceType: 'Patient', id: patientId, versionId: '3', lastUpdated: deletion.response.lastModified, deleted: true },
      salt: value(d, 'salt') as string, leafIndex: value(d, 'leafIndex') as number, treeSize: value(d, 'treeSize') as number,
      proof: param(d, 'inclusionProof')!.part!.map((x) => x.valueString!), root: value(d, 'anchoredRoot') as string,
      rpcUrl: anvil.rpcUrl, contractAddress: value(d, 'contractAddress') as string,
    })).to.deep.equal({ proofOk: true, chainOk: true });
  });

  it('$verify of a resource checks every version, newest first', async () => {
    const response = await server.request('GET', `/fhir/Patient/${patientId}/$verify`);
    expect(response.status).to.equal(200);
    const p = response.json.parameter as Parameter[];
    expect(value(p, 'verified')).to.equal(true);
    expect(value(p, 'versions')).to.equal(3);
    expect(value(p, 'failedVersions')).to.equal(0);
    const versions = p.filter((x) => x.name === 'version').map((x) => x.part!);
    expect(versions.map((v) => value(v, 'reference'))).to.deep.equal([3, 2, 1].map((n) => `Patient/${patientId}/_history/${n}`));
    expect(versions.map((v) => value(v, 'status'))).to.deep.equal(['verified', 'verified', 'verified']);
  });

  it('answers 404 for unknown versions, resources and types, and 400 for an invalid id', async () => {
    expect((await server.request('GET', `/fhir/Patient/${patientId}/_history/9/$verify`)).status).to.equal(404);
    expect((await server.request('GET', `/fhir/Patient/${patientId}/_history/x/$verify`)).status).to.equal(404);
    expect((await server.request('GET', '/fhir/Patient/nobody/$verify')).status).to.equal(404);
    expect((await server.request('GET', '/fhir/Unicorn/x/$verify')).status).to.equal(404);
    expect((await server.request('GET', '/fhir/Patient/bad$id/$verify')).status).to.equal(400);
  });

  it('a version not anchored yet is pending, not failed', async () => {
    // A server on its own log with a batch time too long to anchor during the test.
    const slow = await startTestServer({
      ledgerMode: 'rpc', chainRpcUrl: anvil.rpcUrl, chainPrivateKey: ANVIL_DEV_PRIVATE_KEY,
      ledgerContractAddress: (await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY })).contractAddress,
      ledgerBatchLeaves: 1000, ledgerBatchSeconds: 3600,
    });
    try {
      const created = await slow.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', gender: 'male' } });
      const p = (await slow.request('GET', `/fhir/Patient/${created.json.id}/_history/1/$verify`)).json.parameter as Parameter[];
      expect(value(p, 'status')).to.equal('pending');
      expect(value(p, 'verified')).to.equal(false);
      expect(value(p, 'contentMatchesLeaf')).to.equal(true);
      expect(values(p, 'failed')).to.deep.equal([]);
      const status = (await slow.request('GET', '/fhir/$ledger')).json.parameter as Parameter[];
      expect(value(status, 'pendingLeaves')).to.equal(1);
      await slow.ledger.anchorNow();
      const after = (await slow.request('GET', `/fhir/Patient/${created.json.id}/_history/1/$verify`)).json.parameter as Parameter[];
      expect(value(after, 'status')).to.equal('verified');
    } finally {
      await slow.stop();
    }
  });

  it('$ledger-consistency proves that a later anchored root extends an earlier one (RFC 9162 §2.1.4)', async () => {
    const status = await waitForAnchoring(8);
    const firstSize = value(param(status, 'lastAnchor')!.part!, 'treeSize') as number;
    for (let i = 0; i < 3; i++) {
      await server.request('POST', '/fhir/Observation', { body: { resourceType: 'Observation', status: 'final', code: { text: `later ${i}` }, subject: { reference: `Patient/${patientId}` } } });
    }
    const later = await waitForAnchoring(firstSize + 3);
    const secondSize = value(param(later, 'lastAnchor')!.part!, 'treeSize') as number;
    const response = await server.request('GET', `/fhir/$ledger-consistency?first=${firstSize}`);
    expect(response.status).to.equal(200);
    const p = response.json.parameter as Parameter[];
    expect(value(p, 'firstTreeSize')).to.equal(firstSize);
    expect(value(p, 'secondTreeSize')).to.equal(secondSize, 'second defaults to the latest anchored size');
    const hex = (h: unknown) => Buffer.from(h as string, 'hex');
    const [firstRoot, secondRoot] = [hex(value(p, 'firstRoot')), hex(value(p, 'secondRoot'))];
    const proof = values(p, 'consistencyProof').map(hex);
    expect(verifyConsistency(firstSize, secondSize, firstRoot, secondRoot, proof)).to.equal(true);
    expect(verifyConsistency(firstSize, secondSize, firstRoot, Buffer.alloc(32), proof)).to.equal(false);
    // Both roots are the anchored ones, and the chain holds them.
    expect(value(param(p, 'firstAnchor')!.part!, 'root')).to.equal(firstRoot.toString('hex'));
    expect(value(param(p, 'secondAnchor')!.part!, 'root')).to.equal(secondRoot.toString('hex'));
    const rootOf = async (size: number) => {
      const data = `0xdc299d69${size.toString(16).padStart(64, '0')}`;
      return String(await jsonRpc(anvil.rpcUrl, 'eth_call', [{ to: contractAddress, data }, 'latest'])).slice(2);
    };
    expect(await rootOf(firstSize)).to.equal(firstRoot.toString('hex'));
    expect(await rootOf(secondSize)).to.equal(secondRoot.toString('hex'));
    for (const bad of ['', '?first=0', `?first=${secondSize + 1}`, `?first=${secondSize}&second=${secondSize + 100}`, '?first=abc', `?first=3&second=2`]) {
      expect((await server.request('GET', `/fhir/$ledger-consistency${bad}`)).status, bad).to.equal(400);
    }
  });

  it('tampering with one stored version in the SQLite file: $verify fails exactly that version', async () => {
    // More versions and a second root, so the proofs cross several anchors.
    const second = await server.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', name: [{ family: 'Kim' }] } });
    const otherId = second.json.id as string;
    await server.request('PUT', `/fhir/Patient/${otherId}`, { body: { resourceType: 'Patient', id: otherId, name: [{ family: 'Kim', given: ['Jo'] }] } });
    await waitForAnchoring(10);

    const db = new Database(path.join(server.dataDir, 'fhir.sqlite'));
    db.pragma('busy_timeout = 5000');
    const changed = db.prepare(`
      UPDATE versions SET content = replace(content, '"Kim"', '"Kym"')
      WHERE version_id = 1 AND rid = (SELECT rid FROM resources WHERE type = 'Patient' AND id = ?)`).run(otherId);
    db.close();
    expect(changed.changes).to.equal(1);

    const tampered = (await server.request('GET', `/fhir/Patient/${otherId}/_history/1/$verify`)).json.parameter as Parameter[];
    expect(value(tampered, 'verified')).to.equal(false);
    expect(value(tampered, 'status')).to.equal('failed');
    expect(values(tampered, 'failed')).to.deep.equal(['content']);
    expect(value(tampered, 'contentMatchesLeaf')).to.equal(false);
    // The log and the chain are intact: the stored leaf is still proven.
    expect(value(tampered, 'proofMatchesRoot')).to.equal(true);
    expect(value(tampered, 'rootOnChain')).to.equal(true);

    const resource = (await server.request('GET', `/fhir/Patient/${otherId}/$verify`)).json.parameter as Parameter[];
    expect(value(resource, 'verified')).to.equal(false);
    expect(value(resource, 'failedVersions')).to.equal(1);
    const byReference = Object.fromEntries(resource.filter((x) => x.name === 'version')
      .map((x) => [value(x.part!, 'reference'), value(x.part!, 'status')]));
    expect(byReference).to.deep.equal({
      [`Patient/${otherId}/_history/2`]: 'verified',
      [`Patient/${otherId}/_history/1`]: 'failed',
    });
    // Every other version in the store still verifies.
    const untouched = (await server.request('GET', `/fhir/Patient/${patientId}/$verify`)).json.parameter as Parameter[];
    expect(value(untouched, 'verified')).to.equal(true);
  });

  it('tampering with a leaf hash fails the proof of that version only', async () => {
    const db = new Database(path.join(server.dataDir, 'fhir.sqlite'));
    db.pragma('busy_timeout = 5000');
    // Leaf 0 is the patient's first version; give it the hash that its changed content would have.
    db.prepare('UPDATE ledger_leaves SET leaf_hash = ? WHERE leaf_index = 0').run(Buffer.alloc(32, 7));
    db.close();
    const p = (await server.request('GET', `/fhir/Patient/${patientId}/_history/1/$verify`)).json.parameter as Parameter[];
    expect(values(p, 'failed')).to.deep.equal(['content', 'proof']);
    expect(value(p, 'rootOnChain')).to.equal(true);
  });
});

describe('ledger end to end: the embedded chain (npm start default)', function () {
  // Two start-ups of the server and of anvil (from its state file): 52 s seen on a loaded machine.
  this.timeout(180_000);

  it('starts anvil itself, anchors, and keeps the anchors across a restart on the same DATA_DIR', async () => {
    const first = await startTestServer({ ledgerMode: 'embedded', ledgerBatchSeconds: 0.1 });
    const dataDir = first.dataDir;
    let id: string;
    try {
      id = (await first.request('POST', '/fhir/Patient', { body: { resourceType: 'Patient', gender: 'other' } })).json.id;
      await waitFor(async () => (await first.ledger.status()).anchoredSize >= 1,
        { intervalMs: 50, what: async () => `anchored: ${JSON.stringify(await first.ledger.status())}` });
      const p = (await first.request('GET', `/fhir/Patient/${id}/_history/1/$verify`)).json.parameter as Parameter[];
      expect(value(p, 'status')).to.equal('verified');
    } finally {
      await first.close();
    }
    const second = await startTestServer({ ledgerMode: 'embedded', ledgerBatchSeconds: 0.1, dataDir });
    try {
      // The node restarts from its state file, with the same contract and roots.
      await second.ledger.anchorNow();
      const p = (await second.request('GET', `/fhir/Patient/${id}/_history/1/$verify`)).json.parameter as Parameter[];
      expect(value(p, 'status')).to.equal('verified');
      expect(value(p, 'rootOnChain')).to.equal(true);
      const status = await second.ledger.status();
      expect(status.anchorer?.state).to.equal('idle');
      expect(status.anchoredSize).to.equal(1);
    } finally {
      await second.stop();
    }
  });
});
