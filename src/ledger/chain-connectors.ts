/**
 * How the anchorer reaches its chain, per ledger mode (config.ts LedgerMode). A connector is
 * called until it succeeds: while the chain is down the anchorer backs off and calls again.
 */
import fs from 'node:fs';
import type { AnchorChain } from './anchor-chain.js';
import type { ChainConnector, LedgerLogger } from './anchorer.js';
import type { EmbeddedChain } from './embedded-chain.js';
import { embeddedChainInfoFile, readEmbeddedChainInfo } from './embedded-chain.js';
import { deployLedgerAnchor, EthersAnchorChain } from './ethers-anchor-chain.js';

/** The embedded anvil node: started (and the contract deployed) on first use. */
export function embeddedChainConnector(embedded: EmbeddedChain): ChainConnector {
  return async (): Promise<AnchorChain> => {
    const { endpoint, contract } = await embedded.ready();
    return EthersAnchorChain.connect(endpoint, contract);
  };
}

export interface RpcChainSettings {
  rpcUrl: string;
  privateKey: string;
  /** An existing LedgerAnchor; unset: deployed on first connection and remembered in dataDir. */
  contractAddress: string | undefined;
  deployBlock: number;
  dataDir: string;
  logger?: LedgerLogger;
}

/** Any Ethereum JSON-RPC endpoint (CHAIN_RPC_URL). */
export function rpcChainConnector(settings: RpcChainSettings): ChainConnector {
  return async (): Promise<AnchorChain> => {
    const endpoint = { rpcUrl: settings.rpcUrl, privateKey: settings.privateKey };
    let contractAddress = settings.contractAddress;
    let deployBlock = settings.deployBlock;
    if (!contractAddress) {
      const remembered = readEmbeddedChainInfo(settings.dataDir);
      if (remembered) {
        ({ contractAddress, deployBlock } = remembered);
      } else {
        const deployed = await deployLedgerAnchor(endpoint);
        ({ contractAddress, deployBlock } = deployed);
        fs.mkdirSync(settings.dataDir, { recursive: true });
        fs.writeFileSync(embeddedChainInfoFile(settings.dataDir), `${JSON.stringify({
          chainId: deployed.chainId, contractAddress, deployBlock, deployTx: deployed.txHash,
        }, null, 2)}\n`);
        settings.logger?.info({ contract: contractAddress, chainId: deployed.chainId }, 'LedgerAnchor deployed (LEDGER_CONTRACT_ADDRESS was unset)');
      }
    }
    return EthersAnchorChain.connect(endpoint, { contractAddress, deployBlock });
  };
}
