/**
 * Node's HTTP server hands a CONNECT request (a tunnel, RFC 9110 section 9.3.6) to 'connect'
 * listeners instead of the request handler, and with none drops the connection without an
 * answer. This passes it to the app like any other request, so it gets the app's answer (405
 * and an OperationOutcome, http/middleware/unsupported-methods.ts); no tunnel is ever opened.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export function answerConnectRequests(server: http.Server, handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    // A client that goes away mid-answer must not become an uncaught socket error.
    socket.on('error', () => socket.destroy());
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => {
      res.detachSocket(socket as Socket);
      socket.end();
    });
    handle(req, res);
  });
}
