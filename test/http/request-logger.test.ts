/**
 * The request logger on a bare Koa app: a 5xx logs the error's class, message and stack (and
 * nothing else of it); a 4xx is a normal line without its message.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { expect } from 'chai';
import Koa from 'koa';
import { pino } from 'pino';
import { FhirError } from '../../src/fhir/fhir-error.js';
import { errorHandler } from '../../src/http/middleware/error-handler.js';
import { requestLogger } from '../../src/http/middleware/request-logger.js';

class StoreExplodedError extends Error {
  readonly detail = 'MRN-445566';
}

describe('request logger', () => {
  const chunks: string[] = [];
  let server: Server;
  let origin: string;
  const lines = () => chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, any>);

  before(async () => {
    const app = new Koa();
    app.use(requestLogger(pino({ level: 'trace' }, { write: (c: string) => { chunks.push(c); } }), (s) => s === 'Patient'));
    app.use(errorHandler);
    app.use(async (ctx) => {
      if (ctx.path.endsWith('/boom')) throw new StoreExplodedError('the store is unavailable', { cause: new Error('MRN-445566 cause') });
      if (ctx.path.endsWith('/bad')) throw FhirError.badRequest('Quxworthy is not acceptable');
      ctx.body = 'ok';
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  beforeEach(() => { chunks.length = 0; });

  it('logs a 5xx with the error class, message and stack only', async () => {
    expect((await fetch(`${origin}/fhir/Patient/MRN-445566/boom?name=Quxworthy`)).status).to.equal(500);
    const [line] = lines();
    expect(line).to.include({ msg: 'request failed', method: 'GET', route: '/fhir/Patient/:id/:type', query: 'name=***', status: 500 });
    expect(Object.keys(line!.error).sort()).to.deep.equal(['message', 'stack', 'type']);
    expect(line!.error).to.include({ type: 'StoreExplodedError', message: 'the store is unavailable' });
    expect(line!.error.stack).to.match(/^Error: the store is unavailable\n\s+at /);
    expect(chunks.join('')).to.not.match(/MRN-445566|Quxworthy/);
  });

  it('logs a 4xx as a normal line, without the message', async () => {
    expect((await fetch(`${origin}/fhir/Patient/MRN-445566/bad`)).status).to.equal(400);
    const [line] = lines();
    expect(line).to.include({ msg: 'request', route: '/fhir/Patient/:id/:type', status: 400 });
    expect(line).to.not.have.property('error');
    expect(chunks.join('')).to.not.match(/MRN-445566|Quxworthy|acceptable/);
  });

  it('logs a success with method, route, status and duration', async () => {
    expect((await fetch(`${origin}/fhir/Patient?_count=3`)).status).to.equal(200);
    const [line] = lines();
    expect(line).to.include({ msg: 'request', method: 'GET', route: '/fhir/Patient', query: '_count=3', status: 200 });
    expect(line!.durationMs).to.be.a('number');
  });
});
