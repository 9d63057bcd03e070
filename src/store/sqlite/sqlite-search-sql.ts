/**
 * Translates a parsed SearchQuery (fhir/search-query.ts) into SQLite SQL over the idx_* tables.
 * Matching rules follow FHIR R4 search.html; each value type's comparison is documented where
 * it is built. All values are bound parameters: no query text ever reaches the SQL string.
 */
import { FhirError } from '../../fhir/fhir-error.js';
import {
  MAX_HIERARCHY_DEPTH, type CompositeSearchValue, type RangeSearchValue, type SearchCriterion, type SearchQuery,
  type SearchValue, type TokenSearchValue,
} from '../../fhir/search-query.js';
import type { SearchParamType } from '../../fhir/search-index-entry.js';
import { INDEX_TABLES } from './sqlite-schema.js';

export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/** Resolves (type, code) to the interned parameter id(s) as a SQL fragment. */
export type ParamIdSql = (resourceType: string | null, code: string) => SqlFragment;

const TABLE_OF_TYPE: Partial<Record<SearchParamType, string>> = {
  string: INDEX_TABLES.string,
  token: INDEX_TABLES.token,
  date: INDEX_TABLES.date,
  number: INDEX_TABLES.number,
  quantity: INDEX_TABLES.quantity,
  reference: INDEX_TABLES.reference,
  uri: INDEX_TABLES.uri,
  composite: INDEX_TABLES.composite,
};

/** Escapes LIKE wildcards; used with `ESCAPE '\'`. */
function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * search.html#prefix for ranges: the target [low, high) against the search range [sl, sh).
 * `eq` means the search range fully contains the target; `gt` that the range above the
 * search value overlaps the target, and so on.
 */
function dateRangePredicate(value: RangeSearchValue, lowCol: string, highCol: string): SqlFragment {
  const { low: sl, high: sh } = value;
  const contained = `(${lowCol} >= ? AND ${highCol} <= ?)`;
  switch (value.prefix) {
    case 'eq': return { sql: contained, params: [sl, sh] };
    case 'ne': return { sql: `NOT ${contained}`, params: [sl, sh] };
    case 'gt': return { sql: `${highCol} > ?`, params: [sh] };
    case 'lt': return { sql: `${lowCol} < ?`, params: [sl] };
    case 'ge': return { sql: `(${highCol} > ? OR ${contained})`, params: [sh, sl, sh] };
    case 'le': return { sql: `(${lowCol} < ? OR ${contained})`, params: [sl, sl, sh] };
    case 'sa': return { sql: `${lowCol} >= ?`, params: [sh] };
    case 'eb': return { sql: `${highCol} <= ?`, params: [sl] };
    case 'ap': {
      // search.html#prefix ap: "approximately the same"; we widen the search range by 10 % of
      // its distance from now (at least its own width), as the spec suggests.
      const widen = Math.max(sh - sl, Math.abs(Date.now() - sl) * 0.1);
      return { sql: `(${lowCol} < ? AND ${highCol} > ?)`, params: [sh + widen, sl - widen] };
    }
  }
}

/**
 * search.html#number and #quantity: the search value's implicit precision makes `eq` a range
 * [low, high) that must contain the target value; the ordered prefixes compare values.
 */
function numberPredicate(value: RangeSearchValue, valueCol: string): SqlFragment {
  const v = value.value;
  switch (value.prefix) {
    case 'eq': return { sql: `(${valueCol} >= ? AND ${valueCol} < ?)`, params: [value.low, value.high] };
    case 'ne': return { sql: `NOT (${valueCol} >= ? AND ${valueCol} < ?)`, params: [value.low, value.high] };
    case 'gt': case 'sa': return { sql: `${valueCol} > ?`, params: [v] };
    case 'lt': case 'eb': return { sql: `${valueCol} < ?`, params: [v] };
    case 'ge': return { sql: `${valueCol} >= ?`, params: [v] };
    case 'le': return { sql: `${valueCol} <= ?`, params: [v] };
    case 'ap': {
      // search.html#prefix ap: within 10 % of the stated value.
      const d = Math.abs(v) * 0.1;
      return { sql: `(${valueCol} >= ? AND ${valueCol} <= ?)`, params: [v - d, v + d] };
    }
  }
}

