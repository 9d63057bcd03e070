/**
 * The body of the WAL checkpointer's worker thread (wal-checkpointer.ts): its own connection
 * to the database, a PASSIVE checkpoint at every tick, closed on 'stop'.
 * https://www.sqlite.org/wal.html#ckpt: a PASSIVE checkpoint copies what it can without waiting
 * for, or blocking, the writer and the readers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

interface CheckpointWorkerData {
  file: string;
  synchronous: 'NORMAL' | 'FULL';
  intervalMs: number;
}

const { file, synchronous, intervalMs } = workerData as CheckpointWorkerData;
const db = new Database(file, { fileMustExist: true });
// The checkpoint syncs the database file as this connection's setting says: as the writer's.
db.pragma(`synchronous = ${synchronous}`);
const timer = setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), intervalMs);

parentPort!.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort!.close();
});
