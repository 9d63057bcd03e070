/**
 * Index-value extraction (FHIR R4 search.html): turns a resource into the SearchIndexEntry rows
 * the store writes next to each version, one set per search parameter of its type.
 *
 * Expressions come from the official SearchParameter definitions (search-parameter-registry.ts).
 * Each parameter is compiled once per resource type into a plan: an evaluator (the compiled
 * simple-path evaluator when the expression is in its subset, fhirpath.js otherwise) and the
 * entry builder of its type (entry-builders.ts). Composites are planned apart
 * (composite-extraction.ts).
 */
import type { Resource } from '../resource.js';
import type { SearchIndexEntry } from '../search-index-entry.js';
import type { SearchParameterDefinition, SearchParameterRegistry } from '../search-parameter-registry.js';
import { compileComposite, type CompiledComposite, type CompositeMemo } from './composite-extraction.js';
import { BUILDERS, buildUri, dedupeFrom, type EntryBuilder } from './entry-builders.js';
import { compileWithFhirPathJs } from './fhirpath-js-evaluation.js';
import type { Evaluator, NodeSink } from './result-nodes.js';
import { compileSimpleExpression, UnsupportedExpression } from './simple-path-evaluator.js';


export type ExtractionEngine = 'fast' | 'fhirpath';

export interface SearchIndexExtractorOptions {
  /**
   * 'fast' (default): the compiled simple-path evaluator, fhirpath.js for the rest.
   * 'fhirpath': fhirpath.js for every expression (the reference the fast path is tested against).
   */
  engine?: ExtractionEngine;
  /** This server's FHIR base; absolute references outside it are indexed as external (parseReference). */
  baseUrl?: string;
  /** Called when an expression throws on a resource; that parameter then has no entries for it. */
  onEvaluationError?: (info: { resourceType: string; code: string; expression: string; error: unknown }) => void;
}

/** A parameter whose expression could not be compiled, and so is never indexed. */
export interface SkippedExpression {
  resourceType: string;
  code: string;
  expression: string;
  reason: string;
}

interface CompiledParameter {
  code: string;
  expression: string;
  engine: ExtractionEngine;
  evaluate: Evaluator;
  build: EntryBuilder;
}

const DETACHED_OUTPUT: SearchIndexEntry[] = [];

/** Parameters the store indexes from its own columns (resource id, version timestamp). */
const STORE_COLUMN_PARAMETERS = new Set(['_id', '_lastUpdated']);

export class SearchIndexExtractor {
  private readonly compiled = new Map<string, CompiledParameter[]>();
  private readonly skipped: SkippedExpression[] = [];
  private readonly engine: ExtractionEngine;
  private readonly baseUrl: string | undefined;
  private readonly onEvaluationError: SearchIndexExtractorOptions['onEvaluationError'];

  /**
   * Where the sink sends nodes during extract(): one long-lived sink instead of a closure per
   * parameter per resource (extract is synchronous and never re-entered).
   */
  private readonly target: { code: string; build: EntryBuilder; out: SearchIndexEntry[] } = { code: '', build: buildUri, out: [] };
  private readonly sink: NodeSink;

  constructor(private readonly registry: SearchParameterRegistry, options: SearchIndexExtractorOptions = {}) {
    this.engine = options.engine ?? 'fast';
    this.baseUrl = options.baseUrl;
    this.onEvaluationError = options.onEvaluationError;
    const target = this.target;
    const baseUrl = this.baseUrl;
    this.sink = (data, type) => target.build(target.code, data, type, target.out, baseUrl);
  }

  /**
   * All index entries of a resource, for every parameter of its type except composites (the
   * store matches them from their components' entries), `special` ones (Location `near`), and
   * _id/_lastUpdated (store columns). Entries of one parameter are distinct.
   */
  extract(resource: Resource): SearchIndexEntry[] {
    const params = this.compiledFor(resource.resourceType);
    const out: SearchIndexEntry[] = [];
    const memo: CompositeMemo = new Map();
    for (const composite of this.compositesFor(resource.resourceType)) {
      try {
        composite.extract(resource, out, this.baseUrl, memo);
      } catch (error) {
        this.onEvaluationError?.({ resourceType: resource.resourceType, code: composite.code, expression: composite.expression, error });
      }
    }
    const target = this.target;
    target.out = out;
    for (let p = 0; p < params.length; p++) {
      const param = params[p];
      const from = out.length;
      const code = param.code;
      target.code = code;
      target.build = param.build;
      try {
        param.evaluate(resource, this.sink);
      } catch (error) {
        out.length = from;
        this.onEvaluationError?.({ resourceType: resource.resourceType, code, expression: param.expression, error });
        continue;
      }
      dedupeFrom(out, from);
    }
    // Do not keep the caller's array alive through the sink.
    target.out = DETACHED_OUTPUT;
    return out;
  }

  /** Which evaluator serves a parameter, 'skipped' when none could compile it, undefined when not indexed. */
  engineFor(resourceType: string, code: string): ExtractionEngine | 'skipped' | undefined {
    const param = this.compiledFor(resourceType).find((p) => p.code === code);
    if (param !== undefined) return param.engine;
    return this.skipped.some((s) => s.resourceType === resourceType && s.code === code) ? 'skipped' : undefined;
  }

  /** Compiles every type now (instead of on first use) and lists the expressions that could not be. */
  skippedExpressions(): SkippedExpression[] {
    for (const type of this.registry.resourceTypes()) this.compiledFor(type);
    return [...this.skipped];
  }

  private readonly composites = new Map<string, CompiledComposite[]>();

  private compositesFor(resourceType: string): CompiledComposite[] {
    let list = this.composites.get(resourceType);
    if (list === undefined) {
      list = [];
      for (const def of this.registry.forType(resourceType).values()) {
        if (def.type !== 'composite') continue;
        const compiled = compileComposite(def, this.registry);
        if (compiled) list.push(compiled);
        else this.skipped.push({ resourceType, code: def.code, expression: def.expression ?? '', reason: 'composite components are not a token and one indexable value' });
      }
      this.composites.set(resourceType, list);
    }
    return list;
  }

  private compiledFor(resourceType: string): CompiledParameter[] {
    let params = this.compiled.get(resourceType);
    if (params === undefined) {
      params = this.compileType(resourceType);
      this.compiled.set(resourceType, params);
    }
    return params;
  }

  private compileType(resourceType: string): CompiledParameter[] {
    const params: CompiledParameter[] = [];
    for (const def of this.registry.forType(resourceType).values()) {
      const compiled = this.compileParameter(def);
      if (compiled !== undefined) params.push(compiled);
    }
    return params;
  }

  private compileParameter(def: SearchParameterDefinition): CompiledParameter | undefined {
    const build = BUILDERS[def.type];
    if (build === undefined || def.expression === null || STORE_COLUMN_PARAMETERS.has(def.code)) return undefined;
    const expression = def.expression;
    if (this.engine === 'fast') {
      try {
        return { code: def.code, expression, engine: 'fast', evaluate: compileSimpleExpression(expression, def.resourceType), build };
      } catch (error) {
        if (!(error instanceof UnsupportedExpression)) throw error;
      }
    }
    try {
      return { code: def.code, expression, engine: 'fhirpath', evaluate: compileWithFhirPathJs(expression), build };
    } catch (error) {
      this.skipped.push({
        resourceType: def.resourceType,
        code: def.code,
        expression,
        reason: error instanceof Error ? error.message : String(error),
      });
      return undefined;
    }
  }
}
