/**
 * What the ledger's end-to-end fault tests share: a write load of Observations over HTTP, and
 * the roots a contract holds, read from its RootAnchored events (a tree size anchored twice
 * fails the test).
 */
import { expect } from 'chai';
import { Interface } from 'ethers';
import { jsonRpc } from '../../src/ledger/anvil-node.js';
import { loadLedgerAnchorArtifact } from '../../src/ledger/ledger-anchor-artifact.js';

const iface = new Interface(loadLedgerAnchorArtifact().abi as string[]);

/** RootAnchored events of a contract: tree size → root (hex). */
export async function rootsOnChain(rpcUrl: string, contractAddress: string): Promise<Map<number, string>> {
  const logs = await jsonRpc(rpcUrl, 'eth_getLogs', [{
    address: contractAddress, fromBlock: '0x0', toBlock: 'latest', topics: [iface.getEvent('RootAnchored')!.topicHash],
  }], 10_000) as { topics: string[]; data: string }[];
  const roots = new Map<number, string>();
  for (const l of logs) {
    const size = Number(BigInt(l.topics[1]!));
    expect(roots.has(size), `tree size ${size} anchored twice`).to.equal(false);
    roots.set(size, l.data.slice(2));
  }
  return roots;
}

export interface WriteLoad {
  /** Writes answered 201 so far: what a test waits on to let the load run "for a while". */
  acknowledged(): number;
  stop(): Promise<{ ok: number; failed: number }>;
}

/** `workers` clients creating Observations in a loop until stopped. */
export function writeLoad(baseUrl: string, workers: number): WriteLoad {
  let running = true;
  let ok = 0;
  let failed = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) {
      try {
        const res = await fetch(`${baseUrl}/Observation`, {
          method: 'POST', headers: { 'Content-Type': 'application/fhir+json' },
          body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: `w${w}-${i}` }, subject: { reference: 'Patient/x' } }),
        });
        await res.arrayBuffer();
        if (res.status === 201) ok++; else failed++;
      } catch {
        failed++;
        if (!running) return;
      }
    }
  });
  return {
    acknowledged: () => ok,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ok, failed };
    },
  };
}