/**
 * search.html#token: `code`, `system|code`, `|code` (no system), `system|`; `:of-type` adds the
 * type; `:below`/`:above` match any of the subsumed (subsuming) codes, an IN list that the
 * (pid, code, system) index answers code by code.
 */
function tokenPredicate(value: TokenSearchValue, codeCol: string, systemCol: string, ofTypeCol?: string): SqlFragment {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (value.ofType !== undefined && ofTypeCol) { parts.push(`${ofTypeCol} = ?`); params.push(value.ofType); }
  if (value.codes !== undefined) { parts.push(`${codeCol} IN (${value.codes.map(() => '?').join(', ')})`); params.push(...value.codes); }
  else if (value.code !== undefined) { parts.push(`${codeCol} = ?`); params.push(value.code); }
  if (value.system === null) parts.push(`${systemCol} IS NULL`);
  else if (value.system !== undefined) { parts.push(`${systemCol} = ?`); params.push(value.system); }
  return { sql: parts.length ? `(${parts.join(' AND ')})` : '1', params };
}

/** The predicate one OR-value puts on one index row `i`. */
function valuePredicate(type: SearchParamType, modifier: string | undefined, value: SearchValue, i: string): SqlFragment {
  switch (value.kind) {
    case 'token': {
      if (modifier === 'text') {
        return { sql: `${i}.text LIKE ? ESCAPE '\\'`, params: [`%${likeEscape(value.code ?? '')}%`] };
      }
      return tokenPredicate(value, `${i}.code`, `${i}.system`, `${i}.of_type`);
    }
    case 'string': {
      if (modifier === 'exact') return { sql: `${i}.raw = ?`, params: [value.raw] };
      if (modifier === 'contains') {
        return { sql: `${i}.value LIKE ? ESCAPE '\\'`, params: [`%${likeEscape(value.folded)}%`] };
      }
      // search.html#string: default match is "starts with", case- and accent-insensitive;
      // written as a range so the (pid, value) index serves it.
      return { sql: `(${i}.value >= ? AND ${i}.value < ?)`, params: [value.folded, `${value.folded}\uffff`] };
    }
    case 'range': {
      if (type === 'date') return dateRangePredicate(value, `${i}.low`, `${i}.high`);
      const numeric = numberPredicate(value, `${i}.value`);
      if (type !== 'quantity') return numeric;
      const parts = [numeric.sql];
      const params = [...numeric.params];
      const hasSystem = value.system !== undefined && value.system !== null;
      if (value.code !== undefined && hasSystem) { parts.push(`${i}.code = ?`); params.push(value.code); }
      // search.html#quantity: `5.4||mg` (no system) matches the quantity's code or its unit.
      else if (value.code !== undefined) { parts.push(`(${i}.code = ? OR ${i}.unit = ?)`); params.push(value.code, value.code); }
      if (hasSystem) { parts.push(`${i}.system = ?`); params.push(value.system); }
      return { sql: `(${parts.join(' AND ')})`, params };
    }
    case 'reference': {
      const parts: string[] = [];
      const params: unknown[] = [];
      if (value.identifier !== undefined) {
        parts.push(`${i}.identifier_value = ?`);
        params.push(value.identifier.value);
        if (value.identifier.system !== undefined) { parts.push(`${i}.identifier_system = ?`); params.push(value.identifier.system); }
      } else if (value.url !== undefined) {
        parts.push(`${i}.url = ?`);
        params.push(value.url);
      } else {
        if (value.targetId !== undefined) { parts.push(`${i}.target_id = ?`); params.push(value.targetId); }
        if (value.targetType !== undefined) { parts.push(`${i}.target_type = ?`); params.push(value.targetType); }
      }
      return { sql: parts.length ? `(${parts.join(' AND ')})` : '1', params };
    }
    case 'composite': {
      const second = compositeSecondPredicate(value, i);
      const first = tokenPredicate(value.first, `${i}.c1_code`, `${i}.c1_system`);
      return { sql: `(${first.sql} AND ${second.sql})`, params: [...first.params, ...second.params] };
    }
    case 'uri': {
      if (modifier === 'above') {
        // search.html#uri :above: the stored uri is the search value or a prefix of it.
        return { sql: `substr(?, 1, length(${i}.value)) = ${i}.value`, params: [value.value] };
      }
      if (modifier === 'below') {
        return { sql: `${i}.value LIKE ? ESCAPE '\\'`, params: [`${likeEscape(value.value)}%`] };
      }
      return { sql: `${i}.value = ?`, params: [value.value] };
    }
  }
}

