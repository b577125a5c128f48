import { decodeCbor } from '../shared/cbor/decode.ts';
import { encodeCbor } from '../shared/cbor/encode.ts';
import type { CborMap, CborValue } from '../shared/cbor/value.ts';
import { topics } from '../shared/protocol/index.ts';

// Figure 5's breakdown: where the bytes of a periodic round go, message by message and field by
// field, from the very payloads of a round (each field counted as its key plus its value, the
// map's own head apart), and what a few changes to the wire contract would save, computed on the
// same payloads. The measured figure is the relay's count of TLS bytes; the breakdown explains it.

/** TLS 1.3 record: 5-byte header, 1-byte inner content type, 16-byte AEAD tag. */
const TLS_RECORD_OVERHEAD = 22;

export type Breakdown = Record<string, number>;

const size = (v: CborValue) => encodeCbor(v as never).length;

/** Bytes of each entry of a CBOR map (key + value), and `(map head)`. */
export function fields(bytes: Uint8Array): Breakdown {
  const map = decodeCbor(bytes) as CborMap;
  const out: Breakdown = {};
  let sum = 0;
  for (const [k, v] of map) {
    const n = size(k) + size(v);
    out[String(k)] = n;
    sum += n;
  }
  out['(map head)'] = bytes.length - sum;
  return out;
}

/** An MQTT 3.1.1 PUBLISH at QoS 0: fixed header, remaining length, topic with its length. */
function mqttOverhead(topic: string, payload: number): number {
  const remaining = 2 + Buffer.byteLength(topic) + payload;
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3) + 2 + Buffer.byteLength(topic);
}

export interface RoundPayloads {
  deviceId: string;
  challenge: Uint8Array;
  evidence: Uint8Array;
  result: Uint8Array;
}

export function roundBreakdown(p: RoundPayloads) {
  const evidence = decodeCbor(p.evidence) as CborMap;
  const result = decodeCbor(p.result) as CborMap;
  const body = evidence.get('body') as Uint8Array;
  const ear = result.get('ear') as Uint8Array;
  const [protectedBytes, , earPayload, signature] = decodeCbor(ear) as CborValue[];
  const transport = (topic: string, payload: number) => ({
    mqtt: mqttOverhead(topic, payload),
    tls: TLS_RECORD_OVERHEAD,
  });
  return {
    challenge: { total: p.challenge.length, fields: fields(p.challenge) },
    evidence: {
      total: p.evidence.length,
      fields: fields(p.evidence),
      body: fields(body),
    },
    result: {
      total: p.result.length,
      fields: fields(p.result),
      ear: {
        cose: {
          protected: size(protectedBytes!),
          unprotected: 1,
          payload: size(earPayload!),
          signature: size(signature!),
          '(array head)': 1,
        },
        claims: fields(earPayload as Uint8Array),
      },
    },
    transport: {
      challenge: transport(topics.in(p.deviceId), p.challenge.length),
      evidence: transport(topics.out(p.deviceId), p.evidence.length),
      result: transport(topics.in(p.deviceId), p.result.length),
    },
  };
}

/**
 * What changes beyond PROTOCOL.md would save per periodic round, on these payloads. Each is
 * computed, not measured on the wire (the wire contract is not changed); their savings overlap
 * little, but they are listed one by one.
 */
export function proposals(p: RoundPayloads): Record<string, { saves: number; what: string }> {
  const challenge = decodeCbor(p.challenge) as CborMap;
  const evidence = decodeCbor(p.evidence) as CborMap;
  const result = decodeCbor(p.result) as CborMap;
  const body = decodeCbor(evidence.get('body') as Uint8Array) as CborMap;
  const entry = (m: CborMap, k: string) => size(k) + size(m.get(k)!);
  // An integer key below 24 is one byte; a text key is its head and its UTF-8.
  let textKeys = 0;
  for (const m of [challenge, evidence, result, body])
    for (const k of m.keys()) if (typeof k === 'string') textKeys += size(k) - 1;
  const ids = [challenge, evidence, result].filter((m) => m.has('round')).length;
  const id = p.deviceId;
  const shorter = (long: string, short: string) => Buffer.byteLength(long) - Buffer.byteLength(short);
  const topicSaving = 2 * shorter(topics.in(id), `v/${id}/i`) + shorter(topics.out(id), `v/${id}/o`);
  return {
    earOnChange: {
      saves: entry(result, 'ear') - 1,
      what: 'result carries `ear` only when the status changed or the device asks; the last EAR stays valid until `expires`',
    },
    noNonceEcho: {
      saves: entry(body, 'nonce'),
      what: 'body.nonce left out: the nonce is already bound through the exporter context of extraData (§4)',
    },
    pcrValuesOnChange: {
      saves: entry(body, 'pcrs') - size('pcrs') - 1,
      what: 'body.pcrs only for PCRs whose value changed since the last appraisal: the gateway hashes its known values into the digest',
    },
    shortRoundIds: {
      saves: ids * 12,
      what: 'a 4-byte round id per connection (a counter) instead of 16 random bytes: the nonce already makes each round unique',
    },
    integerKeys: {
      saves: textKeys,
      what: 'integer map keys (as the EAR does) instead of text keys in every message and the body',
    },
    shortTopics: {
      saves: topicSaving,
      what: 'topics v/{id}/i and v/{id}/o instead of vigil/v1/{id}/in and /out',
    },
  };
}
