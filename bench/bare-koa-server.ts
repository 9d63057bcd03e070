/**
 * The baseline of the read benchmark: a bare Koa server that answers every GET with the
 * same bytes and headers the FHIR server sends for one resource read.
 * Usage: node dist/bench/bare-koa-server.js <file with the body> (prints {"port":N}).
 */
import fs from 'node:fs';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';

const body = fs.readFileSync(process.argv[2]!, 'utf8');
const etag = process.argv[3] ?? 'W/"1"';
const app = new Koa();
app.use((ctx) => {
  ctx.set('ETag', etag);
  ctx.set('Last-Modified', new Date().toUTCString());
  ctx.type = 'application/fhir+json; charset=utf-8';
  ctx.body = body;
});
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
