/**
 * Helpers for de-identification tests that look for identifying strings where they must not be:
 * in response texts, in log lines, and in the raw bytes of every file under a data folder
 * (SQLite main files, -wal and -shm files, the vault file, key files).
 *
 * Matching is case-insensitive and byte-exact otherwise: a store or index that lower-cases text
 * still counts as holding it. Secrets are compared as UTF-8.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';

/** An identifying string and where the test put it (for the failure message). */
export interface Secret {
  label: string;
  value: string;
}

export interface Hit {
  label: string;
  value: string;
  where: string;
}

/** The same case-folding for haystack and needle: latin1 view of the UTF-8 bytes, lower-cased. */
function fold(bytes: Buffer): string {
  return bytes.toString('latin1').toLowerCase();
}

function foldText(text: string): string {
  return fold(Buffer.from(text, 'utf8'));
}

/** The secrets that occur in `text` (case-insensitive). */
export function secretsIn(text: string, secrets: readonly Secret[], where = 'text'): Hit[] {
  return findFolded(foldText(text), secrets.map((s) => ({ secret: s, folded: foldText(s.value) }))).map((s) => ({ ...s, where }));
}

/** Every regular file under `dir`, recursively (symbolic links are not followed). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.isFile()) out.push(full);
    }
  };
  visit(dir);
  return out.sort();
}

/** Secrets are looked up by their first ANCHOR characters, so a file is read once whatever their number. */
const ANCHOR = 8;

/**
 * Every occurrence of any secret in `haystack` (both folded): one pass over the text with a map of
 * anchors, not one `includes` per secret. Secrets shorter than ANCHOR are compared directly.
 */
function findFolded(haystack: string, needles: readonly { secret: Secret; folded: string }[]): Secret[] {
  const found = new Set<Secret>();
  const byAnchor = new Map<string, { secret: Secret; folded: string }[]>();
  for (const needle of needles) {
    if (needle.folded.length < ANCHOR) {
      if (haystack.includes(needle.folded)) found.add(needle.secret);
      continue;
    }
    const anchor = needle.folded.slice(0, ANCHOR);
    const list = byAnchor.get(anchor) ?? [];
    list.push(needle);
    byAnchor.set(anchor, list);
  }
  if (byAnchor.size > 0) {
    for (let i = 0; i + ANCHOR <= haystack.length; i++) {
      const candidates = byAnchor.get(haystack.substring(i, i + ANCHOR));
      if (!candidates) continue;
      for (const c of candidates) if (haystack.startsWith(c.folded, i)) found.add(c.secret);
    }
  }
  return needles.map((n) => n.secret).filter((s) => found.has(s));
}

/**
 * The secrets found in the raw bytes of any file under `dir`, with the file they are in. Files
 * that vanish while being listed (a checkpointed -wal) are skipped.
 */
export function secretsInFiles(dir: string, secrets: readonly Secret[]): { files: string[]; hits: Hit[] } {
  const files = filesUnder(dir);
  const needles = secrets.map((s) => ({ secret: s, folded: foldText(s.value) }));
  const hits: Hit[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    for (const secret of findFolded(fold(bytes), needles)) hits.push({ ...secret, where: path.relative(dir, file) });
  }
  return { files, hits };
}

/** A readable summary of hits for an assertion message. */
export function describeHits(hits: readonly Hit[], max = 20): string {
  const lines = hits.slice(0, max).map((h) => `${h.label} (${JSON.stringify(h.value)}) in ${h.where}`);
  if (hits.length > max) lines.push(`… and ${hits.length - max} more`);
  return lines.join('\n');
}

/** A pino logger writing JSON lines into memory, and what it has written so far. */
export function memoryLogger(level = 'info'): { logger: Logger; text: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level }, { write: (chunk: string) => { chunks.push(chunk); } });
  const text = () => chunks.join('');
  return {
    logger,
    text,
    lines: () => text().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Every full calendar date (YYYY-MM-DD) in a text. */
export function fullDatesIn(text: string): string[] {
  return text.match(/\d{4}-\d{2}-\d{2}/g) ?? [];
}

/** A Bundle's text without its `link` array (self/next links echo the client's own query). */
export function withoutLinks(bundle: any): string {
  if (!bundle || typeof bundle !== 'object') return JSON.stringify(bundle);
  const { link: _link, ...rest } = bundle;
  return JSON.stringify(rest);
}