/** Where a criterion is applied: the alias of the resources row and its type. */
interface CriterionScope {
  /** Alias of the `resources` row the criterion constrains. */
  r: string;
  resourceType: string | null;
  /** Nesting depth, to give nested subqueries their own aliases. */
  depth: number;
}

/** The second component of a composite against the c2_* columns of idx_composite. */
function compositeSecondPredicate(value: CompositeSearchValue, i: string): SqlFragment {
  const second = value.second;
  switch (second.kind) {
    case 'token':
      return tokenPredicate(second, `${i}.c2_code`, `${i}.c2_system`);
    case 'string':
      return { sql: `(${i}.c2_text >= ? AND ${i}.c2_text < ?)`, params: [second.folded, `${second.folded}\uffff`] };
    case 'range': {
      if (value.secondType === 'date') return dateRangePredicate(second, `${i}.c2_low`, `${i}.c2_high`);
      const numeric = numberPredicate(second, `${i}.c2_value`);
      const parts = [numeric.sql];
      const params = [...numeric.params];
      if (second.code !== undefined) { parts.push(`${i}.c2_code = ?`); params.push(second.code); }
      if (second.system !== undefined && second.system !== null) { parts.push(`${i}.c2_system = ?`); params.push(second.system); }
      return { sql: `(${parts.join(' AND ')})`, params };
    }
  }
}

/** Criteria on the resources table's own columns: `_id` and `_lastUpdated`. */
function columnCriterion(criterion: SearchCriterion, r: string): SqlFragment | undefined {
  const code = criterion.param.code;
  if (code === '_id') {
    const ids = criterion.values.flatMap((v) => (v.kind === 'token' && v.code !== undefined ? [v.code] : []));
    const sql = `${r}.id IN (${ids.map(() => '?').join(', ')})`;
    return criterion.modifier === 'not' ? { sql: `NOT ${sql}`, params: ids } : { sql, params: ids };
  }
  if (code === '_lastUpdated') {
    const ors = criterion.values.map((v) => dateRangePredicate(v as RangeSearchValue, `${r}.last_updated`, `(${r}.last_updated + 1)`));
    return { sql: `(${balancedSql(ors.map((o) => o.sql), 'OR')})`, params: ors.flatMap((o) => o.params) };
  }
  return undefined;
}

/**
 * search.html#chaining: the reference must point to a live resource of one of the chain's
 * types that matches the inner criterion; written as `target_id IN (…)` per type so the
 * (pid, target_id, target_type) index serves it.
 */
function chainSql(scope: CriterionScope, criterion: SearchCriterion, paramId: ParamIdSql): SqlFragment {
  const i = `i${scope.depth}`;
  const t = `t${scope.depth}`;
  const pid = paramId(scope.resourceType, criterion.param.code);
  const ors: SqlFragment[] = criterion.chain!.map(({ resourceType, inner }) => {
    const innerSql = criterionSql({ r: t, resourceType, depth: scope.depth + 1 }, inner, paramId);
    return {
      sql: `(${i}.target_type = ? AND ${i}.target_id IN (SELECT ${t}.id FROM resources ${t} WHERE ${t}.type = ? AND ${t}.deleted = 0 AND ${innerSql.sql}))`,
      params: [resourceType, resourceType, ...innerSql.params],
    };
  });
  return {
    sql: `${scope.r}.rid IN (SELECT ${i}.rid FROM idx_reference ${i} WHERE ${i}.pid ${pid.sql} AND (${ors.map((o) => o.sql).join(' OR ')}))`,
    params: [...pid.params, ...ors.flatMap((o) => o.params)],
  };
}

