/**
 * A local anvil node (Foundry's development chain, shipped by the npm package
 * @foundry-rs/anvil as a per-platform binary), run through anvil-guardian so that it never
 * outlives the process that started it. Used by the embedded chain and by the tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Anvil's first default development account (mnemonic "test test … junk"), public knowledge. */
export const ANVIL_DEV_PRIVATE_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const ANVIL_DEV_ADDRESS = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
/** The second default account, for tests of access control. */
export const ANVIL_DEV_PRIVATE_KEY_2 = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';

/** npm's os/cpu names → the @foundry-rs/anvil-<platform> package suffixes. */
const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': 'linux-amd64',
  'linux-arm64': 'linux-arm64',
  'darwin-x64': 'darwin-amd64',
  'darwin-arm64': 'darwin-arm64',
  'win32-x64': 'win32-amd64',
};

/** The anvil binary that npm installed for this platform. */
export function resolveAnvilBinary(): string {
  const suffix = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (!suffix) throw new Error(`no anvil binary is published for ${process.platform}-${process.arch}; set ANVIL_PATH`);
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve(`@foundry-rs/anvil-${suffix}/package.json`);
  } catch {
    throw new Error(`@foundry-rs/anvil-${suffix} is not installed (npm install), or set ANVIL_PATH`);
  }
  const binary = path.join(path.dirname(packageJson), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  if (!fs.existsSync(binary)) throw new Error(`anvil binary missing at ${binary}`);
  return binary;
}

export async function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, host, resolve);
  });
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** One JSON-RPC call with a timeout, without a provider (used to wait for the node). */
export async function jsonRpc(url: string, method: string, params: unknown[] = [], timeoutMs = 2000): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = await response.json() as { result?: unknown; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

export interface AnvilOptions {
  binary?: string;
  host?: string;
  /** 0 or absent: a free port on loopback. */
  port?: number;
  /** --state: loaded at start, written at exit (and every stateIntervalSeconds). */
  stateFile?: string;
  /** --load-state only: start from a state file without ever writing it. */
  loadStateFile?: string;
  stateIntervalSeconds?: number;
  chainId?: number;
  startTimeoutMs?: number;
}

export class AnvilNode {
  private constructor(
    readonly rpcUrl: string,
    readonly port: number,
    private readonly child: ChildProcess,
    /** Resolves with the exit code when the guardian (and so anvil) has exited. */
    readonly exited: Promise<number | null>,
    private readonly stderr: () => string,
    private readonly reportedAnvilPid: () => number | undefined,
  ) {}

  /** The guardian's pid (the process this server started). */
  get pid(): number {
    return this.child.pid!;
  }

  /** anvil's own pid, as its guardian reported it (undefined until then). */
  get anvilPid(): number | undefined {
    return this.reportedAnvilPid();
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  static async start(options: AnvilOptions = {}): Promise<AnvilNode> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port || await freeLoopbackPort(host);
    const args = ['--host', host, '--port', String(port), '--silent'];
    if (options.stateFile) args.push('--state', options.stateFile);
    if (options.loadStateFile) args.push('--load-state', options.loadStateFile);
    if (options.stateIntervalSeconds) args.push('--state-interval', String(options.stateIntervalSeconds));
    if (options.chainId !== undefined) args.push('--chain-id', String(options.chainId));
    const guardian = fileURLToPath(new URL('./anvil-guardian.js', import.meta.url));
    const child = spawn(process.execPath, [guardian, options.binary ?? resolveAnvilBinary(), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000); });
    // The guardian's first stdout line names anvil's pid (see anvil-guardian.ts).
    let stdout = '';
    let anvilPid: number | undefined;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      if (anvilPid !== undefined) return;
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      try {
        anvilPid = (JSON.parse(stdout.slice(0, newline)) as { anvilPid?: number }).anvilPid;
      } catch { /* not the report */ }
      stdout = '';
    });
    // The pipe is the guardian's lifeline; it must not keep this process alive by itself.
    child.stdin!.on('error', () => undefined);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const node = new AnvilNode(`http://${host}:${port}`, port, child, exited, () => stderr, () => anvilPid);
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    for (let answered = false; ;) {
      if (!node.running) throw new Error(`anvil exited at start: ${stderr.trim() || 'no output'}`);
      try {
        if (!answered) await jsonRpc(node.rpcUrl, 'eth_chainId', [], 500);
        answered = true;
        // The guardian reports anvil's pid before anvil can answer; its line may still be in the pipe.
        if (anvilPid !== undefined || Date.now() > deadline) return node;
      } catch {
        if (Date.now() > deadline) {
          await node.stop();
          throw new Error(`anvil did not answer on ${node.rpcUrl} within the start timeout: ${stderr.trim()}`);
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops anvil gracefully (it writes its --state file) and waits until it has exited. */
  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM');
      this.child.stdin?.end();
    }
    await this.exited;
  }

  /** The last lines anvil wrote to stderr, for error messages. */
  lastOutput(): string {
    return this.stderr();
  }
}
