/**
 * What every store adapter's schema migrations share (sqlite/sqlite-schema.ts,
 * postgres/postgres-schema.ts): a database records the number of migrations applied to it; a
 * store applies the ones it lacks, in order, each in its own transaction, at start or by
 * `fhir-ledger migrate`, so an upgrade keeps the data. A database whose number is higher than
 * the migrations this build knows was made by a newer fhir-ledger: the store refuses it before
 * writing anything, since an older build cannot know what the newer schema means.
 */

/** What applying migrations did: the schema version found and the one the database has now. */
export interface MigrationReport {
  from: number;
  to: number;
}

/** A database made by a newer fhir-ledger than this one. */
export class SchemaTooNewError extends Error {
  constructor(readonly where: string, readonly found: number, readonly known: number) {
    super(`${where} has schema version ${found}, newer than the ${known} this fhir-ledger knows: `
      + 'it was written by a newer release; run that release (or a newer one), nothing was changed');
    this.name = 'SchemaTooNewError';
  }
}

/** Throws SchemaTooNewError when `found` is beyond the known migrations. */
export function assertSchemaNotNewer(where: string, found: number, known: number): void {
  if (found > known) throw new SchemaTooNewError(where, found, known);
}