/**
 * search.html#recursive, on a circular reference (Location `partof`): "the modifiers :above and
 * :below may be used to search transitively through the hierarchy". `:below=X` matches the
 * resources whose chain of this reference reaches X (X's subtree, X itself excluded: X is not
 * part of itself, just as `partof=X` does not match X); `:above=X` matches the resources X's
 * chain reaches (its ancestors). One recursive CTE over idx_reference per criterion, seeded with
 * the values (an OR), walking only live resources of the parameter's type and at most
 * MAX_HIERARCHY_DEPTH levels, so a cycle ends. Each step goes from the nodes found so far to
 * their neighbours through an index (CROSS JOIN fixes that order: SQLite would otherwise scan
 * every row of the parameter for each step). `resources n` turns the ids into rids through the
 * (type, id) key.
 */
function hierarchySql(scope: CriterionScope, criterion: SearchCriterion, paramId: ParamIdSql): SqlFragment {
  const type = criterion.param.resourceType;
  const d = scope.depth;
  const pid = paramId(scope.resourceType, criterion.param.code);
  const seeds = JSON.stringify(criterion.values.flatMap((v) => (v.kind === 'reference' && v.targetId !== undefined ? [v.targetId] : [])));
  const step = criterion.modifier === 'below'
    // one level down: the live resources whose reference points to a node
    ? { sql: `SELECT c${d}.id, h${d}.depth + 1 FROM h${d}
          CROSS JOIN idx_reference e${d} ON e${d}.pid ${pid.sql} AND e${d}.target_id = h${d}.id AND e${d}.target_type = ?
          CROSS JOIN resources c${d} ON c${d}.rid = e${d}.rid AND c${d}.deleted = 0`, params: [...pid.params, type] }
    // one level up: what a live node's reference points to
    : { sql: `SELECT e${d}.target_id, h${d}.depth + 1 FROM h${d}
          CROSS JOIN resources c${d} ON c${d}.type = ? AND c${d}.id = h${d}.id AND c${d}.deleted = 0
          CROSS JOIN idx_reference e${d} INDEXED BY idx_reference_rid ON e${d}.rid = c${d}.rid AND e${d}.pid ${pid.sql} AND e${d}.target_type = ?`, params: [type, ...pid.params, type] };
  return {
    sql: `${scope.r}.rid IN (SELECT n${d}.rid FROM resources n${d} WHERE n${d}.type = ? AND n${d}.deleted = 0 AND n${d}.id IN (
            WITH RECURSIVE h${d}(id, depth) AS (
              SELECT value, 0 FROM json_each(?)
              UNION
              ${step.sql} WHERE h${d}.depth < ${MAX_HIERARCHY_DEPTH})
            SELECT id FROM h${d} WHERE depth > 0))`,
    params: [type, seeds, ...step.params],
  };
}

/** search.html#has: some live resource of the source type references this one and matches. */
function reverseChainSql(scope: CriterionScope, criterion: SearchCriterion, paramId: ParamIdSql): SqlFragment {
  const { sourceType, inner } = criterion.reverse!;
  const i = `i${scope.depth}`;
  const s = `s${scope.depth}`;
  const pid = paramId(sourceType, criterion.param.code);
  const innerSql = criterionSql({ r: s, resourceType: sourceType, depth: scope.depth + 1 }, inner, paramId);
  return {
    sql: `${scope.r}.id IN (SELECT ${i}.target_id FROM idx_reference ${i} JOIN resources ${s} ON ${s}.rid = ${i}.rid
          WHERE ${i}.pid ${pid.sql} AND ${i}.target_type = ${scope.r}.type AND ${s}.deleted = 0 AND ${innerSql.sql})`,
    params: [...pid.params, ...innerSql.params],
  };
}

/**
 * How an index criterion is joined to its resources row. `drive`: `rid IN (subquery)`, which
 * SQLite answers by walking the subquery's rows and looking each rid up: right for the one most
 * selective criterion. `filter`: a correlated `EXISTS` probed through the (rid) index for each
 * candidate row: right for every other criterion, which would otherwise be materialized whole
 * (a million-row `code=` subquery for a query that a patient reference narrows to 100 rows).
 */
