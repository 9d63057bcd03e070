/**
 * Runs anvil as a child and ends it when the server that started this guardian goes away.
 *
 *   node anvil-guardian.js <anvil binary> [anvil arguments…]
 *
 * The server keeps this process's stdin open; when the server exits, however it exits (even by
 * SIGKILL, which no handler sees), stdin reaches end-of-file and anvil gets SIGTERM, on which it
 * writes its --state file and exits. Without this, a killed server would leave an orphaned
 * anvil holding the chain state of DATA_DIR. SIGTERM or SIGINT to the guardian do the same.
 */
import { spawn } from 'node:child_process';

const [binary, ...args] = process.argv.slice(2);
if (!binary) {
  process.stderr.write('usage: anvil-guardian <anvil binary> [anvil arguments…]\n');
  process.exit(2);
}

// anvil's stdout is not read (it runs --silent); this process's stdout reports anvil's pid, one
// JSON line, so that the server can name the node's own process (the one holding the state).
const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
let stopping = false;
process.stdout.on('error', () => undefined); // a server gone before reading it: nothing to report to
if (child.pid !== undefined) process.stdout.write(`${JSON.stringify({ anvilPid: child.pid })}\n`);

function stopChild(): void {
  if (stopping) return;
  stopping = true;
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  // A node that does not stop within 10 s is ended hard; the guardian must not outlive it long.
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
}

process.stdin.on('end', stopChild);
process.stdin.on('close', stopChild);
process.stdin.on('error', stopChild);
process.stdin.resume();
process.on('SIGTERM', stopChild);
process.on('SIGINT', stopChild);

child.on('error', (error) => {
  process.stderr.write(`anvil-guardian: cannot start ${binary}: ${error.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal === 'SIGTERM' ? 0 : 1));
});
