/**
 * Applies a mapping table to a resource: one typed walk over its JSON, each element taking the
 * first rule (in table order) that matches it.
 *
 * "First matching rule wins", element by element: a rule that matches an element decides for
 * it, and for everything inside it that no *earlier* rule matches. So `keep` and specific rules
 * go first (an Address's `state` kept before every Address is redacted), broad ones last.
 * A redacted element whose parts no earlier rule claims disappears whole; an object or array left
 * empty is dropped (FHIR JSON forbids empty ones, json.html).
 *
 * The walk itself is synchronous and touches no vault: what needs one (a pseudonym, a date moved
 * by the subject's offset) is left in the output as a placeholder and listed, so the caller can
 * look the values up in one batch, create the missing pairs in one vault transaction, and then
 * fill the placeholders in (fillVaultValues). References to other resources are collected the
 * same way (their stored ids may need a store lookup) and written back afterwards.
 */
import type { ChildSlot, ElementNode } from '../fhir/validation/definitions.js';
import type { TypeRegistry } from '../fhir/validation/type-registry.js';
import type { Resource } from '../fhir/resource.js';
import type { VaultEntryKey } from './deid-types.js';
import type { MappingRule, MappingTable } from './mapping-table.js';
import { primitiveTypeName, sameType, type ElementFrame } from './rule-path.js';
import {
  cryptoHash, dateToYear, generalizeAge, generalizeBirthDate, generalizeZip, shiftDate, type FhirDateType,
} from './value-transforms.js';

/** meta.tag system that carries the sha256 of the table a version was produced with. */
export const DEID_TABLE_TAG_SYSTEM = 'urn:fhir-ledger:deid-mapping-table';
/** Identifiers without a system still get a domain, so their pseudonyms are stable. */
export const NO_SYSTEM_DOMAIN = 'urn:fhir-ledger:identifier-without-system';

/** The vault domain of client-assigned ids of one resource type. */
export function idDomain(resourceType: string): string {
  return `id:${resourceType}`;
}

const REMOVE = Symbol('remove');

/** A reference whose text the table cannot pseudonymize: the write is refused rather than stored in clear. */
export class UnpseudonymizableReference extends Error {
  constructor(readonly location: string) {
    super(`${location}: a reference must be a literal reference (Type/id, an absolute URL ending in Type/id, #contained or urn:uuid) to be pseudonymized; conditional references are resolved only in transactions`);
    this.name = 'UnpseudonymizableReference';
  }
}

/**
 * An element whose content was removed for privacy, kept as the standard data-absent-reason
 * extension with code `masked` (R4 extension-data-absent-reason, "the information is not
 * available due to security, privacy or related reasons").
 */
function maskedElement(): Record<string, unknown> {
  return { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }] };
}

/** The element path of a frame (Observation.subject), for diagnostics. */
function locationOf(frame: ElementFrame): string {
  const names: string[] = [];
  for (let f: ElementFrame | null = frame; f; f = f.parent) {
    names.unshift(f.name);
    if (f.isResource) break;
  }
  return names.join('.');
}

/** A pseudonym the walk cannot know synchronously: filled in after the vault batch. */
export class PendingPseudonym implements VaultEntryKey {
  constructor(readonly domain: string, readonly value: string) {}
}

/**
 * A date to move by its subject's offset, which the vault gives only after the walk; `shifts`
 * times (nested dateShift rules), then the later rules' transforms (a generalize around it).
 */
export class PendingShiftedDate {
  constructor(readonly value: string, readonly type: FhirDateType, readonly shifts = 1,
    readonly after: readonly ((value: string, type: FhirDateType) => string)[] = []) {}

  resolve(days: number): string {
    let out = this.value;
    for (let i = 0; i < this.shifts; i++) out = shiftDate(out, days, this.type);
    for (const transform of this.after) out = transform(out, this.type);
    return out;
  }
}

