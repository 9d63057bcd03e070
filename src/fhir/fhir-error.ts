/**
 * The one error type of the server (DESIGN.md rule 2). Anything that should reach a client as
 * an OperationOutcome is thrown as a FhirError; http/middleware/error-handler.ts renders it.
 */

/** FHIR R4 valueset-issue-type codes used by this server. */
export type IssueType =
  | 'invalid' | 'structure' | 'required' | 'value' | 'invariant' | 'security' | 'login'
  | 'forbidden' | 'processing' | 'not-supported' | 'duplicate' | 'multiple-matches' | 'not-found'
  | 'deleted' | 'too-long' | 'code-invalid' | 'conflict' | 'exception' | 'timeout' | 'too-costly'
  | 'business-rule' | 'informational' | 'incomplete' | 'throttled' | 'transient' | 'no-store';

export type IssueSeverity = 'fatal' | 'error' | 'warning' | 'information';

export interface OutcomeIssue {
  severity: IssueSeverity;
  code: IssueType;
  diagnostics?: string;
  /** FHIRPath expressions locating the problem (R4 OperationOutcome.issue.expression). */
  expression?: string[];
  details?: { text: string };
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  id?: string;
  issue: OutcomeIssue[];
}

export class FhirError extends Error {
  readonly status: number;
  readonly issues: OutcomeIssue[];
  /** Extra response headers, e.g. Allow on 405. */
  readonly headers: Record<string, string>;

  constructor(status: number, issues: OutcomeIssue[] | OutcomeIssue, headers: Record<string, string> = {}) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list.map((i) => i.diagnostics ?? i.code).join('; '));
    this.name = 'FhirError';
    this.status = status;
    this.issues = list;
    this.headers = headers;
  }

  static badRequest(diagnostics: string, code: IssueType = 'invalid', expression?: string[]): FhirError {
    return new FhirError(400, { severity: 'error', code, diagnostics, ...(expression ? { expression } : {}) });
  }

  static unprocessable(issues: OutcomeIssue[]): FhirError {
    return new FhirError(422, issues);
  }

  static notFound(diagnostics: string): FhirError {
    return new FhirError(404, { severity: 'error', code: 'not-found', diagnostics });
  }

  static gone(diagnostics: string): FhirError {
    return new FhirError(410, { severity: 'error', code: 'deleted', diagnostics });
  }

  static conflict(diagnostics: string): FhirError {
    return new FhirError(409, { severity: 'error', code: 'conflict', diagnostics });
  }

  static preconditionFailed(diagnostics: string, code: IssueType = 'conflict'): FhirError {
    return new FhirError(412, { severity: 'error', code, diagnostics });
  }

  static notSupported(diagnostics: string, status = 400): FhirError {
    return new FhirError(status, { severity: 'error', code: 'not-supported', diagnostics });
  }
}

export function operationOutcome(issues: OutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

/** An informational outcome, for `Prefer: return=OperationOutcome` and bundle entry responses. */
export function successOutcome(diagnostics: string): OperationOutcome {
  return operationOutcome([{ severity: 'information', code: 'informational', diagnostics }]);
}
