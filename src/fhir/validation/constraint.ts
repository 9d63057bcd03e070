/**
 * FHIRPath invariants (FHIR R4 conformance-rules.html#constraints), compiled once with
 * fhirpath.js and its R4 model, plus a start-up analysis that lets the validator skip an
 * invariant without running FHIRPath when the elements it depends on are absent.
 *
 * Why the analysis: most invariants only say something about elements that are usually absent
 * (dom-2..dom-5 need `contained`; obs-7 needs `component`). Running fhirpath.js costs a few
 * microseconds per invariant and per element instance, which would dominate validation time
 * (the server must sustain 2,500 validated creates/s on one core). The analysis is
 * conservative: whenever an expression could observe anything other than the named children of
 * its focus (`$this`, `%resource`, `descendants()`, a type name as first step...), it is always
 * evaluated.
 */
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import type { ElementNode } from './definitions.js';
import { FALLBACK, type FastFhirPathCompiler } from './fast-fhirpath.js';

/** `%resource` and `%rootResource` (FHIR R4 fhirpath.html#variables) for one evaluation. */
export interface ConstraintEnvironment {
  resource: unknown;
  rootResource: unknown;
}

export interface CompiledConstraint {
  readonly key: string;
  readonly human: string;
  readonly expression: string;
  /** The FHIRPath base the expression is compiled against (Observation, Period, RiskAssessment.prediction). */
  readonly base: string;
  /** Canonical URL of the StructureDefinition that declares it (for profile diagnostics). */
  readonly source: string;
  /** Runs the compiled expression on a focus value. Throws if fhirpath.js throws. */
  readonly run: (focus: unknown, env: ConstraintEnvironment) => unknown[];
  /** The same expression on fhirpath.js only (for the engines' comparison test). */
  readonly fhirpathJs: (focus: unknown, env: ConstraintEnvironment) => unknown[];
  /** True when `run` uses the fast evaluator (fast-fhirpath.ts). */
  readonly fastPath: boolean;
  /**
   * Sets of JSON keys: if none of the keys of one set is present on the focus object, the
   * invariant holds without evaluation (a top-level `or` branch, or an `implies` premise, that
   * is decided by absent elements; see `compileConstraint`).
   */
  readonly passGuards: readonly (readonly string[])[];
  /**
   * Every JSON key the whole expression depends on, or null when it depends on more than the
   * focus's children. When none is present, the result is `holdsWhenAbsent`.
   */
  readonly dependencyKeys: readonly string[] | null;
  readonly holdsWhenAbsent: boolean;
}

/** A constraint that could not be compiled or evaluated by fhirpath.js, with the reason. */
export interface SkippedConstraint {
  key: string;
  path: string;
  expression: string;
  reason: string;
}

const FHIRPATH_OPTIONS = {
  // Results stay internal: the validator only checks for `false`, and resolving would attach
  // hidden `__path__` properties to resource objects returned by an expression.
  resolveInternalTypes: false,
  // Several official invariants call trace() (dom-3, ref-1); fhirpath.js logs to the console by default.
  traceFn: (): void => undefined,
} as const;

type Model = Parameters<typeof fhirpath.compile>[1];
const MODEL = r4Model as unknown as Model;

/** FHIRPath three-valued logic: only an explicit `false` violates; empty means "unknown". */
export function isViolation(result: unknown[]): boolean {
  if (result.length !== 1) return false;
  const v = result[0] as unknown;
  if (v === false) return true;
  return typeof v === 'object' && v !== null && (v as { data?: unknown }).data === false;
}

// ---------------------------------------------------------------------------------------------
// Expression analysis

interface AstNode {
  type: string;
  text?: string;
  delimitedText?: string;
  children?: AstNode[];
}

interface Dependencies {
  /** Child element names of the focus that the expression navigates to. */
  names: Set<string>;
  /** True when the value may depend on anything else. */
  hazard: boolean;
  /** True when the value is certainly empty if every name in `names` is absent. */
  emptyWhenAbsent: boolean;
}

const HAZARD: Dependencies = { names: new Set(), hazard: true, emptyWhenAbsent: false };
const CONSTANT: Dependencies = { names: new Set(), hazard: false, emptyWhenAbsent: false };

