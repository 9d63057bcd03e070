/**
 * What a search expression evaluator produces: result nodes, each a JSON value with its FHIR
 * type, handed to a sink as they are found (no intermediate collection on the write path).
 */
import type { Resource } from '../resource.js';

/** Receives each result node: its JSON value and FHIR type. */
export type NodeSink = (data: unknown, type: string) => void;

/** Evaluates an expression against a resource, reporting each result node to `sink`. */
export type Evaluator = (resource: Resource, sink: NodeSink) => void;

/** A result node kept in a collection (composite components, which are paired afterwards). */
export type TypedNode = { data: unknown; type: string };