/** What the vault batch resolved: the pseudonym of each pending value, and the subject's date offset. */
export interface VaultValues {
  pseudonymOf(pending: PendingPseudonym): string;
  /** Days to move dates by; asked only when the walk left dates to shift. */
  dateOffsetDays: number | undefined;
}

/**
 * Replaces the placeholders of a walk's output, in place. A date that cannot move by the
 * offset (beyond year 1) is dropped, as the walk drops a date it cannot read.
 */
export function fillVaultValues(resource: Resource, values: VaultValues): void {
  const resolve = (value: unknown): unknown => {
    if (value instanceof PendingPseudonym) return values.pseudonymOf(value);
    if (value instanceof PendingShiftedDate) {
      try {
        return value.resolve(values.dateOffsetDays!);
      } catch {
        return REMOVE;
      }
    }
    if (typeof value === 'object' && value !== null) fill(value as Record<string, unknown> | unknown[]);
    return value;
  };
  const fill = (holder: Record<string, unknown> | unknown[]): void => {
    if (Array.isArray(holder)) {
      for (let i = holder.length - 1; i >= 0; i--) {
        const out = resolve(holder[i]);
        if (out === REMOVE) holder.splice(i, 1);
        else holder[i] = out;
      }
      return;
    }
    for (const key of Object.keys(holder)) {
      const out = resolve(holder[key]);
      if (out === REMOVE || (Array.isArray(out) && out.length === 0)) delete holder[key];
      else holder[key] = out;
    }
  };
  fill(resource as unknown as Record<string, unknown>);
}
type Outcome = unknown | typeof REMOVE;

interface Frame extends ElementFrame {
  readonly node: ElementNode | undefined;
  /** The JSON key this element is under in its parent ('' for the resource itself). */
  readonly key: string;
}

/** The JSON path of a frame without array indices (`identifier.period.start`), plus `suffix`. */
function jsonPathOf(frame: Frame, suffix: string): string {
  const keys: string[] = suffix === '' ? [] : [suffix];
  for (let f: Frame | null = frame; f; f = f.parent as Frame | null) if (f.key !== '') keys.unshift(f.key);
  return keys.join('.');
}

/**
 * Every string of a stored version by its JSON path without array indices, so that a value
 * is found unchanged wherever a patch moved it within its array (an identifier inserted before
 * it shifts its index, not its path).
 */
function stringsByPath(resource: Resource): Map<string, Set<string>> {
  const byPath = new Map<string, Set<string>>();
  const visit = (value: unknown, path: string): void => {
    if (typeof value === 'string') {
      let set = byPath.get(path);
      if (!set) byPath.set(path, (set = new Set()));
      set.add(value);
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, path);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) visit(child, path === '' ? key : `${path}.${key}`);
    }
  };
  visit(resource, '');
  return byPath;
}

/** What the walk needs from outside, per call. */
export interface WalkServices {
  hashKey: Buffer | undefined;
  now: Date;
}

/** A walk's output and what remains to be resolved in it. */
export interface WalkResult {
  resource: Resource;
  references: ReferenceSite[];
  /** The placeholders of pseudonyms in `resource`, in walk order (a value may repeat). */
  pseudonyms: PendingPseudonym[];
  /** True when `resource` holds dates to move by the subject's offset. */
  shiftsDates: boolean;
}

/** What one walk collects while it runs. */
interface WalkState {
  services: WalkServices;
  /**
   * Re-checking content already in its stored form: the stored version's strings by path. A rule
   * that is not idempotent leaves a value found there as it is, and applies to the others.
   */
  stored: Map<string, Set<string>> | null;
  references: ReferenceSite[];
  pseudonyms: PendingPseudonym[];
  shiftsDates: boolean;
}

/** A `reference` string found during the walk, to be rewritten once its id is resolved. */
export interface ReferenceSite {
  holder: Record<string, unknown>;
  resourceType: string;
  id: string;
  /** Rebuilds the reference around a new id (keeps a base URL and a `_history` suffix). */
  rebuild: (id: string) => string;
}

