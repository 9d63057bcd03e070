/**
 * ResourceValidator against the official R4 examples (hl7.fhir.r4.examples) and against
 * resources broken on purpose, one rule at a time, with exact FHIRPath locations.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResourceValidator } from '../../src/fhir/validator.js';
import type { OutcomeIssue } from '../../src/fhir/fhir-error.js';
import type { Resource } from '../../src/fhir/resource.js';

const require = createRequire(import.meta.url);

/** The repository root, from src (test/fhir) or from dist (dist/test/fhir). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'profiles')))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repository root not found');
    dir = parent;
  }
  return dir;
}

const PROFILES_DIR = join(repoRoot(), 'profiles');
const EXAMPLES_DIR = dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const PROFILE_BASE = 'https://fhir-ledger.dev/fhir/StructureDefinition/';

/** Each example file is read and parsed once for the whole file (several tests walk the corpus). */
const parsedExamples = new Map<string, Resource>();
function example(name: string): Resource {
  let parsed = parsedExamples.get(name);
  if (!parsed) {
    parsed = JSON.parse(readFileSync(join(EXAMPLES_DIR, `${name}.json`), 'utf8')) as Resource;
    parsedExamples.set(name, parsed);
  }
  // A copy: a test that changes an example must not change it for the next one.
  return structuredClone(parsed);
}

let exampleFiles: string[] | undefined;
function examplesOf(type: string): string[] {
  exampleFiles ??= readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json'));
  return exampleFiles
    .filter((f) => f.startsWith(`${type}-`))
    .map((f) => f.slice(0, -'.json'.length))
    .filter((name) => parsedExample(name).resourceType === type);
}

function parsedExample(name: string): Resource {
  if (!parsedExamples.has(name)) example(name);
  return parsedExamples.get(name)!;
}

