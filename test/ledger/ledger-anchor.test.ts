/**
 * The LedgerAnchor contract on a real anvil node (one per file, ephemeral port): the committed
 * artifact is what the source compiles to, access control, duplicate tree sizes, events, gas;
 * and the ethers adapter (EthersAnchorChain) the anchorer uses.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { expect } from 'chai';
import { Contract, FetchRequest, JsonRpcProvider, Network, Wallet, type ContractTransactionResponse, type Log } from 'ethers';
import { ANVIL_DEV_ADDRESS, ANVIL_DEV_PRIVATE_KEY, ANVIL_DEV_PRIVATE_KEY_2, AnvilNode } from '../../src/ledger/anvil-node.js';
import { loadLedgerAnchorArtifact } from '../../src/ledger/ledger-anchor-artifact.js';
import { compileLedgerAnchor } from '../../src/ledger/ledger-anchor-compiler.js';
import { deployLedgerAnchor, EthersAnchorChain } from '../../src/ledger/ethers-anchor-chain.js';
import { waitFor } from '../support/wait-for.js';
import { rejectionOf } from '../support/rejection-of.js';

const root = () => randomBytes(32);

/** Anvil mines right after eth_sendRawTransaction returns, not before: poll until it is there. */
async function receiptOf(chain: EthersAnchorChain, hash: string) {
  return waitFor(() => chain.receipt(hash), { what: `the receipt of ${hash}` });
}
const hex = (b: Buffer) => `0x${b.toString('hex')}`;

