/**
 * This server's own profiles (profiles/*.json): FHIR R4 StructureDefinitions with derivation
 * 'constraint' (profiling.html). They are mandatory: every resource of the profiled type is
 * checked against them, whether or not its meta.profile claims them.
 *
 * What is enforced, from the `differential` only (data-driven: a new cardinality or constraint
 * in a profile file needs no code change):
 *  - element cardinalities (`min`/`max`, profiling.html#cardinality);
 *  - constraints of severity 'error' (FHIRPath `expression`), on the element they are declared on.
 * Anything the validator cannot enforce (slicing, type or binding restrictions, fixed or pattern
 * values) makes start-up fail, rather than being silently ignored.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMax, type CardinalityRule, type ElementDefinition, type StructureDefinition } from './definitions.js';
import type { CompiledConstraint } from './constraint.js';
import type { TypeRegistry } from './type-registry.js';

export interface ProfileCardinalityRule extends CardinalityRule {
  readonly profileUrl: string;
}

/** Profile rules for one element, mirroring the element tree by element name. */
export interface ProfileNode {
  readonly cardinality: ProfileCardinalityRule[];
  readonly constraints: CompiledConstraint[];
  readonly children: Map<string, ProfileNode>;
}

export interface ServerProfile {
  url: string;
  type: string;
  name: string;
}

function newProfileNode(): ProfileNode {
  return { cardinality: [], constraints: [], children: new Map() };
}

/** ElementDefinition properties the validator does not enforce; a profile using them is rejected. */
const UNSUPPORTED_PROPERTIES = [
  'slicing', 'sliceName', 'type', 'binding', 'contentReference', 'maxLength', 'minValueInteger', 'maxValueInteger',
];

function unsupportedProperty(el: ElementDefinition): string | undefined {
  const record = el as unknown as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (UNSUPPORTED_PROPERTIES.includes(key) || key.startsWith('fixed') || key.startsWith('pattern')
      || key.startsWith('defaultValue') || key.startsWith('minValue') || key.startsWith('maxValue')) return key;
  }
  return undefined;
}

function elementName(segment: string): string {
  return segment.endsWith('[x]') ? segment.slice(0, -3) : segment;
}

export class ProfileSet {
  /** Merged rules of every profile of a type, by type. */
  readonly rootsByType = new Map<string, ProfileNode>();
  readonly profiles: ServerProfile[] = [];
  readonly urls = new Set<string>();

  /** Reads every *.json StructureDefinition in `dir`. Throws on anything it cannot enforce. */
  static load(dir: string, registry: TypeRegistry): ProfileSet {
    const set = new ProfileSet();
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
    for (const file of files) {
      const sd = JSON.parse(readFileSync(join(dir, file), 'utf8')) as StructureDefinition;
      set.add(sd, registry, file);
    }
    return set;
  }

  urlsFor(type: string): string[] {
    return this.profiles.filter((p) => p.type === type).map((p) => p.url);
  }

  private add(sd: StructureDefinition, registry: TypeRegistry, file: string): void {
    const where = `profiles/${file}`;
    if (sd.resourceType !== 'StructureDefinition' || sd.derivation !== 'constraint' || typeof sd.url !== 'string') {
      throw new Error(`${where}: not a StructureDefinition with derivation 'constraint' and a url`);
    }
    const type = sd.type;
    if (!registry.resources.has(type)) throw new Error(`${where}: unknown resource type ${type}`);
    if (this.urls.has(sd.url)) throw new Error(`${where}: duplicate profile url`);
    let root = this.rootsByType.get(type);
    if (!root) this.rootsByType.set(type, (root = newProfileNode()));

    for (const el of sd.differential?.element ?? []) {
      const bad = unsupportedProperty(el);
      if (bad) throw new Error(`${where}: ${el.path}: '${bad}' is not enforced by this validator`);
      const segments = el.path.split('.');
      if (segments[0] !== type) throw new Error(`${where}: element ${el.path} is not in ${type}`);
      const target = this.nodeFor(root, segments);
      const isRoot = segments.length === 1;

      if (!isRoot && (el.min !== undefined || el.max !== undefined)) {
        const parentPath = segments.slice(0, -1).join('.');
        const name = elementName(segments[segments.length - 1]!);
        const keys = registry.nodeAtPath(parentPath)?.keysByElement.get(name);
        if (!keys) throw new Error(`${where}: unknown element ${el.path}`);
        const parent = this.nodeFor(root, segments.slice(0, -1));
        parent.cardinality.push({
          elementName: name, keys, min: el.min ?? 0, max: parseMax(el.max), path: el.path.replace(/\[x\]$/, ''), profileUrl: sd.url,
        });
      }

      for (const c of el.constraint ?? []) {
        if (c.severity !== 'error') continue;
        if (!c.expression) throw new Error(`${where}: constraint ${c.key} has no FHIRPath expression`);
        const path = el.path.replace(/\[x\]$/, '');
        const node = isRoot ? registry.resources.get(type) : registry.nodeAtPath(el.path);
        const compiled = registry.compile(
          c,
          { base: isRoot ? type : path, resourceLevel: isRoot, node: node ?? null, resourceType: type },
          sd.url,
          path,
        );
        if (!compiled) throw new Error(`${where}: constraint ${c.key} cannot be evaluated: ${registry.skipped.at(-1)?.reason ?? ''}`);
        target.constraints.push(compiled);
      }
    }
    this.urls.add(sd.url);
    this.profiles.push({ url: sd.url, type, name: sd.name ?? sd.id ?? sd.url });
  }

  private nodeFor(root: ProfileNode, segments: string[]): ProfileNode {
    let node = root;
    for (let i = 1; i < segments.length; i++) {
      const name = elementName(segments[i]!);
      let child = node.children.get(name);
      if (!child) node.children.set(name, (child = newProfileNode()));
      node = child;
    }
    return node;
  }
}
