/**
 * Extended operations (FHIR R4 operations.html): `$name` at the system, type, instance or
 * version level. Each service registers its operations here; the executor finds them by name
 * and level, so an operation runs the same way from HTTP and from a bundle entry.
 */
import { FhirError } from '../fhir/fhir-error.js';
import type { Interaction, OperationLevel } from '../fhir/interaction.js';
import type { RequestContext } from '../auth/request-context.js';
import type { StoreReader } from '../store/store.js';
import type { InteractionResult } from './interaction-result.js';

export interface OperationDefinition {
  /** Without `$`. */
  name: string;
  levels: readonly OperationLevel[];
  /**
   * operations.html: an operation that changes nothing may be invoked with GET; one that takes a
   * resource body needs POST. `GET` here allows GET and HEAD; `POST` allows POST.
   */
  methods: readonly ('GET' | 'POST')[];
  /** Types it applies to at the type and instance levels (undefined: every type). */
  types?: readonly string[];
  /**
   * It writes in a store transaction of its own (an audit record): it cannot run inside a
   * transaction Bundle, whose store transaction holds the single writer.
   */
  writes?: boolean;
  run(interaction: Interaction, context: RequestContext, reader?: StoreReader): Promise<InteractionResult>;
}

export class OperationRegistry {
  private readonly byName = new Map<string, OperationDefinition>();

  register(definition: OperationDefinition): this {
    if (this.byName.has(definition.name)) throw new Error(`internal: $${definition.name} is registered twice`);
    this.byName.set(definition.name, definition);
    return this;
  }

  /** The operation an interaction invokes, or a 400/405 that says why there is none. */
  resolve(interaction: Interaction): OperationDefinition {
    const { name, level } = interaction.operation!;
    const definition = this.byName.get(name);
    const where = level === 'system' ? 'the system level' : `the ${level} level of ${interaction.resourceType}`;
    if (!definition || !definition.levels.includes(level)
      || (level !== 'system' && definition.types !== undefined && !definition.types.includes(interaction.resourceType!))) {
      // The same answer whether the name is unknown or only not defined here: both mean this
      // server cannot run it (R4 operations.html).
      throw FhirError.notSupported(`The operation $${name} is not supported at ${where} by this server`, 400);
    }
    const method = interaction.method === 'HEAD' ? 'GET' : interaction.method;
    if (!definition.methods.includes(method as 'GET' | 'POST')) {
      throw new FhirError(405, {
        severity: 'error', code: 'not-supported', diagnostics: `$${name} is invoked with ${definition.methods.join(' or ')}`,
      }, { Allow: definition.methods.join(', ') });
    }
    return definition;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