/** Functions whose argument is evaluated once per input item, and not at all on empty input. */
const PER_ITEM_FUNCTIONS = new Set(['where', 'select', 'all', 'exists', 'repeat']);
/** Functions whose argument is evaluated against the input collection even when it is empty. */
const INPUT_RELATIVE_FUNCTIONS = new Set(['iif', 'trace']);
/** Functions this analysis does not model: always evaluate. */
const OPAQUE_FUNCTIONS = new Set(['aggregate', 'sort', 'defineVariable', 'coalesce', 'resolve', 'memberOf', 'conformsTo']);
/** Functions that return empty on empty input (used to skip per-item arguments). */
const EMPTY_PRESERVING_FUNCTIONS = new Set([
  'where', 'select', 'repeat', 'first', 'last', 'tail', 'skip', 'take', 'single', 'distinct', 'ofType', 'as',
  'children', 'descendants', 'trace', 'extension', 'intersect', 'exclude', 'not', 'substring', 'startsWith',
  'endsWith', 'contains', 'upper', 'lower', 'toString', 'toInteger', 'toDecimal', 'length', 'matches',
  'replace', 'replaceMatches', 'indexOf',
]);
/** Functions whose argument is a type specifier. */
const TYPE_ARGUMENT_FUNCTIONS = new Set(['ofType', 'as', 'is']);
/** Functions that need no input. */
const INPUT_FREE_FUNCTIONS = new Set(['today', 'now', 'timeOfDay']);
/** Environment variables that are not the focus (FHIR R4 fhirpath.html#variables): constants. */
const FOCUS_VARIABLES = new Set(['resource', 'rootResource', 'context']);

function unquote(text: string): string {
  return text.startsWith('`') && text.endsWith('`') ? text.slice(1, -1) : text;
}

function merge(parts: Dependencies[], emptyWhenAbsent: boolean): Dependencies {
  const names = new Set<string>();
  let hazard = false;
  for (const p of parts) {
    if (p.hazard) hazard = true;
    for (const n of p.names) names.add(n);
  }
  return { names, hazard, emptyWhenAbsent };
}

function functionParts(node: AstNode): { name: string; params: AstNode[] } {
  const functn = node.children?.[0];
  const name = unquote(functn?.children?.[0]?.text ?? '');
  const paramList = functn?.children?.find((c) => c.type === 'ParamList');
  return { name, params: paramList?.children ?? [] };
}

/**
 * What an expression depends on, in one of two modes: 'focus' (evaluated with the invariant's
 * focus as `$this`) or 'item' (inside a function argument evaluated on items of a collection
 * the enclosing expression already determined; there only references to the outside matter).
 */
function analyze(node: AstNode, mode: 'focus' | 'item'): Dependencies {
  const children = node.children ?? [];
  switch (node.type) {
    case 'EntireExpression':
    case 'TermExpression':
    case 'ParenthesizedTerm':
      return children[0] ? analyze(children[0], mode) : HAZARD;
    case 'InvocationTerm':
      return children[0] ? analyzeChainStart(children[0], mode) : HAZARD;
    case 'LiteralTerm':
      return { names: new Set(), hazard: false, emptyWhenAbsent: children[0]?.type === 'NullLiteral' };
    case 'ExternalConstantTerm': {
      const name = node.delimitedText ?? node.text ?? '';
      return FOCUS_VARIABLES.has(name) ? HAZARD : CONSTANT;
    }
    case 'InvocationExpression': {
      const [left, invocation] = children;
      if (!left || !invocation) return HAZARD;
      const input = analyze(left, mode);
      if (invocation.type === 'MemberInvocation') return input;
      if (invocation.type === 'FunctionInvocation') return analyzeCall(invocation, input, mode);
      return HAZARD;
    }
    case 'TypeExpression': {
      const operand = children[0] ? analyze(children[0], mode) : HAZARD;
      return { ...operand, emptyWhenAbsent: node.text === 'as' && operand.emptyWhenAbsent };
    }
    case 'MembershipExpression':
    case 'InequalityExpression':
    case 'EqualityExpression':
    case 'AdditiveExpression':
    case 'MultiplicativeExpression': {
      // These operators return empty when an operand is empty (fhirpath.html#operations),
      // except `x contains` (empty right side only), `~`/`!~` (empty is comparable) and `&`
      // (empty is the empty string). Then that operand alone decides the result when absent.
      const [left, right] = children.map((c) => analyze(c, mode));
      if (!left || !right) return HAZARD;
      const op = node.text ?? '';
      const strict = op !== '~' && op !== '!~' && op !== '&';
      if (strict && op !== 'contains' && !left.hazard && left.emptyWhenAbsent) return left;
      if (strict && op !== 'in' && !right.hazard && right.emptyWhenAbsent) return right;
      return merge([left, right], false);
    }
    case 'PolarityExpression':
    case 'IndexerExpression':
    case 'UnionExpression':
    case 'AndExpression':
    case 'OrExpression':
    case 'XorExpression':
    case 'ImpliesExpression': {
      const parts = children.filter((c) => c.type !== 'TypeSpecifier').map((c) => analyze(c, mode));
      const empty = node.type === 'UnionExpression' && parts.every((p) => p.emptyWhenAbsent);
      return merge(parts, empty);
    }
    default:
      return HAZARD;
  }
}