type JoinMode = 'drive' | 'filter';

function criterionSql(scope: CriterionScope, criterion: SearchCriterion, paramId: ParamIdSql, mode: JoinMode = 'drive'): SqlFragment {
  if (criterion.chain) return chainSql(scope, criterion, paramId);
  if (criterion.reverse) return reverseChainSql(scope, criterion, paramId);
  if (criterion.param.type === 'reference' && (criterion.modifier === 'below' || criterion.modifier === 'above')) {
    return hierarchySql(scope, criterion, paramId);
  }
  const column = columnCriterion(criterion, scope.r);
  if (column) return column;
  const table = TABLE_OF_TYPE[criterion.param.type];
  if (!table) {
    throw FhirError.notSupported(`Search parameter type ${criterion.param.type} (${criterion.param.code}) is not supported`);
  }
  const i = `i${scope.depth}`;
  const pid = paramId(scope.resourceType, criterion.param.code);
  // INDEXED BY the (rid) index: without statistics SQLite prefers the (pid, value) index, which
  // would scan every row with the value for each candidate instead of the candidate's few rows.
  const exists = (condition: string) =>
    `EXISTS (SELECT 1 FROM ${table} ${i} INDEXED BY ${table}_rid WHERE ${i}.rid = ${scope.r}.rid AND ${i}.pid ${pid.sql}${condition})`;
  if (criterion.missing !== undefined) {
    return { sql: criterion.missing ? `NOT ${exists('')}` : exists(''), params: pid.params };
  }
  if (criterion.values.length > MAX_INLINE_OR_VALUES) return flatOrSql(scope, criterion, table, pid);
  const ors = criterion.values.map((v) => valuePredicate(criterion.param.type, criterion.modifier, v, i));
  const condition = ` AND (${ors.map((o) => o.sql).join(' OR ')})`;
  const params = [...pid.params, ...ors.flatMap((o) => o.params)];
  // search.html#modifiers :not — resources that have no matching value, including those
  // that have no value at all.
  if (criterion.modifier === 'not') return { sql: `NOT ${exists(condition)}`, params };
  if (mode === 'filter') return { sql: exists(condition), params };
  return { sql: `${scope.r}.rid IN (SELECT ${i}.rid FROM ${table} ${i} WHERE ${i}.pid ${pid.sql}${condition})`, params };
}

/**
 * Up to this many OR values a criterion is written inline, `(v1 OR v2 OR …)`, which SQLite's
 * OR optimization answers through the indexes. Beyond, the values go in as JSON (flatOrSql):
 * `a OR b OR …` is a tree as deep as the list is long, and SQLite refuses trees deeper than
 * 1000 (https://www.sqlite.org/limits.html#max_expr_depth), while one JSON parameter has
 * neither that limit nor the bound-variable limit, and keeps one statement text per shape.
 */
export const MAX_INLINE_OR_VALUES = 32;

/**
 * A criterion with many OR values (search.html#combining: `code=a,b,c`): the values are grouped
 * by the shape of their predicate (valuePredicate with the same SQL text), each group's
 * parameters passed as one JSON array of rows, one row per value, and the index rows matched by
 * a join with json_each: `json_each(?) j CROSS JOIN idx i ON i.code = j.value ->> 0 …`. CROSS JOIN
 * walks the values and looks each up through the (pid, value) index, like the inline OR. A
 * resource matches when some row of it matches some value, exactly as the inline form; `:not`
 * is the complement. The subquery is not correlated, so SQLite builds it once per statement.
 */
