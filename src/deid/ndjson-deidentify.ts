/**
 * `fhir-ledger deid`: the table in force applied to an NDJSON file (FHIR bulk data format, one
 * resource per line), line by line, like `$deidentify`: nothing is stored, pseudonyms the vault
 * already holds are used, new ones are made up once per run so a patient's lines stay linked.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import type { Resource } from '../fhir/resource.js';
import type { Deidentification } from './deidentification.js';

export interface NdjsonResult {
  lines: number;
  written: number;
  /** Line numbers that were not a valid resource (their content is never echoed). */
  rejected: { line: number; reason: string }[];
}

export interface NdjsonOptions {
  deid: Deidentification;
  /** Issues of a resource that is not valid R4 (empty: valid). */
  validate: (resource: Resource) => string[];
  onProgress?: (bytesRead: number, totalBytes: number) => void;
}

export async function deidentifyNdjson(input: string, output: NodeJS.WritableStream, options: NdjsonOptions): Promise<NdjsonResult> {
  const total = fs.statSync(input).size;
  const stream = fs.createReadStream(input);
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  const session = options.deid.previewSession();
  const result: NdjsonResult = { lines: 0, written: 0, rejected: [] };
  let lastReport = 0;
  for await (const line of lines) {
    result.lines++;
    if (line.trim() === '') continue;
    let resource: Resource;
    try {
      resource = JSON.parse(line) as Resource;
    } catch {
      result.rejected.push({ line: result.lines, reason: 'not JSON' });
      continue;
    }
    if (typeof resource !== 'object' || resource === null || typeof resource.resourceType !== 'string') {
      result.rejected.push({ line: result.lines, reason: 'not a FHIR resource' });
      continue;
    }
    const issues = options.validate(resource);
    if (issues.length > 0) {
      result.rejected.push({ line: result.lines, reason: `invalid ${resource.resourceType}: ${issues.slice(0, 3).join('; ')}` });
      continue;
    }
    const out = await options.deid.preview(resource, session);
    if (!output.write(`${JSON.stringify(out)}\n`)) await new Promise((resolve) => output.once('drain', resolve));
    result.written++;
    if (options.onProgress && stream.bytesRead - lastReport > 64 * 1024) {
      lastReport = stream.bytesRead;
      options.onProgress(stream.bytesRead, total);
    }
  }
  options.onProgress?.(total, total);
  return result;
}
