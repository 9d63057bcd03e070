/**
 * BufferedLogDestination on a real file: every line arrives, in order, whether written out by
 * size, by the timer, by close() or by flushSync() at exit; and pino drives it as a destination.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { BufferedLogDestination } from '../src/buffered-log-destination.js';
import { waitFor } from './support/wait-for.js';

describe('BufferedLogDestination (real file)', () => {
  let dir: string;
  let file: string;
  let fd: number;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhir-ledger-log-'));
    file = path.join(dir, 'log.ndjson');
    fd = fs.openSync(file, 'w');
  });
  afterEach(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const lines = (n: number) => Array.from({ length: n }, (_, i) => `{"n":${i},"text":"ünïcödé ${'x'.repeat(i % 50)}"}\n`);

  it('writes every line in order, across many size-triggered writes, the rest on close()', () => {
    const destination = new BufferedLogDestination(fd, { flushChars: 1000, flushIntervalMs: 10_000 });
    const sent = lines(5000);
    for (const line of sent) destination.write(line);
    expect(fs.readFileSync(file, 'utf8').length).to.be.greaterThan(0);
    destination.close();
    expect(fs.readFileSync(file, 'utf8')).to.equal(sent.join(''));
  });

  it('holds a few lines until the interval, then writes them without more traffic', async () => {
    const destination = new BufferedLogDestination(fd, { flushChars: 1_000_000, flushIntervalMs: 50 });
    destination.write('{"a":1}\n');
    expect(fs.readFileSync(file, 'utf8')).to.equal('');
    // No further write comes: only the interval timer can flush the line.
    await waitFor(() => fs.readFileSync(file, 'utf8') !== '', { what: 'the interval flush' });
    expect(fs.readFileSync(file, 'utf8')).to.equal('{"a":1}\n');
    destination.close();
  });

  it('flushSync() writes what waits at once (process exit)', () => {
    const destination = new BufferedLogDestination(fd, { flushChars: 1_000_000, flushIntervalMs: 10_000 });
    const sent = lines(100);
    for (const line of sent) destination.write(line);
    destination.flushSync();
    expect(fs.readFileSync(file, 'utf8')).to.equal(sent.join(''));
    destination.close();
  });

  it('as pino\'s destination, the lines of a process that exits normally are all in the file', () => {
    const module = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../src/buffered-log-destination.js');
    const pinoModule = import.meta.resolve('pino');
    const script = `
      import fs from 'node:fs';
      import { pino } from ${JSON.stringify(pinoModule)};
      import { BufferedLogDestination } from ${JSON.stringify(module)};
      const destination = new BufferedLogDestination(fs.openSync(${JSON.stringify(file)}, 'a'));
      process.once('exit', () => destination.flushSync());
      const logger = pino({}, destination);
      for (let i = 0; i < 20000; i++) logger.info({ i }, 'line');
      setTimeout(() => process.exit(0), 5);`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(result.status, result.stderr).to.equal(0);
    const written = fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(written.map((l) => l.i)).to.deep.equal(Array.from({ length: 20000 }, (_, i) => i));
    expect(written[0]!.msg).to.equal('line');
    expect(pino).to.be.a('function');
  });
});
