/**
 * RFC 8785 (JCS) against the RFC's own examples: §3.2.2 (serialization of primitives),
 * §3.2.3 (member sorting by UTF-16 code units) and Appendix B (number serialization).
 */
import { expect } from 'chai';
import { canonicalJson, canonicalJsonBytes, CanonicalJsonError } from '../../src/ledger/jcs.js';

/** An IEEE 754 double from its 64-bit pattern in hex (Appendix B lists numbers this way). */
function doubleFromHex(hex: string): number {
  return Buffer.from(hex, 'hex').readDoubleBE(0);
}

describe('ledger/jcs (RFC 8785)', () => {
  it('§3.2.2: serializes the sample input exactly as the RFC shows', () => {
    // The RFC's input text, parsed as any JSON parser would.
    const input = JSON.parse(`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
      "literals": [null, true, false]
    }`);
    expect(canonicalJson(input)).to.equal(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
      + '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('§3.2.3: sorts members by UTF-16 code units, not by code points or UTF-8', () => {
    const input = JSON.parse(`{
      "\\u20ac": "Euro Sign",
      "\\r": "Carriage Return",
      "\\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\\ud83d\\ude00": "Emoji: Grinning Face",
      "\\u0080": "Control",
      "\\u00f6": "Latin Small Letter O With Diaeresis"
    }`);
    const values = Object.values(JSON.parse(canonicalJson(input)) as Record<string, string>);
    // Object.values would reorder integer-like keys, so read the order from the text itself.
    const order = [...canonicalJson(input).matchAll(/:"([^"]+)"/g)].map((m) => m[1]);
    expect(order).to.deep.equal([
      'Carriage Return', 'One', 'Control', 'Latin Small Letter O With Diaeresis', 'Euro Sign',
      'Emoji: Grinning Face', 'Hebrew Letter Dalet With Dagesh',
    ]);
    expect(values).to.have.length(7);
  });

  it('§3.2.3: sorts nested objects recursively and keeps array order', () => {
    expect(canonicalJson({ b: [3, { z: 1, a: 2 }, 1], a: { d: null, c: true } }))
      .to.equal('{"a":{"c":true,"d":null},"b":[3,{"a":2,"z":1},1]}');
  });

  it('§3.2.4: the UTF-8 bytes of the §3.2.2 sample', () => {
    const bytes = canonicalJsonBytes(JSON.parse('{"string":"\\u20ac"}'));
    expect(bytes.toString('hex')).to.equal('7b22737472696e67223a22e282ac227d');
  });

  const appendixB: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [hex, expected] of appendixB) {
    it(`Appendix B: ${hex} → ${expected}`, () => {
      expect(canonicalJson(doubleFromHex(hex))).to.equal(expected);
    });
  }

  for (const hex of ['7fffffffffffffff', '7ff0000000000000', 'fff0000000000000']) {
    it(`Appendix B: ${hex} (NaN or Infinity) is an error`, () => {
      expect(() => canonicalJson([doubleFromHex(hex)])).to.throw(CanonicalJsonError);
    });
  }

  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ a: undefined })).to.throw(CanonicalJsonError);
    expect(() => canonicalJson(() => 1)).to.throw(CanonicalJsonError);
    expect(() => canonicalJson(10n)).to.throw(CanonicalJsonError);
  });

  it('is independent of member order and whitespace of the input text', () => {
    const a = JSON.parse('{"resourceType":"Patient","id":"p1","name":[{"given":["Ann"],"family":"Lee"}]}');
    const b = JSON.parse('{ "name" : [ { "family" : "Lee", "given" : [ "Ann" ] } ], "id" : "p1", "resourceType" : "Patient" }');
    expect(canonicalJson(a)).to.equal(canonicalJson(b));
  });
});
