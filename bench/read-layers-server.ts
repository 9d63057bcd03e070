/**
 * One layer of the read path at a time, to show where a read's time goes (bench/read-layers.bench.ts):
 *   bare        Koa answering the same bytes (the rest-core baseline)
 *   log         + the server's request logger (pino, one line per request, the server's batching destination)
 *   parse       + the FHIR base's dispatch and parseInteraction, the URL grammar (reads answered as bare)
 *   http        the whole http/ layer of the server and the executor (logger, errors, negotiation,
 *               the interaction adapter, the executor's read) over an in-memory version: no storage
 * Usage: node dist/bench/read-layers-server.js <layer> <body file> <log file>  (prints {"port":N})
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { pino } from 'pino';
import { BufferedLogDestination } from '../src/buffered-log-destination.js';
import { parseInteraction } from '../src/fhir/interaction.js';
import { createApp } from '../src/http/app.js';
import { requestLogger } from '../src/http/middleware/request-logger.js';
import { ALLOW_ALL } from '../src/auth/access-policy.js';
import { InteractionExecutor } from '../src/services/interaction-executor.js';
import { OperationRegistry } from '../src/services/operation-registry.js';
import type { ResourceService } from '../src/services/resource-service.js';
import type { SearchService } from '../src/services/search-service.js';
import type { StoredVersion } from '../src/store/store.js';

const [layer, bodyFile, logFile] = process.argv.slice(2) as [string, string, string];
const body = fs.readFileSync(bodyFile, 'utf8');
const resource = JSON.parse(body) as { resourceType: string; id: string; meta: { versionId: string; lastUpdated: string } };
const version: StoredVersion = {
  resourceType: resource.resourceType, id: resource.id, versionId: Number(resource.meta.versionId),
  lastUpdated: resource.meta.lastUpdated, deleted: false, json: body,
};
// The server's own log destination (server.ts createLogger).
const logger = pino({}, new BufferedLogDestination(fs.openSync(logFile, 'w'), { flushChars: 16_384 }));

function bareHandler(ctx: Koa.Context): void {
  ctx.set('ETag', `W/"${version.versionId}"`);
  ctx.set('Last-Modified', new Date(version.lastUpdated).toUTCString());
  ctx.type = 'application/fhir+json; charset=utf-8';
  ctx.body = body;
}

let app: Koa;
if (layer === 'http') {
  // Only the methods a read calls; everything else of the http layer and the executor is the real code.
  const readOnlyService = {
    assertKnownType: () => undefined,
    assertValidId: () => undefined,
    isKnownType: () => true,
    read: async () => version,
  } as unknown as ResourceService;
  const executor = new InteractionExecutor({
    resources: readOnlyService, search: {} as SearchService, operations: new OperationRegistry(), policy: ALLOW_ALL,
    capabilityStatement: () => ({ resourceType: 'CapabilityStatement' }), processBundle: async () => ({ resourceType: 'Bundle' }),
  });
  app = createApp({
    logger, executor, isKnownType: () => true, publicBaseUrl: undefined,
    limits: { maxBodyBytes: 1 << 20, maxJsonDepth: 64, maxFormBodyBytes: 1 << 16, maxElementRepetitions: 1000 },
  });
} else if (layer === 'parse') {
  app = new Koa();
  app.use(requestLogger(logger, (type) => type === 'Patient'));
  // http/app.ts's dispatch on the FHIR base, then the URL parsed as the adapter does; reads answered as bare.
  app.use((ctx, next) => {
    if (ctx.path !== '/fhir' && !ctx.path.startsWith('/fhir/')) return next();
    parseInteraction(ctx.method, ctx.querystring === '' ? ctx.path.slice(5) : `${ctx.path.slice(5)}?${ctx.querystring}`);
    bareHandler(ctx);
    return undefined;
  });
} else {
  app = new Koa();
  if (layer === 'log') app.use(requestLogger(logger, (type) => type === 'Patient'));
  app.use(bareHandler);
}
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
