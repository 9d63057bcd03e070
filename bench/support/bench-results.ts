/** Where a bench leaves its figures: bench/results/<name>.json and .md, and the table on stdout. */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './fhir-server-process.js';

export function writeBenchResults(name: string, report: unknown, table: string): void {
  const out = path.join(repoRoot, 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(out, `${name}.md`), `${table}\n`);
  process.stdout.write(`${table}\n`);
}
