/**
 * Bearer tokens (RFC 6750) carrying permissions as OAuth scopes (RFC 6749 section 3.3), verified
 * with jose: an HS256 shared secret (AUTH_JWT_SECRET) or the public keys of a JSON Web Key Set
 * (AUTH_JWKS_FILE, RS256/ES256). Tokens must be signed, unexpired (`exp` required) and name their
 * subject (`sub`). A server with neither configured grants no permission at all.
 */
import fs from 'node:fs';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { FhirError } from '../fhir/fhir-error.js';

/** The permission to see identifiers again (`$reidentify`), and nothing else grants it. */
export const REIDENTIFY_SCOPE = 'fhir-ledger/reidentify';

export interface Principal {
  subject: string;
  scopes: ReadonlySet<string>;
}

export interface BearerTokenOptions {
  jwtSecret?: string | undefined;
  jwksFile?: string | undefined;
}

/** Seconds of clock difference tolerated on exp/nbf/iat (RFC 7519 section 4.1.4 allows "some small leeway"). */
const CLOCK_TOLERANCE_SECONDS = 30;

export class BearerTokenVerifier {
  private constructor(private readonly key: Uint8Array | JWTVerifyGetKey | null, private readonly algorithms: string[]) {}

  static fromOptions(options: BearerTokenOptions): BearerTokenVerifier {
    if (options.jwksFile) {
      let jwks: JSONWebKeySet;
      try {
        jwks = JSON.parse(fs.readFileSync(options.jwksFile, 'utf8')) as JSONWebKeySet;
      } catch (error) {
        throw new Error(`Configuration error: cannot read AUTH_JWKS_FILE: ${(error as Error).message}`);
      }
      return new BearerTokenVerifier(createLocalJWKSet(jwks), ['RS256', 'ES256', 'PS256', 'EdDSA']);
    }
    if (options.jwtSecret) return new BearerTokenVerifier(new TextEncoder().encode(options.jwtSecret), ['HS256']);
    return new BearerTokenVerifier(null, []);
  }

  /** True when tokens can be verified at all. */
  get configured(): boolean {
    return this.key !== null;
  }

  /** The principal of an `Authorization: Bearer …` header; 401 when absent or not valid. */
  async verify(authorization: string | undefined): Promise<Principal> {
    const token = /^Bearer\s+([A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]*)\s*$/i.exec(authorization ?? '')?.[1];
    if (!token) throw unauthorized('A bearer token is required');
    if (!this.key) throw unauthorized('This server has no token verification configured (AUTH_JWT_SECRET or AUTH_JWKS_FILE)');
    try {
      const { payload } = await jwtVerify(token, this.key as Uint8Array, {
        algorithms: this.algorithms, requiredClaims: ['exp', 'sub'], clockTolerance: CLOCK_TOLERANCE_SECONDS,
      });
      const scope = typeof payload.scope === 'string' ? payload.scope : '';
      return { subject: payload.sub!, scopes: new Set(scope.split(' ').filter((s) => s !== '')) };
    } catch {
      // The reason (expired, bad signature…) is not echoed: it helps an attacker more than a client.
      throw unauthorized('The bearer token is not valid');
    }
  }
}

function unauthorized(diagnostics: string): FhirError {
  return new FhirError(401, { severity: 'error', code: 'login', diagnostics }, { 'WWW-Authenticate': 'Bearer realm="fhir-ledger"' });
}
