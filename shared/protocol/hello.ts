import { ATTESTERS } from './codes.ts';
import type { Fields } from './fields.ts';
import { type Hello, SW_PCR_MAX, SW_PCR_MIN, type SwPcr } from './messages.ts';

export function readHello(f: Fields): Hello {
  const ekCert = f.optBytes('ekCert');
  return {
    t: 'hello',
    ek: f.bytes('ek'),
    ...(ekCert && { ekCert }),
    ak: f.bytes('ak'),
    attester: f.oneOf('attester', ATTESTERS),
    agent: f.text('agent', 64),
    // Only 8-15: zero at reset and not resettable from locality 0, so a log replayed into one
    // cannot be rewound by software on the device.
    swPcr: f.uint('swPcr', SW_PCR_MIN, SW_PCR_MAX) as SwPcr,
  };
}

export function writeHello(m: Hello) {
  return { ek: m.ek, ekCert: m.ekCert, ak: m.ak, attester: m.attester, agent: m.agent, swPcr: m.swPcr };
}