function analyzeChainStart(invocation: AstNode, mode: 'focus' | 'item'): Dependencies {
  switch (invocation.type) {
    case 'MemberInvocation': {
      if (mode === 'item') return CONSTANT;
      return { names: new Set([unquote(invocation.text ?? '')]), hazard: false, emptyWhenAbsent: true };
    }
    case 'FunctionInvocation': {
      const { name, params } = functionParts(invocation);
      if (mode === 'item') return merge(params.map((p) => analyze(p, 'item')), false);
      if (INPUT_FREE_FUNCTIONS.has(name)) return CONSTANT;
      if (name === 'extension') {
        // extension(url) on the focus navigates the focus's `extension` children.
        const deps = merge(params.map((p) => analyze(p, 'focus')), true);
        deps.names.add('extension');
        return deps;
      }
      if (name === 'iif') return merge(params.map((p) => analyze(p, 'focus')), false);
      // Any other function applied to the focus itself (hasValue(), children(), is()...).
      return HAZARD;
    }
    case 'ThisInvocation':
    case 'IndexInvocation':
    case 'TotalInvocation':
      return mode === 'item' ? CONSTANT : HAZARD;
    default:
      return HAZARD;
  }
}

function analyzeCall(invocation: AstNode, input: Dependencies, mode: 'focus' | 'item'): Dependencies {
  const { name, params } = functionParts(invocation);
  if (OPAQUE_FUNCTIONS.has(name)) return HAZARD;
  // The argument of ofType/as/is is a type name, not an expression.
  if (TYPE_ARGUMENT_FUNCTIONS.has(name)) return { ...input, emptyWhenAbsent: input.emptyWhenAbsent && name !== 'is' };
  if (PER_ITEM_FUNCTIONS.has(name)) {
    // Never evaluated when the input is empty, so nothing inside can matter then.
    const inner = input.emptyWhenAbsent ? [] : params.map((p) => analyze(p, 'item'));
    return merge([input, ...inner], input.emptyWhenAbsent && name !== 'all' && name !== 'exists');
  }
  if (INPUT_RELATIVE_FUNCTIONS.has(name)) {
    const inner = params.map((p) => analyze(p, 'item'));
    return merge([input, ...inner], name === 'trace' && input.emptyWhenAbsent);
  }
  // Other arguments are evaluated against the current `$this` (fhirpath.js makeParam).
  const inner = params.map((p) => analyze(p, mode));
  return merge([input, ...inner], input.emptyWhenAbsent && EMPTY_PRESERVING_FUNCTIONS.has(name));
}

/**
 * Splits an expression at a top-level binary keyword (`or`, `implies`), outside parentheses,
 * brackets, string literals and delimited identifiers. Returns [expression] when absent.
 */
export function splitTopLevel(expression: string, keyword: 'or' | 'xor' | 'implies'): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  const isIdentChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_]/.test(c);
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i]!;
    if (c === "'" || c === '`') {
      for (i++; i < expression.length && expression[i] !== c; i++) if (expression[i] === '\\') i++;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0 && expression.startsWith(keyword, i) && !isIdentChar(expression[i - 1])
      && !isIdentChar(expression[i + keyword.length]) && expression[i - 1] !== '.') {
      parts.push(expression.slice(start, i).trim());
      start = i + keyword.length;
      i = start - 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts;
}

function hasTopLevel(expression: string, keyword: 'or' | 'xor' | 'implies'): boolean {
  return splitTopLevel(expression, keyword).length > 1;
}

