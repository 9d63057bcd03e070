/**
 * Code system hierarchies behind token :below/:above (FHIR R4 search.html#token, codesystem.html
 * #hierarchy): nesting, the parent/child/subsumedBy properties, cycles, which CodeSystems count as
 * known, and the real shipped HL7 code systems.
 */
import { expect } from 'chai';
import {
  CodeSystemHierarchies, CodeSystemHierarchy, unsupportedCodeSystemReason, type CodeSystemResource,
} from '../../src/fhir/code-system-hierarchy.js';

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const DATA_ABSENT = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';
const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';

const sorted = (codes: string[]) => [...codes].sort();

function hierarchyOf(codeSystem: Omit<CodeSystemResource, 'resourceType'>): CodeSystemHierarchy {
  const hierarchy = CodeSystemHierarchy.fromCodeSystem({ resourceType: 'CodeSystem', ...codeSystem });
  expect(hierarchy, 'a hierarchy').to.not.equal(undefined);
  return hierarchy!;
}

describe('code-system-hierarchy', () => {
  describe('CodeSystemHierarchy.fromCodeSystem', () => {
    // a > b > c, a > d; e alone
    const nested = hierarchyOf({
      url: 'urn:test:nested', content: 'complete', hierarchyMeaning: 'is-a',
      concept: [{ code: 'a', concept: [{ code: 'b', concept: [{ code: 'c' }] }, { code: 'd' }] }, { code: 'e' }],
    });

    it('nesting: descendants and ancestors, the code itself included', () => {
      expect(sorted(nested.descendantsOrSelf('a'))).to.deep.equal(['a', 'b', 'c', 'd']);
      expect(sorted(nested.descendantsOrSelf('b'))).to.deep.equal(['b', 'c']);
      expect(nested.descendantsOrSelf('c')).to.deep.equal(['c']);
      expect(sorted(nested.ancestorsOrSelf('c'))).to.deep.equal(['a', 'b', 'c']);
      expect(nested.ancestorsOrSelf('e')).to.deep.equal(['e']);
      expect(nested.subsumes('a', 'c')).to.equal(true);
      expect(nested.subsumes('c', 'a')).to.equal(false);
      expect(nested.subsumes('d', 'b')).to.equal(false); // siblings
    });

    it('a code the system lacks is unknown and relates only to itself', () => {
      expect(nested.has('a')).to.equal(true);
      expect(nested.has('A')).to.equal(false); // codes are case-sensitive
      expect(nested.descendantsOrSelf('zz')).to.deep.equal(['zz']);
    });

    it('parent, child and subsumedBy properties, by declared uri or by code', () => {
      const flat = hierarchyOf({
        url: 'urn:test:props', content: 'complete',
        property: [
          { code: 'up', uri: 'http://hl7.org/fhir/concept-properties#parent' },
          { code: 'child', uri: 'http://hl7.org/fhir/concept-properties#child' },
        ],
        concept: [
          { code: 'root', property: [{ code: 'child', valueCode: 'x' }] },
          { code: 'x' },
          { code: 'y', property: [{ code: 'up', valueCode: 'x' }] },
          // undeclared: recognised by its code
          { code: 'z', property: [{ code: 'subsumedBy', valueCoding: { code: 'y' } }] },
        ],
      });
      expect(sorted(flat.descendantsOrSelf('root'))).to.deep.equal(['root', 'x', 'y', 'z']);
      expect(sorted(flat.ancestorsOrSelf('z'))).to.deep.equal(['root', 'x', 'y', 'z']);
    });

    it('a declared property whose uri means something else is not a hierarchy link', () => {
      const h = hierarchyOf({
        url: 'urn:test:other', content: 'complete',
        property: [{ code: 'parent', uri: 'http://example.org/not-a-parent' }],
        concept: [{ code: 'a' }, { code: 'b', property: [{ code: 'parent', valueCode: 'a' }] }],
      });
      expect(h.descendantsOrSelf('a')).to.deep.equal(['a']);
    });

    it('polyhierarchy: a concept with two parents has both lines of ancestors', () => {
      const h = hierarchyOf({
        url: 'urn:test:poly', content: 'complete',
        concept: [
          { code: 'p1', concept: [{ code: 'shared' }] },
          { code: 'p2', property: [{ code: 'child', valueCode: 'shared' }] },
        ],
      });
      expect(sorted(h.ancestorsOrSelf('shared'))).to.deep.equal(['p1', 'p2', 'shared']);
      expect(sorted(h.descendantsOrSelf('p2'))).to.deep.equal(['p2', 'shared']);
    });

    it('a cycle ends: every code on it is below and above the others', () => {
      const h = hierarchyOf({
        url: 'urn:test:cycle', content: 'complete',
        concept: [
          { code: 'a', property: [{ code: 'parent', valueCode: 'c' }], concept: [{ code: 'b', concept: [{ code: 'c' }] }] },
        ],
      });
      expect(sorted(h.descendantsOrSelf('b'))).to.deep.equal(['a', 'b', 'c']);
      expect(sorted(h.ancestorsOrSelf('a'))).to.deep.equal(['a', 'b', 'c']);
    });

    const refusedRows: { codeSystem: Omit<CodeSystemResource, 'resourceType'>; reason: RegExp }[] = [
      { codeSystem: { url: 'http://snomed.info/sct', content: 'not-present', hierarchyMeaning: 'is-a' }, reason: /not-present/ },
      { codeSystem: { url: 'urn:test:example', content: 'example', concept: [{ code: 'a' }] }, reason: /example/ },
      { codeSystem: { url: 'urn:test:fragment', content: 'fragment', concept: [{ code: 'a' }] }, reason: /fragment/ },
      { codeSystem: { url: 'urn:test:grouped', content: 'complete', hierarchyMeaning: 'grouped-by', concept: [{ code: 'a' }] }, reason: /grouped-by/ },
      { codeSystem: { url: 'urn:test:part-of', content: 'complete', hierarchyMeaning: 'part-of', concept: [{ code: 'a' }] }, reason: /part-of/ },
    ];
    for (const { codeSystem, reason } of refusedRows) {
      it(`no subsumption from ${codeSystem.url} (${codeSystem.content}, ${codeSystem.hierarchyMeaning ?? 'no hierarchyMeaning'})`, () => {
        expect(CodeSystemHierarchy.fromCodeSystem({ resourceType: 'CodeSystem', ...codeSystem })).to.equal(undefined);
        expect(unsupportedCodeSystemReason({ resourceType: 'CodeSystem', ...codeSystem })).to.match(reason);
      });
    }

    it('a complete flat code system is known: each code subsumes only itself', () => {
      const h = hierarchyOf({ url: 'urn:test:flat', content: 'complete', concept: [{ code: 'male' }, { code: 'female' }] });
      expect(h.descendantsOrSelf('male')).to.deep.equal(['male']);
      expect(h.ancestorsOrSelf('male')).to.deep.equal(['male']);
    });
  });

  describe('CodeSystemHierarchies', () => {
    it('loads lazily, once, and builds each system on first use', () => {
      let loads = 0;
      const hierarchies = new CodeSystemHierarchies(() => {
        loads++;
        return [
          { resourceType: 'CodeSystem', url: 'urn:a', content: 'complete', concept: [{ code: 'x', concept: [{ code: 'y' }] }] },
          { resourceType: 'CodeSystem', url: 'urn:b', content: 'not-present' },
        ];
      });
      expect(loads).to.equal(0);
      const a = hierarchies.get('urn:a');
      expect(a).to.not.equal(undefined);
      expect(hierarchies.get('urn:a')).to.equal(a);
      expect(sorted(a!.descendantsOrSelf('x'))).to.deep.equal(['x', 'y']);
      expect(hierarchies.get('urn:b')).to.equal(undefined);
      expect(hierarchies.unsupportedReason('urn:b')).to.match(/not-present/);
      expect(hierarchies.unsupportedReason('urn:none')).to.match(/no CodeSystem/);
      expect(hierarchies.unsupportedReason('urn:a')).to.equal(undefined);
      expect(hierarchies.systems()).to.deep.equal(['urn:a']);
      expect(loads).to.equal(1);
    });

    describe('the shipped HL7 code systems', () => {
      const shipped = CodeSystemHierarchies.shipped();

      it('v3-ActCode: inpatient encounter IMP has ACUTE and NONAC below it, not its sibling AMB', () => {
        const actCode = shipped.get(ACT_CODE)!;
        expect(sorted(actCode.descendantsOrSelf('IMP'))).to.deep.equal(['ACUTE', 'IMP', 'NONAC']);
        expect(actCode.descendantsOrSelf('_ActEncounterCode')).to.include.members(['AMB', 'IMP', 'ACUTE', 'EMER', 'VR']);
        expect(sorted(actCode.ancestorsOrSelf('ACUTE'))).to.deep.equal(['ACUTE', 'IMP', '_ActCareProvisionCode', '_ActEncounterCode']);
      });

      it("v3-ActCode polyhierarchy: LFEMX is nested under _ActCoverageQuantityLimitCode and COVMX's child", () => {
        expect(sorted(shipped.get(ACT_CODE)!.ancestorsOrSelf('LFEMX')))
          .to.deep.equal(['COVMX', 'LFEMX', '_ActCoverageLimitCode', '_ActCoverageQuantityLimitCode']);
      });

      it('FHIR core systems without hierarchyMeaning read their nesting as is-a (data-absent-reason, condition-clinical)', () => {
        expect(sorted(shipped.get(DATA_ABSENT)!.descendantsOrSelf('unknown'))).to.deep.equal(['asked-declined', 'asked-unknown', 'not-asked', 'temp-unknown', 'unknown']);
        expect(sorted(shipped.get(CONDITION_CLINICAL)!.descendantsOrSelf('active'))).to.deep.equal(['active', 'recurrence', 'relapse']);
      });

      it('SNOMED CT (a not-present stub) and LOINC (absent) have no hierarchy here', () => {
        expect(shipped.get('http://snomed.info/sct')).to.equal(undefined);
        expect(shipped.unsupportedReason('http://snomed.info/sct')).to.match(/not-present/);
        expect(shipped.get('http://loinc.org')).to.equal(undefined);
      });

      it('covers the FHIR core, v2 and v3 code systems', () => {
        const systems = shipped.systems();
        expect(systems).to.include.members([ACT_CODE, DATA_ABSENT, 'http://hl7.org/fhir/administrative-gender', 'http://terminology.hl7.org/CodeSystem/v2-0203']);
        expect(systems.length).to.be.greaterThan(1000);
      });
    });
  });
});