function flatOrSql(scope: CriterionScope, criterion: SearchCriterion, table: string, pid: SqlFragment): SqlFragment {
  const i = `i${scope.depth}`;
  const j = `j${scope.depth}`;
  const groups = new Map<string, unknown[][]>();
  for (const value of criterion.values) {
    const predicate = valuePredicate(criterion.param.type, criterion.modifier, value, i);
    const rows = groups.get(predicate.sql) ?? [];
    rows.push(predicate.params);
    groups.set(predicate.sql, rows);
  }
  const selects: string[] = [];
  const params: unknown[] = [];
  for (const [sql, rows] of groups) {
    selects.push(`SELECT ${i}.rid FROM json_each(?) ${j} CROSS JOIN ${table} ${i}
      WHERE ${i}.pid ${pid.sql} AND ${withJsonParams(sql, j)}`);
    params.push(JSON.stringify(rows), ...pid.params);
  }
  const matching = `${scope.r}.rid IN (${selects.join(' UNION ALL ')})`;
  return { sql: criterion.modifier === 'not' ? `NOT ${matching}` : matching, params };
}

/**
 * A predicate's `?` placeholders replaced by the columns of a json_each row (`j.value ->> k`
 * is the k-th element of the row's array, with its SQL type: text, integer, real or NULL, as
 * the bound parameter would have been). The predicates are built here and carry no literal `?`.
 */
function withJsonParams(sql: string, j: string): string {
  let k = 0;
  return sql.replace(/\?/g, () => `(${j}.value ->> ${k++})`);
}

/**
 * Terms joined by AND (or OR) as a balanced tree, `((a AND b) AND (c AND d))`: its depth grows
 * with the logarithm of the number of terms, where `a AND b AND c …` grows with their number
 * and reaches SQLite's expression depth limit at 1000 (1000 repetitions of `code=`). The
 * planner splits AND terms whatever the nesting, so plans do not change.
 */
export function balancedSql(terms: string[], operator: 'AND' | 'OR'): string {
  if (terms.length <= 2) return terms.join(` ${operator} `);
  const middle = terms.length >> 1;
  return `(${balancedSql(terms.slice(0, middle), operator)}) ${operator} (${balancedSql(terms.slice(middle), operator)})`;
}

/**
 * A guess of how few rows a criterion matches, without statistics: references and ids name
 * single resources, identifiers and exact strings nearly so; codes and dates match many.
 * Lower is more selective. Criteria that cannot drive (negations, :missing) get Infinity.
 */
function selectivityRank(criterion: SearchCriterion): number {
  if (criterion.modifier === 'not' || criterion.missing !== undefined || criterion.chain || criterion.reverse) return Infinity;
  if (criterion.param.code === '_id') return 0;
  if (criterion.param.code === '_lastUpdated') return Infinity;
  switch (criterion.param.type) {
    case 'reference': return 1;
    case 'token': return criterion.param.code.includes('identifier') ? 1 : 5;
    case 'string': return criterion.modifier === 'exact' ? 2 : 3;
    case 'uri': return 4;
    case 'date': return 6;
    default: return 7;
  }
}

function sortSql(query: SearchQuery, paramId: ParamIdSql): SqlFragment {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const key of query.sort) {
    const dir = key.descending ? 'DESC' : 'ASC';
    const code = key.param.code;
    if (code === '_id') { parts.push(`r.id ${dir}`); continue; }
    if (code === '_lastUpdated') { parts.push(`r.last_updated ${dir}`); continue; }
    const table = TABLE_OF_TYPE[key.param.type];
    if (!table) throw FhirError.notSupported(`Sorting by ${code} is not supported`);
    const column = {
      idx_string: 'value', idx_token: 'code', idx_date: key.descending ? 'high' : 'low', idx_number: 'value',
      idx_quantity: 'value', idx_reference: 'url', idx_uri: 'value',
    }[table];
    const agg = key.descending ? 'max' : 'min';
    const pid = paramId(query.resourceType, code);
    parts.push(`(SELECT ${agg}(i.${column}) FROM ${table} i WHERE i.rid = r.rid AND i.pid ${pid.sql}) ${dir}`);
    params.push(...pid.params);
  }
  parts.push('r.rid ASC'); // stable order for paging
  return { sql: parts.join(', '), params };
}