function errors(issues: OutcomeIssue[]): OutcomeIssue[] {
  return issues.filter((i) => i.severity === 'error');
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Official examples that are invalid R4, with the rule they break; each is checked to fail for that reason. */
const INVALID_OFFICIAL_EXAMPLES: Record<string, { rule: string; reason: string }> = {
  'Observation-decimal': {
    rule: 'Observation.subject',
    reason: 'has no subject; valid R4, but fhir-ledger-observation requires one (de-identification and the risk models key Observations by subject)',
  },
  'RiskAssessment-population': {
    rule: 'RiskAssessment.prediction',
    reason: 'has no prediction; valid R4, but fhir-ledger-riskassessment requires at least one',
  },
  'Bundle-dataelements': { rule: 'bdl-7', reason: 'a collection with repeated fullUrls (e.g. de-Quantity.value three times)' },
  'Questionnaire-qs1': { rule: 'Questionnaire.item.linkId', reason: 'items without linkId (1..1 in R4)' },
  'Questionnaire-zika-virus-exposure-assessment': { rule: 'txt-', reason: 'narrative with whitespace only (txt-2; txt-1 and txt-2 are both htmlChecks() in R4)' },
  'StructureDefinition-Definition': { rule: 'sdf-4', reason: 'logical model, not abstract, without baseDefinition' },
  'StructureDefinition-Event': { rule: 'sdf-4', reason: 'logical model, not abstract, without baseDefinition' },
  'StructureDefinition-FiveWs': { rule: 'sdf-4', reason: 'logical model, not abstract, without baseDefinition' },
  'StructureDefinition-Request': { rule: 'sdf-4', reason: 'logical model, not abstract, without baseDefinition' },
  'SearchParameter-codesystem-extensions-CodeSystem-author': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-codesystem-extensions-CodeSystem-effective': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-codesystem-extensions-CodeSystem-end': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-codesystem-extensions-CodeSystem-keyword': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-codesystem-extensions-CodeSystem-workflow': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-valueset-extensions-ValueSet-author': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-valueset-extensions-ValueSet-effective': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-valueset-extensions-ValueSet-end': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-valueset-extensions-ValueSet-keyword': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-valueset-extensions-ValueSet-workflow': { rule: 'SearchParameter.base', reason: 'no base (1..* in R4)' },
  'SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject': {
    rule: 'datatypes.html#id', reason: 'id longer than 64 characters',
  },
  'ActivityDefinition-blood-tubes-supply': { rule: 'txt-', reason: 'narrative with whitespace only (txt-2; txt-1 and txt-2 are both htmlChecks() in R4)' },
  'ActivityDefinition-heart-valve-replacement': { rule: 'txt-', reason: 'narrative with whitespace only (txt-2; txt-1 and txt-2 are both htmlChecks() in R4)' },
  'EventDefinition-example': { rule: 'txt-', reason: 'narrative with whitespace only (txt-2; txt-1 and txt-2 are both htmlChecks() in R4)' },
};

/** Other types whose official examples must all validate (except the list above). */
const OTHER_TYPES = [
  'ActivityDefinition', 'AllergyIntolerance', 'Appointment', 'AuditEvent', 'Bundle', 'CarePlan', 'CareTeam', 'Claim',
  'CodeSystem', 'Composition', 'Condition', 'Consent', 'Coverage', 'Device', 'DiagnosticReport', 'DocumentReference',
  'Encounter', 'EventDefinition', 'Goal', 'Group', 'Immunization', 'List', 'Location', 'Medication',
  'MedicationAdministration', 'MedicationDispense', 'MedicationRequest', 'MedicationStatement', 'NutritionOrder',
  'OperationOutcome', 'Organization', 'Parameters', 'Practitioner', 'PractitionerRole', 'Procedure', 'Provenance',
  'Questionnaire', 'QuestionnaireResponse', 'RelatedPerson', 'SearchParameter', 'ServiceRequest', 'Specimen',
  'StructureDefinition', 'Task',
];

/** Definitional bundles of several MB (all the value sets, all the resources) take seconds; leave them out. */
const MAX_EXAMPLE_BYTES = 300_000;

describe('ResourceValidator', function () {
  let validator: ResourceValidator;
  let fhirpathOnly: ResourceValidator;

  // Loading the R4 definitions takes seconds, several times that on a loaded 2-core machine: the
  // hooks that do it and the tests that walk the whole example corpus (compiling a schema
  // validator for each type they meet) have bounds of their own, which only catch a hang.
  const CORPUS_TIMEOUT_MS = 240_000;

  before(function () {
    this.timeout(CORPUS_TIMEOUT_MS);
    validator = ResourceValidator.create({ profilesDir: PROFILES_DIR });
    fhirpathOnly = ResourceValidator.create({ profilesDir: PROFILES_DIR, fastPath: false });
  });

  describe('start-up and metadata', function () {
    it('knows the R4 resource types of the official schema, and only those', function () {
      expect(validator.resourceTypes.size).to.equal(146);
      for (const t of ['Patient', 'Observation', 'RiskAssessment', 'Bundle', 'Parameters']) expect(validator.isKnownResourceType(t)).to.equal(true);
      // Medplum's own types, the R4B backport and the abstract bases are not R4 resources.
      for (const t of ['Project', 'Bot', 'SubscriptionStatus', 'DomainResource', 'Resource', 'patient']) {
        expect(validator.isKnownResourceType(t), t).to.equal(false);
      }
    });

    it('lists the server profiles per type', function () {
      expect(validator.profilesFor('Patient')).to.deep.equal([`${PROFILE_BASE}fhir-ledger-patient`]);
      expect(validator.profilesFor('Observation')).to.deep.equal([`${PROFILE_BASE}fhir-ledger-observation`]);
      expect(validator.profilesFor('RiskAssessment')).to.deep.equal([`${PROFILE_BASE}fhir-ledger-riskassessment`]);
      expect(validator.profilesFor('Encounter')).to.deep.equal([]);
    });

    it('documents the official invariants it cannot enforce', function () {
      const skipped = Object.fromEntries(validator.skippedInvariants.map((s) => [s.key, s]));
      // ctm-1 needs resolve(), asynchronous in fhirpath.js; eld-16 and eld-19 have regexes that
      // are not valid JavaScript (Unicode mode); que-7 is wrong for valid content.
      expect(Object.keys(skipped).sort()).to.deep.equal(['ctm-1', 'eld-16', 'eld-19', 'que-7']);
      expect(skipped['ctm-1']!.reason).to.match(/resolve/);
      expect(skipped['eld-16']!.reason).to.match(/regular expression/);
      expect(skipped['eld-19']!.reason).to.match(/regular expression/);
      expect(skipped['que-7']!.reason).to.match(/Boolean/);
    });

    it('documents the official invariants it enforces through a rewrite', function () {
      // dom-3 throws in fhirpath.js as written (as() on a collection); it runs with ofType().
      expect(validator.correctedInvariants.map((c) => c.key)).to.deep.equal(['dom-3']);
      expect(validator.correctedInvariants[0]!.corrected).to.include('descendants().ofType(canonical)');
    });
  });

  describe('official examples', function () {
    for (const type of ['Patient', 'Observation', 'RiskAssessment']) {
      it(`accepts every official ${type} example (except the documented ones)`, function () {
        const names = examplesOf(type);
        expect(names.length).to.be.greaterThan(5);
        for (const name of names) {
          if (INVALID_OFFICIAL_EXAMPLES[name]) continue;
          const issues = validator.validate(example(name));
          expect(errors(issues), `${name}: ${JSON.stringify(issues)}`).to.deep.equal([]);
          // Every invariant could be evaluated (no 'processing' warnings).
          expect(issues.filter((i) => i.code === 'processing'), name).to.deep.equal([]);
        }
      });
    }

    it(`accepts every official example of ${OTHER_TYPES.length} other types (except the documented ones)`, function () {
      this.timeout(CORPUS_TIMEOUT_MS);
      let count = 0;
      for (const type of OTHER_TYPES) {
        for (const name of examplesOf(type)) {
          if (INVALID_OFFICIAL_EXAMPLES[name]) continue;
          if (statSync(join(EXAMPLES_DIR, `${name}.json`)).size > MAX_EXAMPLE_BYTES) continue;
          const all = validator.validate(example(name));
          const issues = errors(all);
          expect(issues, `${name}: ${JSON.stringify(issues.slice(0, 3))}`).to.deep.equal([]);
          expect(all.filter((i) => i.code === 'processing'), name).to.deep.equal([]);
          count++;
        }
      }
      expect(count).to.be.greaterThan(300);
    });

    for (const [name, { rule, reason }] of Object.entries(INVALID_OFFICIAL_EXAMPLES)) {
      it(`rejects ${name} for ${rule} (${reason})`, function () {
        this.timeout(CORPUS_TIMEOUT_MS); // Bundle-dataelements holds many types, each met for the first time
        const issues = errors(validator.validate(example(name)));
        expect(issues).to.not.deep.equal([]);
        for (const issue of issues) {
          expect(`${issue.diagnostics} ${issue.expression?.join()}`, JSON.stringify(issue)).to.include(rule);
        }
      });
    }
  });

  describe('rejections, located by FHIRPath', function () {
    const patient = (): Resource => clone(example('Patient-example'));
    const observation = (): Resource => clone(example('Observation-example'));
    const risk = (): Resource => clone(example('RiskAssessment-genetic'));

    /** Runs a case on both invariant engines: the fast evaluator and fhirpath.js only. */
    function check(resource: Resource): OutcomeIssue[] {
      const issues = validator.validate(resource);
      expect(fhirpathOnly.validate(resource), 'fhirpath.js engine').to.deep.equal(issues);
      return issues;
    }

    function expectOnly(issues: OutcomeIssue[], expected: { code: string; expression: string; includes?: string }): void {
      const errs = errors(issues);
      expect(errs, JSON.stringify(issues)).to.have.length(1);
      expect(errs[0]!.code).to.equal(expected.code);
      expect(errs[0]!.expression).to.deep.equal([expected.expression]);
      if (expected.includes) expect(errs[0]!.diagnostics).to.include(expected.includes);
    }

    it('unknown property', function () {
      const r = patient();
      r['favouriteColour'] = 'blue';
      expectOnly(check(r), { code: 'structure', expression: 'Patient.favouriteColour', includes: 'favouriteColour' });
      const nested = patient();
      (nested['name'] as Record<string, unknown>[])[0]!['nickname'] = 'Jim';
      expectOnly(check(nested), { code: 'structure', expression: 'Patient.name[0].nickname' });
    });

    it('Medplum additions to the schema are not R4', function () {
      const r = patient();
      r.meta = { project: 'x' };
      expectOnly(check(r), { code: 'structure', expression: 'Patient.meta.project' });
    });

    it('wrong primitive type', function () {
      const r = patient();
      r['active'] = 'yes';
      expectOnly(check(r), { code: 'value', expression: 'Patient.active', includes: 'boolean' });
      const n = patient();
      n['multipleBirthInteger'] = 1.5;
      expectOnly(check(n), { code: 'value', expression: 'Patient.multipleBirthInteger' });
    });

    it('invalid code for status', function () {
      const r = observation();
      r['status'] = 'done';
      expectOnly(check(r), { code: 'value', expression: 'Observation.status', includes: 'final' });
    });

    it('invalid date', function () {
      const r = patient();
      r['birthDate'] = '1974-13-25';
      expectOnly(check(r), { code: 'value', expression: 'Patient.birthDate', includes: 'date' });
    });

    it('empty string', function () {
      const r = patient();
      ((r['name'] as Record<string, unknown>[])[0]!['given'] as string[])[1] = '';
      expectOnly(check(r), { code: 'invariant', expression: 'Patient.name[0].given[1]', includes: 'ele-1' });
    });

    it('null', function () {
      const r = patient();
      r['gender'] = null;
      expectOnly(check(r), { code: 'structure', expression: 'Patient.gender', includes: 'null' });
      const inArray = patient();
      ((inArray['name'] as Record<string, unknown>[])[0]!['given'] as unknown[])[1] = null;
      expectOnly(check(inArray), { code: 'structure', expression: 'Patient.name[0].given[1]' });
    });

    it('accepts null as a placeholder aligned with a _ companion (json.html#primitive)', function () {
      const r = patient();
      const name = (r['name'] as Record<string, unknown>[])[0]!;
      name['given'] = ['Peter', null];
      name['_given'] = [null, { extension: [{ url: 'http://example.org/initial', valueBoolean: true }] }];
      expect(errors(check(r))).to.deep.equal([]);
    });

    it('empty array and empty object', function () {
      const r = patient();
      r['telecom'] = [];
      expectOnly(check(r), { code: 'invariant', expression: 'Patient.telecom', includes: 'ele-1' });
      const o = patient();
      o['maritalStatus'] = {};
      expectOnly(check(o), { code: 'invariant', expression: 'Patient.maritalStatus', includes: 'ele-1' });
      const idOnly = patient();
      idOnly['maritalStatus'] = { id: 'm1' };
      expectOnly(check(idOnly), { code: 'invariant', expression: 'Patient.maritalStatus', includes: 'ele-1' });
    });

    it('ext-1: value and nested extensions, or neither', function () {
      const both = patient();
      both['extension'] = [{ url: 'http://example.org/x', valueString: 'a', extension: [{ url: 'y', valueString: 'b' }] }];
      expectOnly(check(both), { code: 'invariant', expression: 'Patient.extension[0]', includes: 'ext-1' });
      const neither = patient();
      neither['extension'] = [{ url: 'http://example.org/x' }];
      expectOnly(check(neither), { code: 'invariant', expression: 'Patient.extension[0]', includes: 'ext-1' });
      const onPrimitive = patient();
      onPrimitive['_birthDate'] = { extension: [{ url: 'http://example.org/x', valueString: 'a', extension: [{ url: 'y', valueString: 'b' }] }] };
      expectOnly(check(onPrimitive), { code: 'invariant', expression: 'Patient.birthDate.extension[0]', includes: 'ext-1' });
      const extendedValue = patient();
      extendedValue['extension'] = [{ url: 'http://example.org/x', _valueString: { extension: [{ url: 'y', valueString: 'b' }] } }];
      expect(errors(check(extendedValue))).to.deep.equal([]);
    });

    it('dom-2, dom-4: contained resources hold no contained resources and no version metadata', function () {
      const nested = observation();
      nested['contained'] = [{ resourceType: 'Device', id: 'scale', contained: [{ resourceType: 'Device', id: 'inner' }] }];
      nested['device'] = { reference: '#scale' };
      const issues = errors(check(nested));
      expect(issues.map((i) => i.diagnostics?.slice(0, 17))).to.include('Constraint dom-2 ');
      const versioned = observation();
      versioned['contained'] = [{ resourceType: 'Device', id: 'scale', meta: { versionId: '1' } }];
      versioned['device'] = { reference: '#scale' };
      expectOnly(check(versioned), { code: 'invariant', expression: 'Observation', includes: 'dom-4' });
    });

    it('dom-3: a contained resource must be referenced', function () {
      const r = observation();
      r['contained'] = [{ resourceType: 'Device', id: 'scale' }];
      expectOnly(check(r), { code: 'invariant', expression: 'Observation', includes: 'dom-3' });
      r['device'] = { reference: '#scale' };
      expect(errors(check(r))).to.deep.equal([]);
    });

    it('ref-1: a local reference must point to a contained resource', function () {
      const r = observation();
      r['device'] = { reference: '#nowhere' };
      expectOnly(check(r), { code: 'invariant', expression: 'Observation.device', includes: 'ref-1' });
    });

    it('obs-6: dataAbsentReason only without a value', function () {
      const r = observation();
      r['dataAbsentReason'] = { text: 'not measured' };
      expectOnly(check(r), { code: 'invariant', expression: 'Observation', includes: 'obs-6' });
    });

    it('obs-7: no component with the observation code when there is a value', function () {
      const r = observation();
      // obs-7 compares whole Codings (intersect): the component repeats the first one exactly.
      const coding = (r['code'] as { coding: unknown[] }).coding[0];
      r['component'] = [{ code: { coding: [coding] }, valueQuantity: { value: 1 } }];
      expectOnly(check(r), { code: 'invariant', expression: 'Observation', includes: 'obs-7' });
      (r['component'] as Record<string, unknown>[])[0]!['code'] = { coding: [{ system: 'http://loinc.org', code: '8302-2' }] };
      expect(errors(check(r))).to.deep.equal([]);
    });

    it('obs-3 on each referenceRange instance', function () {
      const r = observation();
      r['referenceRange'] = [{ low: { value: 1 } }, { type: { text: 'normal' } }];
      expectOnly(check(r), { code: 'invariant', expression: 'Observation.referenceRange[1]', includes: 'obs-3' });
    });

    it('datatype invariants where the datatype occurs: per-1, qty-3, sqty-1, cpt-2', function () {
      const period = observation();
      delete period['effectiveDateTime'];
      period['effectivePeriod'] = { start: '2016-03-28', end: '2016-03-01' };
      expectOnly(check(period), { code: 'invariant', expression: 'Observation.effectivePeriod', includes: 'per-1' });

      const quantity = observation();
      delete (quantity['valueQuantity'] as Record<string, unknown>)['system'];
      expectOnly(check(quantity), { code: 'invariant', expression: 'Observation.valueQuantity', includes: 'qty-3' });

      // referenceRange.low is a SimpleQuantity: comparator is 0..0 there (datatypes.html#SimpleQuantity).
      const simple = observation();
      simple['referenceRange'] = [{ low: { value: 1, comparator: '>' } }];
      expectOnly(check(simple), { code: 'structure', expression: 'Observation.referenceRange[0].low.comparator', includes: '0..0' });

      const contact = patient();
      (contact['telecom'] as Record<string, unknown>[])[1] = { value: '555' };
      expectOnly(check(contact), { code: 'invariant', expression: 'Patient.telecom[1]', includes: 'cpt-2' });
    });

    it('pat-1 on Patient.contact', function () {
      const r = patient();
      r['contact'] = [{ relationship: [{ text: 'friend' }] }];
      expectOnly(check(r), { code: 'invariant', expression: 'Patient.contact[0]', includes: 'pat-1' });
    });

    it('ras-2 on RiskAssessment.prediction', function () {
      const r = risk();
      (r['prediction'] as Record<string, unknown>[])[1]!['probabilityDecimal'] = 150;
      expectOnly(check(r), { code: 'invariant', expression: 'RiskAssessment.prediction[1]', includes: 'ras-2' });
    });

    it('base cardinality the schema cannot state: a required primitive', function () {
      const r = observation();
      delete r['status'];
      expectOnly(check(r), { code: 'required', expression: 'Observation.status', includes: '1..1' });
      // Present through its extensions only (json.html#primitive) counts as present.
      r['_status'] = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] };
      expect(errors(check(r))).to.deep.equal([]);
    });

    it('profile cardinality: Observation without subject', function () {
      const r = observation();
      delete r['subject'];
      expectOnly(check(r), { code: 'required', expression: 'Observation.subject', includes: `${PROFILE_BASE}fhir-ledger-observation` });
    });

    it('profile cardinality: RiskAssessment without prediction', function () {
      const r = risk();
      delete r['prediction'];
      expectOnly(check(r), { code: 'required', expression: 'RiskAssessment.prediction', includes: 'fhir-ledger-riskassessment' });
    });

    it('profile constraint: each prediction states an outcome or a probability', function () {
      const r = risk();
      const prediction = (r['prediction'] as Record<string, unknown>[])[2]!;
      delete prediction['outcome'];
      delete prediction['probabilityDecimal'];
      expectOnly(check(r), { code: 'invariant', expression: 'RiskAssessment.prediction[2]', includes: 'fhir-ledger-ras-1' });
    });

    it('profile constraints on Patient: no birth in the future, no death before birth', function () {
      const future = patient();
      future['birthDate'] = '2999-01-01';
      expectOnly(check(future), { code: 'invariant', expression: 'Patient', includes: 'fhir-ledger-pat-1' });
      const dead = patient();
      delete dead['deceasedBoolean'];
      dead['deceasedDateTime'] = '1970-01-01T00:00:00Z';
      expectOnly(check(dead), { code: 'invariant', expression: 'Patient', includes: 'fhir-ledger-pat-2' });
    });

    it('nested resources: their own definition, one issue per mistake', function () {
      const r = observation();
      r['contained'] = [{ resourceType: 'Patient', id: 'p', active: 'yes' }];
      r['subject'] = { reference: '#p' };
      expectOnly(check(r), { code: 'value', expression: 'Observation.contained[0].active' });

      const unknownType = observation();
      unknownType['contained'] = [{ resourceType: 'Spaceship', id: 'x' }];
      unknownType['subject'] = { reference: '#x' };
      expectOnly(check(unknownType), { code: 'structure', expression: 'Observation.contained[0].resourceType' });

      const bundle: Resource = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { ...observation(), colour: 'red' } }] };
      expectOnly(check(bundle), { code: 'structure', expression: 'Bundle.entry[0].resource.colour' });
    });

    it('never modifies the resource it validates', function () {
      for (const name of ['Observation-example', 'Patient-example', 'RiskAssessment-genetic']) {
        const r = example(name);
        const before = JSON.stringify(r);
        validator.validate(r);
        fhirpathOnly.validate(r);
        expect(JSON.stringify(r)).to.equal(before);
        expect(Object.getOwnPropertyNames(r)).to.deep.equal(Object.keys(JSON.parse(before) as object));
      }
    });

    it('unknown resource type', function () {
      const issues = check({ resourceType: 'Spaceship' });
      expect(errors(issues)).to.have.length(1);
      expect(issues[0]!.code).to.equal('not-supported');
    });

    it('diagnostics never echo the offending values', function () {
      const secret = 'SSN-078-05-1120';
      const r = patient();
      r['gender'] = secret;
      r['birthDate'] = secret;
      r['active'] = secret;
      r['unknownElement'] = secret;
      (r['name'] as Record<string, unknown>[])[0]!['use'] = secret;
      (r['identifier'] as Record<string, unknown>[])[0]!['system'] = `bad uri ${secret}`;
      const issues = check(r);
      expect(errors(issues).length).to.be.greaterThan(3);
      for (const issue of issues) expect(issue.diagnostics ?? '').to.not.include('078-05');
    });
  });

  describe('meta.profile', function () {
    it('reports a profile unknown to the server as a warning, not an error', function () {
      const r = clone(example('Patient-example'));
      r.meta = { profile: ['http://example.org/fhir/StructureDefinition/other', `${PROFILE_BASE}fhir-ledger-patient`] };
      const issues = validator.validate(r);
      expect(errors(issues)).to.deep.equal([]);
      expect(issues).to.have.length(1);
      expect(issues[0]).to.include({ severity: 'warning' });
      expect(issues[0]!.expression).to.deep.equal(['Patient.meta.profile[0]']);
    });

    it('accepts its own profiles and the core definition without warning', function () {
      const r = clone(example('Observation-example'));
      r.meta = { profile: [`${PROFILE_BASE}fhir-ledger-observation|0.1.0`, 'http://hl7.org/fhir/StructureDefinition/Observation'] };
      expect(validator.validate(r)).to.deep.equal([]);
    });
  });

  describe('invariant engines', function () {
    it('the fast evaluator and fhirpath.js agree on every official example of the tested types', function () {
      this.timeout(CORPUS_TIMEOUT_MS);
      for (const type of ['Patient', 'Observation', 'RiskAssessment', ...OTHER_TYPES]) {
        for (const name of examplesOf(type)) {
          if (statSync(join(EXAMPLES_DIR, `${name}.json`)).size > MAX_EXAMPLE_BYTES) continue;
          const resource = example(name);
          expect(validator.validate(resource), name).to.deep.equal(fhirpathOnly.validate(resource));
        }
      }
    });
  });
});
