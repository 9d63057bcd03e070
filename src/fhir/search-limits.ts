/**
 * How much one search may ask for. Each limit bounds work that grows with the query rather than
 * with the data: a `_sort` key is a join and an ORDER BY term, each OR value and AND repetition
 * a term of the SQL expression (SQLite refuses an expression tree deeper than 1,000), so an
 * unbounded query could hold a reader for tens of seconds. A query over a limit is refused with
 * a 400 before anything runs (FHIR R4 search.html#errors: "the server SHALL return an error"
 * for a search it cannot perform; DESIGN.md rule 5: every limit is configuration, answered 4xx).
 */
export interface SearchLimits {
  /** Keys of `_sort` (search.html#sort). */
  maxSortKeys: number;
  /** Comma-separated values of one parameter, matched as OR (search.html#combining). */
  maxOrValues: number;
  /** Repetitions of one parameter name, matched as AND (search.html#combining). */
  maxAndRepetitions: number;
  /** All name=value pairs of one search, result parameters included. */
  maxParameters: number;
}

/** The defaults of config.ts (SEARCH_MAX_*), also used when a caller passes no limits. */
export const DEFAULT_SEARCH_LIMITS: Readonly<SearchLimits> = {
  maxSortKeys: 8,
  maxOrValues: 100,
  maxAndRepetitions: 16,
  maxParameters: 100,
};