describe('LedgerAnchor contract (real anvil node)', function () {
  this.timeout(60_000);
  let anvil: AnvilNode;
  let provider: JsonRpcProvider;
  let owner: Wallet;
  let other: Wallet;
  let address: string;
  let asOwner: Contract;
  let asOther: Contract;
  const artifact = loadLedgerAnchorArtifact();

  before(async () => {
    anvil = await AnvilNode.start();
    const deployed = await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    address = deployed.contractAddress;
    const request = new FetchRequest(anvil.rpcUrl);
    provider = new JsonRpcProvider(request, Network.from(31337), { staticNetwork: Network.from(31337), polling: false, cacheTimeout: -1 });
    owner = new Wallet(ANVIL_DEV_PRIVATE_KEY, provider);
    other = new Wallet(ANVIL_DEV_PRIVATE_KEY_2, provider);
    asOwner = new Contract(address, artifact.abi as string[], owner);
    asOther = new Contract(address, artifact.abi as string[], other);
  });
  after(async () => {
    provider?.destroy();
    await anvil?.stop();
  });

  async function mined(tx: Promise<ContractTransactionResponse>) {
    const sent = await tx;
    const receipt = await provider.getTransactionReceipt(sent.hash) ?? await sent.wait();
    return receipt!;
  }

  function eventsOf(logs: readonly Log[]) {
    return logs.map((l) => asOwner.interface.parseLog(l)!).map((e) => ({ name: e.name, args: [...e.args].map(String) }));
  }

  it('the committed artifact is exactly what solc makes of contracts/LedgerAnchor.sol', function () {
    this.timeout(60_000);
    const fresh = compileLedgerAnchor();
    expect(fresh.sourceSha256).to.equal(artifact.sourceSha256, 'source changed: run node dist/src/ledger/ledger-anchor-compiler.js');
    expect(fresh.compiler.version).to.equal(artifact.compiler.version);
    expect(fresh.bytecode).to.equal(artifact.bytecode);
    expect(fresh.abi).to.deep.equal(artifact.abi);
  });

  it('deploys with the deployer as owner and first anchorer, and the runtime code of the artifact', async () => {
    expect(await asOwner.owner()).to.equal(ANVIL_DEV_ADDRESS);
    expect(await asOwner.isAnchorer(ANVIL_DEV_ADDRESS)).to.equal(true);
    expect(await asOwner.isAnchorer(other.address)).to.equal(false);
    expect(await provider.getCode(address)).to.equal(artifact.deployedBytecode);
  });

  it('records a root for a tree size, emits RootAnchored, and rootOf returns it', async () => {
    const r = root();
    const receipt = await mined(asOwner.anchor!(1000, hex(r)));
    expect(receipt.status).to.equal(1);
    expect(eventsOf(receipt.logs)).to.deep.equal([{ name: 'RootAnchored', args: ['1000', hex(r)] }]);
    expect(await asOwner.rootOf(1000)).to.equal(hex(r));
    expect(await asOwner.rootOf(999)).to.equal(`0x${'00'.repeat(32)}`);
  });

  it('refuses a second root for a tree size it already has, even the same root', async () => {
    const first = root();
    await mined(asOwner.anchor!(2000, hex(first)));
    for (const again of [root(), first]) {
      try {
        await asOwner.anchor!.staticCall(2000, hex(again));
        expect.fail('duplicate accepted');
      } catch (error) {
        expect((error as { revert?: { name: string } }).revert?.name).to.equal('TreeSizeAlreadyAnchored');
      }
    }
    // Sent anyway (no estimate): the transaction reverts and the first root stays.
    const sent = await asOwner.anchor!(2000, hex(root()), { gasLimit: 100_000 });
    const receipt = await provider.waitForTransaction(sent.hash).catch(() => undefined) ?? await provider.getTransactionReceipt(sent.hash);
    expect(receipt!.status).to.equal(0);
    expect(await asOwner.rootOf(2000)).to.equal(hex(first));
  });

  it('refuses tree size 0 and the zero root', async () => {
    for (const [size, r, reason] of [[0, hex(root()), 'EmptyTree'], [5, `0x${'00'.repeat(32)}`, 'ZeroRoot']] as const) {
      try {
        await asOwner.anchor!.staticCall(size, r);
        expect.fail('accepted');
      } catch (error) {
        expect((error as { revert?: { name: string } }).revert?.name).to.equal(reason);
      }
    }
  });

  it('accepts roots only from anchorers that the owner added, until removed', async () => {
    const tryAnchor = async (size: number) => {
      try {
        await asOther.anchor!.staticCall(size, hex(root()));
        return 'accepted';
      } catch (error) {
        return (error as { revert?: { name: string } }).revert?.name;
      }
    };
    expect(await tryAnchor(3000)).to.equal('NotAnchorer');
    // Only the owner manages anchorers.
    try {
      await asOther.addAnchorer!.staticCall(other.address);
      expect.fail('non-owner added an anchorer');
    } catch (error) {
      expect((error as { revert?: { name: string } }).revert?.name).to.equal('NotOwner');
    }
    const added = await mined(asOwner.addAnchorer!(other.address));
    expect(eventsOf(added.logs)).to.deep.equal([{ name: 'AnchorerAdded', args: [other.address] }]);
    expect(await tryAnchor(3000)).to.equal('accepted');
    const receipt = await mined(asOther.anchor!(3000, hex(root())));
    expect(receipt.status).to.equal(1);
    const removed = await mined(asOwner.removeAnchorer!(other.address));
    expect(eventsOf(removed.logs)).to.deep.equal([{ name: 'AnchorerRemoved', args: [other.address] }]);
    expect(await tryAnchor(3001)).to.equal('NotAnchorer');
  });

  it('transfers ownership only by the owner', async () => {
    const third = Wallet.createRandom();
    try {
      await asOther.transferOwnership!.staticCall(other.address);
      expect.fail('non-owner transferred ownership');
    } catch (error) {
      expect((error as { revert?: { name: string } }).revert?.name).to.equal('NotOwner');
    }
    // Exercised on a second deployment, so the rest of the file keeps its owner.
    const second = await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    const contract = new Contract(second.contractAddress, artifact.abi as string[], owner);
    const receipt = await mined(contract.transferOwnership!(third.address));
    expect(eventsOf(receipt.logs)).to.deep.equal([{ name: 'OwnershipTransferred', args: [ANVIL_DEV_ADDRESS, third.address] }]);
    expect(await contract.owner()).to.equal(third.address);
  });

  it('costs under 50,000 gas per anchor, i.e. under 50 gas per version at 1,000 versions per root', async () => {
    const gas: number[] = [];
    for (let i = 0; i < 5; i++) {
      const receipt = await mined(asOwner.anchor!(10_000 + i * 1000, hex(root())));
      gas.push(Number(receipt.gasUsed));
    }
    const max = Math.max(...gas);
    // eslint-disable-next-line no-console
    console.log(`        gas per anchor(): ${gas.join(', ')} → ${(max / 1000).toFixed(1)} gas per version at 1,000 versions per root`);
    expect(max).to.be.below(50_000);
  });
});

