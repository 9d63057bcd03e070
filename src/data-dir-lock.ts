/**
 * One server per data folder. Two processes on the same DATA_DIR would each keep their own read
 * cache and their own anchorer over one database, and serve stale reads of each other's writes;
 * the second one refuses to start instead.
 *
 * The lock is a file in DATA_DIR holding the owner's pid, created exclusively (link(2), which
 * fails when the name exists, like O_EXCL) so that only one of two starting processes gets it.
 * A lock whose pid no longer runs (a killed server) is stale and taken over. It is released when
 * the server closes and when the process exits.
 */
import fs from 'node:fs';
import path from 'node:path';

export const LOCK_FILE_NAME = 'fhir-ledger.lock';

/** Thrown when another live process holds the folder's lock. */
export class DataDirLockedError extends Error {
  constructor(readonly file: string, readonly ownerPid: number) {
    super(`DATA_DIR ${path.dirname(file)} is in use by another fhir-ledger process (pid ${ownerPid}); `
      + `stop it first, or give this one its own DATA_DIR. If no fhir-ledger runs as pid ${ownerPid}, remove ${file}.`);
    this.name = 'DataDirLockedError';
  }
}

/** The lock files this process holds; released together at exit. */
const heldByThisProcess = new Set<string>();
let releaseAtExitInstalled = false;

function releaseAllAtExit(): void {
  for (const file of heldByThisProcess) unlinkIfOurs(file);
}

function unlinkIfOurs(file: string): void {
  try {
    if (readOwnerPid(file) === process.pid) fs.unlinkSync(file);
  } catch { /* already gone */ }
}

function readOwnerPid(file: string): number | undefined {
  const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: an existence check, nothing is sent
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DataDirLock {
  readonly file: string;
  release(): void;
}

/**
 * Creates `file` with `content`, unless it exists. The content is written to a file of this
 * process first and linked into place: link(2) fails when the name exists, like O_EXCL, and the
 * lock never exists without its pid, so a second process never finds an empty lock it would
 * take for stale.
 */
function createExclusively(file: string, content: string): boolean {
  const ownFile = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(ownFile, content, { flag: 'w' });
  try {
    fs.linkSync(ownFile, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(ownFile, { force: true });
  }
}

export function acquireDataDirLock(dataDir: string): DataDirLock {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE_NAME);
  // A few attempts: each one after the removal of a stale lock.
  for (let attempt = 1; ; attempt++) {
    if (createExclusively(file, `${process.pid}\n`)) break;
    let owner: number | undefined;
    try {
      owner = readOwnerPid(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw error;
    }
    // Our own pid is alive by definition, but if this process does not hold the lock, it was
    // left by an earlier process that had the same pid (a container whose server is always pid 1).
    const ownedElsewhere = owner !== undefined
      && (owner === process.pid ? heldByThisProcess.has(file) : isAlive(owner));
    if (ownedElsewhere) throw new DataDirLockedError(file, owner!);
    if (attempt >= 3) throw new Error(`cannot take over the stale lock ${file}`);
    // Stale (its process is gone) or without a pid (written by hand?): take it over.
    // Two processes taking over the same stale lock at the same instant is not guarded against;
    // the lock is for the operator who starts a second server by mistake.
    fs.rmSync(file, { force: true });
  }
  heldByThisProcess.add(file);
  if (!releaseAtExitInstalled) {
    releaseAtExitInstalled = true;
    process.once('exit', releaseAllAtExit);
  }
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      heldByThisProcess.delete(file);
      unlinkIfOurs(file);
    },
  };
}