/** WHERE clause (without the keyword) shared by the page query and the count query. */
export function searchWhereSql(query: SearchQuery, paramId: ParamIdSql, maxRid?: number): SqlFragment {
  const parts = ['r.deleted = 0'];
  const params: unknown[] = [];
  // `+r.type`: the unary plus keeps SQLite from driving the query by the (type, last_updated)
  // index when a criterion can drive it by rid (https://www.sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_).
  const hasDriver = query.criteria.some((c) => selectivityRank(c) !== Infinity) || query.compartment !== undefined;
  if (query.resourceType !== null) { parts.push(hasDriver ? '+r.type = ?' : 'r.type = ?'); params.push(query.resourceType); }
  if (query.resourceType === null && query.types) {
    parts.push(`${hasDriver ? '+' : ''}r.type IN (${query.types.map(() => '?').join(', ')})`);
    params.push(...query.types);
  }
  // Paging snapshot: resources created after the first page (higher rid) stay out of later
  // pages (search-snapshots.ts; the caller passes the token's rid).
  if (maxRid !== undefined) { parts.push('r.rid <= ?'); params.push(maxRid); }
  if (query.compartment) {
    const { ownerType, ownerId, params: links } = query.compartment;
    const pids = links.map((p) => paramId(query.resourceType, p.code));
    parts.push(`r.rid IN (SELECT c.rid FROM idx_reference c WHERE c.target_type = ? AND c.target_id = ? AND (${pids.map((p) => `c.pid ${p.sql}`).join(' OR ')}))`);
    params.push(ownerType, ownerId, ...pids.flatMap((p) => p.params));
  }
  if (query.accessCompartment) {
    const { ownerType, ownerIds, params: links } = query.accessCompartment;
    if (ownerIds.length === 0 || links.length === 0) {
      parts.push('0');
    } else {
      const pids = links.map((p) => paramId(query.resourceType, p.code));
      parts.push(`r.rid IN (SELECT c.rid FROM idx_reference c WHERE c.target_type = ? AND c.target_id IN (${ownerIds.map(() => '?').join(', ')}) AND (${pids.map((p) => `c.pid ${p.sql}`).join(' OR ')}))`);
      params.push(ownerType, ...ownerIds, ...pids.flatMap((p) => p.params));
    }
  }
  const ranked = query.criteria.map((criterion) => ({ criterion, rank: selectivityRank(criterion) }));
  const driving = ranked.reduce<(typeof ranked)[number] | undefined>(
    (best, c) => (c.rank !== Infinity && (!best || c.rank < best.rank) ? c : best), undefined);
  for (const { criterion } of ranked) {
    const mode: JoinMode = criterion === driving?.criterion ? 'drive' : 'filter';
    const c = criterionSql({ r: 'r', resourceType: query.resourceType, depth: 0 }, criterion, paramId, mode);
    parts.push(c.sql);
    params.push(...c.params);
  }
  return { sql: balancedSql(parts, 'AND'), params };
}

export function searchPageSql(query: SearchQuery, paramId: ParamIdSql, maxRid?: number): SqlFragment {
  const where = searchWhereSql(query, paramId, maxRid);
  const order = sortSql(query, paramId);
  return {
    sql: `SELECT r.type, r.id, r.version_id, r.last_updated, r.deleted, v.content
          FROM resources r JOIN versions v ON v.rid = r.rid AND v.version_id = r.version_id
          WHERE ${where.sql} ORDER BY ${order.sql} LIMIT ? OFFSET ?`,
    // One row more than the page: whether it comes back tells if there is a next page.
    params: [...where.params, ...order.params, query.count + 1, query.offset],
  };
}

export function searchCountSql(query: SearchQuery, paramId: ParamIdSql, maxRid?: number): SqlFragment {
  const where = searchWhereSql(query, paramId, maxRid);
  return { sql: `SELECT count(*) AS n FROM resources r WHERE ${where.sql}`, params: where.params };
}

/** The rids of the first `limit` matches in result order (a paging snapshot's list). */
export function searchRidsSql(query: SearchQuery, paramId: ParamIdSql, maxRid: number, limit: number): SqlFragment {
  const where = searchWhereSql(query, paramId, maxRid);
  const order = sortSql(query, paramId);
  return {
    sql: `SELECT r.rid FROM resources r WHERE ${where.sql} ORDER BY ${order.sql} LIMIT ?`,
    params: [...where.params, ...order.params, limit],
  };
}