const DATE_TYPES: ReadonlySet<string> = new Set(['date', 'dateTime', 'instant']);
/** `Type/id`, `Type/id/_history/v`, or either after an absolute base (references.html#literal). */
const LITERAL_REFERENCE = /^(.*?\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

export class MappingWalker {
  private readonly byName = new Map<string, MappingRule[]>();
  private readonly byType = new Map<string, MappingRule[]>();
  private readonly reach = new Map<ElementNode, { names: Set<string>; types: Set<string> }>();
  private readonly slotCandidates = new WeakMap<ChildSlot, boolean>();

  constructor(readonly table: MappingTable, private readonly types: TypeRegistry) {
    for (const rule of table.rules) {
      const t = rule.path.terminal;
      const index = t.kind === 'name' ? this.byName : this.byType;
      const key = t.kind === 'name' ? t.name : t.type;
      const list = index.get(key) ?? [];
      list.push(rule);
      index.set(key, list);
    }
  }

  /**
   * The de-identified copy of `resource` (the input is not modified), and the references in it
   * that the caller must resolve. The resource's own `id` is the caller's (see Deidentifier).
   */
  walk(resource: Resource, services: WalkServices, storedVersion?: Resource): WalkResult {
    const state: WalkState = {
      services, stored: storedVersion ? stringsByPath(storedVersion) : null, references: [], pseudonyms: [], shiftsDates: false,
    };
    const root: Frame = {
      name: resource.resourceType, type: resource.resourceType, parent: null, isResource: true, key: '',
      node: this.types.resources.get(resource.resourceType),
    };
    const out = this.walkChildren(resource, root, Infinity, null, state) as Resource;
    return { resource: out, references: state.references, pseudonyms: state.pseudonyms, shiftsDates: state.shiftsDates };
  }

  private firstMatch(frame: Frame, value: unknown, limit: number): MappingRule | undefined {
    let best: MappingRule | undefined;
    const consider = (list: MappingRule[] | undefined) => {
      if (!list) return;
      for (const rule of list) {
        if (rule.index >= limit || (best && rule.index >= best.index)) break;
        if (rule.path.matches(frame, value)) {
          best = rule;
          break;
        }
      }
    };
    consider(this.byName.get(frame.name));
    consider(this.byType.get(frame.type));
    if (frame.type === 'SimpleQuantity' || frame.type === 'MoneyQuantity') consider(this.byType.get('Quantity'));
    return best;
  }

  private visit(value: unknown, frame: Frame, limit: number, inherited: MappingRule | null,
    state: WalkState): Outcome {
    const own = this.firstMatch(frame, value, limit);
    const rule = own ?? inherited;
    if (!rule) return this.walkChildren(value, frame, limit, null, state);
    const inside = rule.index > 0 && this.earlierRuleMayMatchInside(frame, rule.index);
    switch (rule.method) {
      case 'keep':
        return inside ? this.walkChildren(value, frame, rule.index, null, state) : value;
      case 'redact':
        return inside ? this.walkChildren(value, frame, rule.index, rule, state) : REMOVE;
      default: {
        // Earlier rules first, on the parts they match (an Identifier's period), then this
        // rule's method on what they left, so the method sees the final object.
        const walked = inside ? this.walkChildren(value, frame, rule.index, null, state) : value;
        return walked === REMOVE ? REMOVE : this.apply(rule, frame, walked, state);
      }
    }
  }

  /** Children of an object (or, for a primitive, the primitive itself under an inherited redact). */
  private walkChildren(value: unknown, frame: Frame, limit: number, inherited: MappingRule | null,
    state: WalkState): Outcome {
    if (typeof value !== 'object' || value === null) return inherited ? REMOVE : value;
    const node = frame.node;
    if (!node) return inherited ? REMOVE : value;
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    const handledCompanions = new Set<string>();
    for (const key of Object.keys(input)) {
      if (handledCompanions.has(key)) continue;
      const child = input[key];
      if (frame.isResource && (key === 'resourceType' || key === 'id')) {
        out[key] = child;
        continue;
      }
      const slot = node.children.get(key);
      if (!slot) {
        // Not in the definitions (validation let it through, e.g. a contained resource's
        // fields): kept unless an enclosing redact covers it.
        if (!inherited) out[key] = child;
        continue;
      }
      if (slot.kind === 'primitive-element') {
        // A `_x` without its primitive `x` (only id/extensions): walk its extensions.
        if (!(key.slice(1) in input)) {
          if (Array.isArray(child)) {
            const walked = child.map((c) => (c === null ? null : this.walkCompanion(c, frame, slot, key, limit, inherited, state)))
              .map((c) => (c === REMOVE ? null : c));
            if (walked.some((c) => c !== null)) out[key] = walked;
          } else {
            const walked = this.walkCompanion(child, frame, slot, key, limit, inherited, state);
            if (walked !== REMOVE) out[key] = walked;
          }
        }
        continue;
      }
      const companionKey = `_${key}`;
      const companion = slot.kind === 'primitive' ? input[companionKey] : undefined;
      if (slot.kind === 'primitive' && companion === undefined && !inherited && !this.ruleMayMatchSlot(slot)) {
        // No rule names this element or its type: the value stays as it is, without a frame.
        out[key] = child;
        continue;
      }
      if (companion !== undefined) handledCompanions.add(companionKey);
      if (Array.isArray(child)) {
        const kept: unknown[] = [];
        const keptCompanions: unknown[] = [];
        child.forEach((item, i) => {
          const result = this.visit(item, this.childFrame(frame, slot, item, key), limit, inherited, state);
          if (result === REMOVE) return;
          kept.push(result);
          if (Array.isArray(companion)) {
            const c = companion[i] === null || companion[i] === undefined ? null
              : this.walkCompanion(companion[i], frame, slot, companionKey, limit, inherited, state);
            keptCompanions.push(c === REMOVE ? null : c);
          }
        });
        if (kept.length > 0) out[key] = kept;
        if (kept.length > 0 && keptCompanions.some((c) => c !== null)) out[companionKey] = keptCompanions;
      } else {
        const result = this.visit(child, this.childFrame(frame, slot, child, key), limit, inherited, state);
        if (result === REMOVE) continue;
        out[key] = result;
        if (companion !== undefined) {
          const c = this.walkCompanion(companion, frame, slot, companionKey, limit, inherited, state);
          if (c !== REMOVE) out[companionKey] = c;
        }
      }
    }
    // Inside an element being redacted whole, nothing is masked: it all goes.
    if (!inherited) this.maskRequiredRemovals(node, input, out);
    if (!frame.isResource && Object.keys(out).length === 0) return REMOVE;
    return out;
  }

  /**
   * A required element (min 1 in the base definition) the table removed is kept as a masked
   * placeholder, so the stored resource stays valid R4 (a DocumentReference keeps
   * `content.attachment`, a Media its `content`).
   */
  private maskRequiredRemovals(node: ElementNode, input: Record<string, unknown>, out: Record<string, unknown>): void {
    for (const rule of node.cardinality) {
      if (rule.min === 0) continue;
      const present = (o: Record<string, unknown>) => rule.keys.some((k) => k in o || `_${k}` in o);
      if (present(out) || !present(input)) continue;
      const key = rule.keys.find((k) => k in input || `_${k}` in input)!;
      const slot = node.children.get(key);
      if (slot?.kind === 'primitive') out[`_${key}`] = rule.max > 1 ? [maskedElement()] : maskedElement();
      else out[key] = rule.max > 1 ? [maskedElement()] : maskedElement();
    }
  }

  /** The `_x` companion of a primitive: its id and extensions (json.html#primitive). */
  private walkCompanion(value: unknown, parent: Frame, slot: ChildSlot, key: string, limit: number, inherited: MappingRule | null,
    state: WalkState): Outcome {
    const frame: Frame = { name: slot.elementName, type: 'Element', parent, isResource: false, node: this.types.datatypes.get('Element'), key };
    return this.walkChildren(value, frame, limit, inherited, state);
  }

  private childFrame(parent: Frame, slot: ChildSlot, value: unknown, key: string): Frame {
    switch (slot.kind) {
      case 'complex':
        return { name: slot.elementName, type: slot.typeName ?? '', parent, isResource: false, node: this.types.datatypes.get(slot.typeName ?? ''), key };
      case 'backbone':
        return { name: slot.elementName, type: 'BackboneElement', parent, isResource: false, node: slot.node, key };
      case 'resource': {
        const type = (value as Resource | null)?.resourceType ?? '';
        return { name: type, type, parent, isResource: true, node: this.types.resources.get(type), key };
      }
      default:
        return { name: slot.elementName, type: primitiveTypeName(slot.typeName ?? 'string'), parent, isResource: false, node: undefined, key };
    }
  }

  /**
   * In a re-check of stored content: is `value`, at this frame's path plus `suffix`, one the
   * stored version already holds there? Then a rule that is not idempotent leaves it as it is
   * (it is that rule's output already). Idempotent rules, and first writes, always apply.
   */
  private keptAsStored(state: WalkState, rule: MappingRule, frame: Frame, suffix: string, value: string): boolean {
    if (state.stored === null || rule.idempotent) return false;
    return state.stored.get(jsonPathOf(frame, suffix))?.has(value) === true;
  }

  /** Does some rule end on this slot's name or its primitive type? (Decided once per slot.) */
  private ruleMayMatchSlot(slot: ChildSlot): boolean {
    let answer = this.slotCandidates.get(slot);
    if (answer === undefined) {
      answer = this.byName.has(slot.elementName) || this.byType.has(primitiveTypeName(slot.typeName ?? 'string'));
      this.slotCandidates.set(slot, answer);
    }
    return answer;
  }

  /** Could a rule before `index` match something strictly inside this element? */
  private earlierRuleMayMatchInside(frame: Frame, index: number): boolean {
    if (!frame.node) return false;
    const reach = this.reachOf(frame.node);
    for (const rule of this.table.rules) {
      if (rule.index >= index) return false;
      const t = rule.path.terminal;
      if (t.kind === 'name' ? reach.names.has(t.name) : reach.types.has(t.type)) return true;
    }
    return false;
  }

  /** Element names and types that can occur below a node, through datatypes and backbones. */
  private reachOf(start: ElementNode): { names: Set<string>; types: Set<string> } {
    const cached = this.reach.get(start);
    if (cached) return cached;
    const names = new Set<string>();
    const types = new Set<string>();
    const seen = new Set<ElementNode>();
    const stack = [start];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (seen.has(node)) continue;
      seen.add(node);
      for (const slot of node.children.values()) {
        names.add(slot.elementName);
        if (slot.kind === 'complex') {
          types.add(slot.typeName ?? '');
          if (slot.typeName === 'SimpleQuantity' || slot.typeName === 'MoneyQuantity') types.add('Quantity');
          const child = this.types.datatypes.get(slot.typeName ?? '');
          if (child) stack.push(child);
        } else if (slot.kind === 'backbone') {
          types.add('BackboneElement');
          if (slot.node) stack.push(slot.node);
        } else if (slot.kind === 'resource') {
          // Contained resources can hold anything.
          for (const rule of this.table.rules) {
            const t = rule.path.terminal;
            if (t.kind === 'name') names.add(t.name);
            else types.add(t.type);
          }
        } else if (slot.kind === 'primitive') {
          types.add(primitiveTypeName(slot.typeName ?? 'string'));
        }
      }
    }
    const result = { names, types };
    this.reach.set(start, result);
    return result;
  }

  // ------------------------------------------------------------------ methods

  private apply(rule: MappingRule, frame: Frame, value: unknown, state: WalkState): Outcome {
    switch (rule.method) {
      case 'substitute':
        return structuredClone(rule.substitute);
      case 'pseudonymize':
        return this.pseudonymize(rule, frame, value, state);
      case 'cryptoHash':
        return this.hash(rule, frame, value, state);
      case 'dateShift':
        return this.mapDates(value, frame, (v, type, dateFrame) => {
          if (this.keptAsStored(state, rule, dateFrame, '', v)) return v;
          // Checked now at both ends of the offsets the vault draws, so a date that could not
          // move is dropped here, as one that cannot be read is.
          shiftDate(v, -1, type);
          shiftDate(v, -this.table.dateShiftMaxDays, type);
          state.shiftsDates = true;
          return new PendingShiftedDate(v, type);
        }, (pending) => new PendingShiftedDate(pending.value, pending.type, pending.shifts + 1, pending.after));
      case 'generalize':
        return this.generalize(rule, frame, value, state.services);
      default:
        return value;
    }
  }

  private pseudonymize(rule: MappingRule, frame: Frame, value: unknown, state: WalkState): Outcome {
    const pending = (domain: string, real: string, suffix: string) => {
      if (this.keptAsStored(state, rule, frame, suffix, real)) return real;
      const placeholder = new PendingPseudonym(domain, real);
      state.pseudonyms.push(placeholder);
      return placeholder;
    };
    if (sameType(frame.type, 'Identifier')) {
      const identifier = { ...(value as Record<string, unknown>) };
      if (typeof identifier.value === 'string') {
        const domain = rule.domain ?? (typeof identifier.system === 'string' ? identifier.system : NO_SYSTEM_DOMAIN);
        identifier.value = pending(domain, identifier.value, 'value');
      }
      // An assigner's name is free text; the assigner reference is handled by the Reference rule.
      return identifier;
    }
    if (frame.type === 'Reference') {
      const reference = { ...(value as Record<string, unknown>) };
      // references.html: display is free text (a patient's name, often).
      delete reference.display;
      if (reference.identifier && typeof reference.identifier === 'object') {
        const identifier = { ...(reference.identifier as Record<string, unknown>) };
        if (typeof identifier.value === 'string') {
          const domain = typeof identifier.system === 'string' ? identifier.system : NO_SYSTEM_DOMAIN;
          identifier.value = pending(domain, identifier.value, 'identifier.value');
        }
        reference.identifier = identifier;
      }
      if (typeof reference.reference === 'string') {
        const text = reference.reference;
        const match = LITERAL_REFERENCE.exec(text);
        if (text.startsWith('#') || /^urn:(uuid|oid):/.test(text)) {
          // Local (contained) and bundle-local references carry no client id.
        } else if (this.keptAsStored(state, rule, frame, 'reference', text)) {
          // Already the stored reference (to a stored id): resolving it again changes nothing.
        } else if (match) {
          const [, base = '', type, id, history = ''] = match;
          state.references.push({ holder: reference, resourceType: type!, id: id!, rebuild: (newId) => `${base}${type}/${newId}${history}` });
        } else if (/^[A-Z][A-Za-z]+[/?]/.test(text)) {
          // A conditional reference outside a transaction (`Patient?identifier=…`), or a relative
          // reference whose id is not an R4 id: the client's mistake, and its text may be an
          // identifier that cannot be pseudonymized. Refused, so the client can correct it.
          throw new UnpseudonymizableReference(locationOf(frame));
        } else {
          // Another system's URL in a form that names no FHIR type and id: it may carry an
          // identifier (a URL, 164.514(b)(2)(i)(N)) and cannot be translated, so it goes.
          delete reference.reference;
        }
      }
      // A reference left empty (only display text before) says so rather than vanishing, since
      // many references are required (Observation.subject in profiles, Encounter.location.location).
      return Object.keys(reference).length === 0 ? maskedElement() : reference;
    }
    if (typeof value === 'string') return pending(rule.domain ?? rule.path.source, value, '');
    // Numbers and booleans carry no identifier text; a complex type without a pseudonym form is redacted.
    return typeof value === 'object' ? REMOVE : value;
  }

  private hash(rule: MappingRule, frame: Frame, value: unknown, state: WalkState): Outcome {
    const key = state.services.hashKey!;
    if (sameType(frame.type, 'Identifier')) {
      const identifier = { ...(value as Record<string, unknown>) };
      if (typeof identifier.value === 'string' && !this.keptAsStored(state, rule, frame, 'value', identifier.value)) {
        identifier.value = cryptoHash(identifier.value, key);
      }
      return identifier;
    }
    if (typeof value === 'string') return this.keptAsStored(state, rule, frame, '', value) ? value : cryptoHash(value, key);
    return typeof value === 'object' ? REMOVE : value;
  }

  private generalize(rule: MappingRule, frame: Frame, value: unknown, services: WalkServices): Outcome {
    switch (rule.generalize) {
      case 'year':
        return this.mapDates(value, frame, (v, type) => dateToYear(v, type));
      case 'birthDate':
        return this.mapDates(value, frame, (v, type) => generalizeBirthDate(v, type, services.now));
      case 'zip3':
        if (typeof value !== 'string') return REMOVE;
        // Already three digits (a stored version written back): the same result again.
        if (/^\d{3}$/.test(value)) return this.table.restrictedZip3.has(value) ? '000' : value;
        return generalizeZip(value, this.table.restrictedZip3) ?? REMOVE;
      case 'age':
        if (typeof value !== 'object' || value === null) return REMOVE;
        try {
          return generalizeAge(value as Parameters<typeof generalizeAge>[0]);
        } catch {
          // An age whose unit cannot be read cannot be judged under or over 89: it goes.
          return REMOVE;
        }
      default:
        return value;
    }
  }

  /**
   * Applies `fn` to every date, dateTime and instant at or below the element (a Period's start
   * and end, a Timing's events). A value that is not a valid date of its type is dropped rather
   * than kept as it came.
   */
  private mapDates(value: unknown, frame: Frame, fn: (value: string, type: FhirDateType, frame: Frame) => unknown,
    onPending?: (pending: PendingShiftedDate) => PendingShiftedDate): Outcome {
    if (DATE_TYPES.has(frame.type)) {
      if (value instanceof PendingShiftedDate) {
        // An earlier dateShift rule moved this date: this rule applies to the moved date.
        return onPending ? onPending(value)
          : new PendingShiftedDate(value.value, value.type, value.shifts, [...value.after, fn as (v: string, t: FhirDateType) => string]);
      }
      if (typeof value !== 'string') return value;
      try {
        return fn(value, frame.type as FhirDateType, frame);
      } catch {
        return REMOVE;
      }
    }
    if (typeof value !== 'object' || value === null || !frame.node) return value;
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(input)) {
      const slot = frame.node.children.get(key);
      if (!slot || slot.kind === 'primitive-element') {
        out[key] = child;
        continue;
      }
      const mapOne = (item: unknown) => this.mapDates(item, this.childFrame(frame, slot, item, key), fn, onPending);
      if (Array.isArray(child)) {
        const mapped = child.map(mapOne).filter((c) => c !== REMOVE);
        if (mapped.length > 0) out[key] = mapped;
      } else {
        const mapped = mapOne(child);
        if (mapped !== REMOVE) out[key] = mapped;
      }
    }
    return Object.keys(out).length === 0 ? REMOVE : out;
  }
}
