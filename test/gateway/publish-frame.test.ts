import mqttPacket from 'mqtt-packet';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { publishFrame, topicField } from '../../gateway/broker/publish-frame.ts';

// The gateway frames its own QoS 0 PUBLISH packets; mqtt-packet (what aedes and mqtt.js frame
// and parse with) is the reference: the same bytes as its generator, and its parser reads them
// back, on both sides of every boundary of the remaining-length varint (the topic field is 38
// bytes: remaining lengths 127/128, 16,383/16,384, 2,097,151/2,097,152).

const TOPIC = 'vigil/v1/0123456789abcdef01234567/in';

for (const size of [0, 1, 89, 90, 16_345, 16_346, 2_097_113, 2_097_114]) {
  test(`a ${size}-byte payload frames as mqtt-packet frames it`, () => {
    const payload = Buffer.alloc(size, 0xa5);
    const ours = publishFrame(topicField(TOPIC), payload);
    const reference = mqttPacket.generate({
      cmd: 'publish',
      topic: TOPIC,
      payload,
      qos: 0,
      retain: false,
      dup: false,
    });
    assert.ok(ours.equals(reference), `frame of ${ours.length} bytes differs from mqtt-packet's`);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const parsed: mqttPacket.Packet[] = [];
    parser.on('packet', (p) => parsed.push(p));
    parser.parse(ours);
    assert.is(parsed.length, 1);
    const p = parsed[0] as mqttPacket.IPublishPacket;
    assert.is(p.topic, TOPIC);
    assert.is(p.qos, 0);
    assert.is(p.retain, false);
    assert.ok(Buffer.from(p.payload as Buffer).equals(payload));
  });
}

test('a topic over 65,535 bytes is refused', () => {
  assert.throws(() => topicField('a'.repeat(65_536)), /65,535/);
});

test.run();