// ---------------------------------------------------------------------------------------------
// Compilation

export interface ConstraintSite {
  /** FHIRPath base: the resource type for resource-level invariants, else the element path or datatype. */
  base: string;
  /** True for invariants on a resource root (compiled without a base; `resourceType` types the focus). */
  resourceLevel: boolean;
  /** The focus's element (its children and their JSON keys); null when the focus is a primitive. */
  node: ElementNode | null;
  /**
   * True when the focus is a primitive value (txt-1 on Narrative.div, ras-1 on
   * probabilityDecimal): in FHIRPath it has no children but id and extension, which live in the
   * `_name` companion, so every child navigation from it is empty.
   */
  primitiveFocus?: boolean;
  /** The resource type used for `%resource` when evaluating on an empty focus at start-up. */
  resourceType: string;
}

type Runner = (focus: unknown, env: ConstraintEnvironment) => unknown[];

/**
 * One fhirpath.js runner per (base, expression): invariants that share an expression (txt-1 and
 * txt-2 are both `htmlChecks()`) share the function, which lets the validator evaluate it once
 * per focus.
 */
const fhirpathRunners = new Map<string, Runner>();
/** Fast runners per (base, expression) and focus node (a choice element has one node per type). */
const fastRunners = new Map<string, Map<ElementNode, Runner>>();

/** Throws if fhirpath.js cannot compile the expression. */
function fhirpathRunner(expression: string, site: ConstraintSite): Runner {
  const cacheKey = `${site.resourceLevel ? '' : site.base}\u0000${expression}`;
  let runner = fhirpathRunners.get(cacheKey);
  if (!runner) {
    const fn = site.resourceLevel
      ? fhirpath.compile(expression, MODEL, FHIRPATH_OPTIONS)
      : fhirpath.compile({ base: site.base, expression }, MODEL, FHIRPATH_OPTIONS);
    runner = (focus, env) => fn(focus, env as unknown as Record<string, unknown>) as unknown[];
    fhirpathRunners.set(cacheKey, runner);
  }
  return runner;
}

/**
 * The runner used at validation time: the fast evaluator when the expression is in its subset
 * (falling back to fhirpath.js per evaluation when the content is not), else fhirpath.js.
 */
function compileRunner(expression: string, site: ConstraintSite, fast: FastFhirPathCompiler | null): { run: Runner; fhirpathJs: Runner; fastPath: boolean } {
  const slow = fhirpathRunner(expression, site);
  if (!fast || !site.node) return { run: slow, fhirpathJs: slow, fastPath: false };
  const cacheKey = `${site.resourceLevel ? '' : site.base}\u0000${expression}`;
  let byNode = fastRunners.get(cacheKey);
  if (!byNode) fastRunners.set(cacheKey, (byNode = new Map()));
  let run = byNode.get(site.node);
  if (!run) {
    const compiled = fast.compile(fhirpath.parse(expression), site.node);
    run = compiled === null
      ? slow
      : (focus, env) => {
        try {
          return compiled(focus, env);
        } catch (err) {
          if (err === FALLBACK) return slow(focus, env);
          throw err;
        }
      };
    byNode.set(site.node, run);
  }
  return { run, fhirpathJs: slow, fastPath: run !== slow };
}

/** Maps element names to JSON keys; null if a name is not a child of the focus (e.g. a type name). */
function keysFor(names: Set<string>, site: ConstraintSite): string[] | null {
  if (site.primitiveFocus) return [];
  if (!site.node) return null;
  const keys: string[] = [];
  for (const name of names) {
    const k = site.node.keysByElement.get(name);
    if (!k) return null;
    keys.push(...k);
  }
  return keys;
}

function dependencyKeys(expression: string, site: ConstraintSite): string[] | null {
  const deps = analyze(fhirpath.parse(expression) as AstNode, 'focus');
  return deps.hazard ? null : keysFor(deps.names, site);
}

/**
 * fhirpath.js builds the regex of matches()/replaceMatches() only when it evaluates them, and
 * some official patterns are not valid JavaScript regexes (eld-19 escapes `'` inside a class,
 * an error in Unicode mode). Trying each literal pattern once at start-up finds them; throws
 * like the evaluation would.
 */
