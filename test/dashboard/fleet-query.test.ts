import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseFleetQuery, sliceFleet } from '../../gateway/dashboard/fleet-query.ts';
import type { DeviceRecord, Posture } from '../../gateway/model.ts';
import { minimalDevice } from '../gateway/fixtures/store-records.ts';

// The fleet page's query, answered on the gateway: filters, counts, labels in use, paging.

const it = suite('fleet query (GET /v1/fleet)');

const hexId = (n: number) => n.toString(16).padStart(24, '0');

function device(n: number, posture: Posture, labels: Record<string, string> = {}): DeviceRecord {
  return { ...minimalDevice(hexId(n), hexId(n).padEnd(64, '0')), posture, labels };
}

// Ids deliberately out of order: the answer is sorted by id.
const fleet = [
  device(5, 'affirming', { swarm: 'kitchen' }),
  device(1, 'stale', { swarm: 'kitchen' }),
  device(3, 'affirming', { swarm: 'garage', site: 'a' }),
  device(2, 'contraindicated'),
  device(4, 'affirming', { swarm: 'kitchen' }),
];
const query = (q: string) => parseFleetQuery(new URLSearchParams(q));

it('pages through the devices sorted by id, counting them all', () => {
  const first = sliceFleet(fleet, query('limit=2'));
  assert.equal(
    first.devices.map((d) => d.id),
    [hexId(1), hexId(2)],
  );
  assert.is(first.total, 5);
  assert.is(first.matched, 5);
  assert.is(first.offset, 0);
  const last = sliceFleet(fleet, query('limit=2&offset=4'));
  assert.equal(
    last.devices.map((d) => d.id),
    [hexId(5)],
  );
  assert.equal(sliceFleet(fleet, query('offset=9')).devices, []);
});

it('posture counts are those of the label and id scope, whatever posture is chosen', () => {
  const s = sliceFleet(fleet, query('label=swarm=kitchen&posture=affirming'));
  assert.equal(
    s.devices.map((d) => d.id),
    [hexId(4), hexId(5)],
  );
  assert.is(s.matched, 2);
  assert.equal(s.counts, {
    unknown: 0,
    enrolling: 0,
    affirming: 2,
    warning: 0,
    contraindicated: 0,
    stale: 1,
  });
});

it('search by part of an id, case-insensitive', () => {
  const s = sliceFleet(fleet, query('q=00003'));
  assert.equal(
    s.devices.map((d) => d.id),
    [hexId(3)],
  );
  assert.is(sliceFleet(fleet, query('q=ABC')).matched, 0);
});

it('labels in use over the whole fleet, with counts, sorted', () => {
  assert.equal(sliceFleet(fleet, query('posture=stale')).labels, [
    { label: 'site=a', count: 1 },
    { label: 'swarm=garage', count: 1 },
    { label: 'swarm=kitchen', count: 3 },
  ]);
});

it('bad parameters are refused with what was wrong', () => {
  assert.throws(() => query('posture=fine'), /posture "fine": expected one of unknown, enrolling/);
  assert.throws(() => query('q=kitchen'), /q "kitchen": search by part of a device id/);
  assert.throws(() => query('label=swarm'), /expected KEY=VALUE/);
  assert.throws(() => query('limit=0'), /limit: expected a whole number from 1 to 500/);
  assert.throws(() => query('offset=-1'), /offset/);
});

it.run();
