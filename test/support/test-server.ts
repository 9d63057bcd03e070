/**
 * Starts the real server in-process on an ephemeral port with a temporary data folder, and
 * gives tests a small fetch wrapper for exact HTTP checks.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import type { AccessPolicy } from '../../src/auth/access-policy.js';
import { startServer, type RunningServer } from '../../src/server.js';

export interface TestServer extends RunningServer {
  dataDir: string;
  request(method: string, urlPath: string, options?: { body?: unknown; headers?: Record<string, string> }): Promise<TestResponse>;
  stop(): Promise<void>;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export function temporaryDataDir(prefix = 'fhir-ledger-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * `logger`: where the server logs (default: nowhere), e.g. an in-memory stream a test reads.
 * `accessPolicy`: the policy the executor asks (default: everything allowed).
 */
export async function startTestServer(overrides: Partial<Config> = {}, logger?: Logger, accessPolicy?: AccessPolicy): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? temporaryDataDir();
  // Leaves are written either way; the chain is started only by tests that ask for it.
  // Tests compare what they stored with what they sent, so they store as sent
  // (DEID_MAPPING=none) unless they test de-identification and ask for a table.
  const config = loadConfig({}, { port: 0, host: '127.0.0.1', dataDir, ledgerMode: 'off', deidMapping: 'none', ...overrides });
  const server = await startServer(config, logger ?? pino({ level: 'silent' }), accessPolicy ? { accessPolicy } : {});
  const origin = server.baseUrl.replace(/\/fhir$/, '');
  return {
    ...server,
    dataDir,
    async request(method, urlPath, options = {}) {
      const headers: Record<string, string> = { ...(options.headers ?? {}) };
      let body: string | undefined;
      if (options.body !== undefined) {
        body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/fhir+json';
      }
      const response = await fetch(`${origin}${urlPath}`, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await response.text();
      let json: unknown;
      try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
      return { status: response.status, headers: response.headers, text, json };
    },
    async stop() {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
