/**
 * The base URL written into Location headers and paging links, which FHIR R4 requires to be
 * absolute (http.html#create: Location; http.html#paging: links). Built from the request's Host
 * header, a forged Host would make the server hand out links to another site (host header
 * injection). So: PUBLIC_BASE_URL when configured; else the request's Host only when it is an
 * allowed host; else the server's own base, http://<bound host>:<port>/fhir.
 */

export interface BaseUrlPolicyOptions {
  /** PUBLIC_BASE_URL: always used when set. */
  publicBaseUrl: string | undefined;
  /** The server's own base, e.g. http://127.0.0.1:8080/fhir: used for a Host that is not allowed. */
  configuredBaseUrl: string;
  /**
   * Hosts whose Host header is trusted: `name:port` matches exactly, `name` matches that name on
   * any port (a reverse proxy usually sends no port).
   */
  allowedHosts: readonly string[];
}

/** The default ALLOWED_HOSTS: the bound host and the loopback names, each with the listening port. */
export function defaultAllowedHosts(boundHost: string, port: number): string[] {
  const names = new Set(['localhost', '127.0.0.1', '[::1]']);
  // 0.0.0.0 and :: bind every interface; they are not names a client addresses.
  if (boundHost !== '0.0.0.0' && boundHost !== '::') names.add(boundHost.includes(':') ? `[${boundHost}]` : boundHost);
  return [...names].map((name) => `${name}:${port}`);
}

export class BaseUrlPolicy {
  private readonly exactHosts = new Set<string>();
  private readonly anyPortNames = new Set<string>();

  constructor(private readonly options: BaseUrlPolicyOptions) {
    for (const entry of options.allowedHosts) {
      const host = entry.toLowerCase();
      if (/:\d+$/.test(host)) this.exactHosts.add(host);
      else this.anyPortNames.add(host);
    }
  }

  /** The FHIR base URL for a request that came with this protocol and Host header. */
  baseUrlFor(protocol: string, hostHeader: string): string {
    if (this.options.publicBaseUrl !== undefined) return this.options.publicBaseUrl;
    return this.isAllowedHost(hostHeader) ? `${protocol}://${hostHeader}/fhir` : this.options.configuredBaseUrl;
  }

  isAllowedHost(hostHeader: string): boolean {
    const host = hostHeader.toLowerCase();
    if (host === '' || this.exactHosts.has(host)) return host !== '';
    // RFC 3986 section 3.2.2: an IPv6 literal is bracketed, so the port is what follows the last ']'.
    const name = host.replace(/:\d+$/, '');
    return this.anyPortNames.has(name);
  }
}