function checkRegexLiterals(expression: string): void {
  const visit = (node: AstNode): void => {
    if (node.type === 'FunctionInvocation') {
      const { name, params } = functionParts(node);
      const literal = params[0]?.children?.[0];
      if ((name === 'matches' || name === 'matchesFull' || name === 'replaceMatches') && literal?.type === 'LiteralTerm') {
        const text = literal.children?.[0]?.text;
        if (text) fhirpath.evaluate({}, name === 'replaceMatches' ? `'probe'.replaceMatches(${text}, '')` : `'probe'.${name}(${text})`);
      }
    }
    for (const child of node.children ?? []) visit(child);
  };
  visit(fhirpath.parse(expression) as AstNode);
}

/**
 * Compiles one invariant for one site. Throws (with fhirpath.js's message) when the expression
 * cannot be compiled or fails on an empty focus; the caller records it as skipped.
 */
export function compileConstraint(
  definition: { key: string; human: string; expression: string; source: string },
  site: ConstraintSite,
  fast: FastFhirPathCompiler | null,
): CompiledConstraint {
  checkRegexLiterals(definition.expression);
  const { run, fhirpathJs, fastPath } = compileRunner(definition.expression, site, fast);
  const emptyFocus = site.resourceLevel ? { resourceType: site.resourceType } : {};
  const env: ConstraintEnvironment = { resource: { resourceType: site.resourceType }, rootResource: { resourceType: site.resourceType } };
  const holdsOnEmpty = (r: Runner): boolean | null => {
    const result = r(emptyFocus, env);
    if (result.length === 1 && result[0] === true) return true;
    return isViolation(result) ? false : null;
  };
  // Evaluating on an empty focus also proves that the expression runs at all (some official
  // ones need features fhirpath.js lacks, e.g. the async resolve()); a throw here skips it.
  const wholeOnEmpty = holdsOnEmpty(run);
  if (site.resourceLevel) {
    // Resource-level invariants mostly concern contained resources (dom-2..dom-5), which the
    // empty focus does not exercise: also run them once on a resource with one.
    const probe = { resourceType: site.resourceType, id: 'probe', contained: [{ resourceType: 'Basic', id: 'c1', code: { text: 'probe' } }] };
    fhirpathJs(probe, { resource: probe, rootResource: probe });
  }

  const passGuards: string[][] = [];
  let dependency: string[] | null = null;
  if (site.node || site.primitiveFocus) {
    dependency = dependencyKeys(definition.expression, site);
    const addGuard = (part: string, expected: boolean): void => {
      const keys = dependencyKeys(part, site);
      if (keys === null || keys.length === 0) return;
      if (holdsOnEmpty(fhirpathRunner(part, site)) === expected) passGuards.push(keys);
    };
    const implications = splitTopLevel(definition.expression, 'implies');
    if (implications.length === 2) {
      // `A implies B` holds when A is false or B is true (fhirpath.html#boolean-logic).
      addGuard(implications[0]!, false);
      addGuard(implications[1]!, true);
    } else if (implications.length === 1 && !hasTopLevel(definition.expression, 'xor')) {
      const branches = splitTopLevel(definition.expression, 'or');
      if (branches.length > 1) for (const branch of branches) addGuard(branch, true);
    }
  }

  return {
    key: definition.key,
    human: definition.human,
    expression: definition.expression,
    base: site.base,
    source: definition.source,
    run,
    fhirpathJs,
    fastPath,
    passGuards,
    dependencyKeys: dependency,
    holdsWhenAbsent: wholeOnEmpty !== false,
  };
}

function anyPresent(focus: Record<string, unknown>, keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i++) if (focus[keys[i]!] !== undefined) return true;
  return false;
}

const NO_CHILDREN: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/**
 * Decides from presence alone: true (holds), false (violated) or undefined (must evaluate).
 * A primitive focus has no children in JSON.
 */
export function decideWithoutEvaluation(constraint: CompiledConstraint, focus: unknown): boolean | undefined {
  const obj = typeof focus === 'object' && focus !== null ? focus as Record<string, unknown> : NO_CHILDREN;
  for (const guard of constraint.passGuards) if (!anyPresent(obj, guard)) return true;
  if (constraint.dependencyKeys !== null && !anyPresent(obj, constraint.dependencyKeys)) return constraint.holdsWhenAbsent;
  return undefined;
}