describe('EthersAnchorChain (real anvil node)', function () {
  this.timeout(60_000);
  let anvil: AnvilNode;
  let chain: EthersAnchorChain;

  before(async () => {
    anvil = await AnvilNode.start();
    const deployed = await deployLedgerAnchor({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY });
    chain = await EthersAnchorChain.connect({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY },
      { contractAddress: deployed.contractAddress, deployBlock: deployed.deployBlock });
  });
  after(async () => {
    chain?.close();
    await anvil?.stop();
  });

  it('signs, broadcasts, finds the receipt and the event of an anchor', async () => {
    expect(chain.chainId).to.equal('31337');
    expect(chain.account).to.equal(ANVIL_DEV_ADDRESS);
    const r = root();
    expect(await chain.rootOf(7)).to.equal(undefined);
    const signed = await chain.signAnchor(7, r);
    expect(signed.hash).to.match(/^0x[0-9a-f]{64}$/);
    expect(await chain.receipt(signed.hash)).to.equal(undefined);
    await chain.broadcast(signed.raw);
    const receipt = await receiptOf(chain, signed.hash);
    expect(receipt?.status).to.equal('success');
    expect(receipt!.gasUsed).to.be.below(50_000);
    expect((await chain.rootOf(7))!.equals(r)).to.equal(true);
    expect(await chain.findAnchor(7)).to.deep.equal({ txHash: signed.hash, blockNumber: receipt!.blockNumber });
    expect(await chain.findAnchor(8)).to.equal(undefined);
  });

  it('explains why an anchor would fail before sending it', async () => {
    const r = root();
    const signed = await chain.signAnchor(9, r);
    await chain.broadcast(signed.raw);
    await receiptOf(chain, signed.hash);
    // A new connection estimates the gas of its first anchor, which explains the failure.
    const fresh = await EthersAnchorChain.connect({ rpcUrl: anvil.rpcUrl, privateKey: ANVIL_DEV_PRIVATE_KEY },
      { contractAddress: chain.contractAddress });
    try {
      await fresh.signAnchor(9, root());
      expect.fail('signed a duplicate');
    } catch (error) {
      expect((error as Error).message).to.match(/TreeSizeAlreadyAnchored\(9, 0x[0-9a-f]{64}\)/);
    } finally {
      fresh.close();
    }
  });

  it('a transaction whose nonce was used can no longer be broadcast', async () => {
    const first = await chain.signAnchor(11, root());
    const second = await chain.signAnchor(12, root()); // same nonce: the first is not sent yet
    expect(second.nonce).to.equal(first.nonce);
    await chain.broadcast(first.raw);
    await receiptOf(chain, first.hash);
    try {
      await chain.broadcast(second.raw);
      expect.fail('broadcast a used nonce');
    } catch (error) {
      expect((error as Error).name).to.equal('NonceAlreadyUsedError');
    }
  });

  it('fails, without hanging, when the node refuses connections', async () => {
    const error = await rejectionOf(EthersAnchorChain.connect(
      { rpcUrl: 'http://127.0.0.1:1', privateKey: ANVIL_DEV_PRIVATE_KEY, requestTimeoutMs: 2000 },
      { contractAddress: chain.contractAddress }));
    expect(error.name).to.not.equal('AssertionError');
    expect(error.message).to.match(/ECONNREFUSED|fetch failed|connect/i);
  });

  it('fails, without hanging, when the node accepts but never answers: the request timeout ends it', async () => {
    // A socket that reads the request and never responds: only requestTimeoutMs can end the wait.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => { sockets.add(socket); socket.on('data', () => undefined); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const error = await rejectionOf(EthersAnchorChain.connect(
        { rpcUrl: `http://127.0.0.1:${port}`, privateKey: ANVIL_DEV_PRIVATE_KEY, requestTimeoutMs: 300 },
        { contractAddress: chain.contractAddress }));
      expect(error.message).to.match(/timeout/i);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
