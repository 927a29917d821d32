// MQTT.js 5 (npm "mqtt", written by others) against a broker at MQTT 5.0.
// Usage: node mqttjs_v5.mjs PORT
// Prints one JSON object: what a level-5 subscriber received from a level-5 publisher
// at QoS 0, 1 and 2 with properties and automatic topic aliases, and whether a
// persistent session (Session Expiry Interval) kept a QoS 1 message for its client.
import mqtt from "mqtt";

const port = Number(process.argv[2]);
const url = `mqtt://127.0.0.1:${port}`;
const fail = (why) => { console.log(JSON.stringify({ error: String(why) })); process.exit(1); };
setTimeout(() => fail("timeout"), 15000).unref();

const connect = (options) => new Promise((resolve, reject) => {
  const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
  client.once("connect", (connack) => resolve({ client, connack }));
  client.once("error", reject);
});

const result = {};
try {
  const { client: sub, connack } = await connect({ clientId: "js-sub" });
  result.topicAliasMaximum = connack.properties?.topicAliasMaximum ?? null;
  const received = [];
  sub.on("message", (topic, payload, packet) => {
    received.push({
      topic, payload: payload.toString(), qos: packet.qos,
      userProperties: packet.properties?.userProperties ?? null,
      contentType: packet.properties?.contentType ?? null,
      correlationData: packet.properties?.correlationData?.toString() ?? null,
    });
  });
  await sub.subscribeAsync("js/#", { qos: 2 });
  const { client: pub } = await connect({ clientId: "js-pub", autoAssignTopicAlias: true });
  for (const qos of [0, 1, 2]) {
    await pub.publishAsync("js/a/long/topic/name", `q${qos}`, {
      qos,
      properties: {
        userProperties: { k: "v", n: `${qos}` },
        contentType: "text/plain",
        correlationData: Buffer.from(`c${qos}`),
      },
    });
  }
  const deadline = Date.now() + 5000;
  while (received.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  result.received = received;
  await pub.endAsync();
  await sub.endAsync();

  // A persistent session: Session Expiry Interval 60, clean start off.
  const keep = { clientId: "js-keep", clean: false, properties: { sessionExpiryInterval: 60 } };
  const first = await connect(keep);
  await first.client.subscribeAsync("js/keep", { qos: 1 });
  await first.client.endAsync();
  const { client: other } = await connect({ clientId: "js-other" });
  await other.publishAsync("js/keep", "while away", { qos: 1 });
  await other.endAsync();
  const again = await new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, ...keep });
    const got = [];
    client.on("message", (topic, payload) => got.push(payload.toString()));
    client.once("connect", (connack) => setTimeout(() => resolve({ client, connack, got }), 500));
    client.once("error", reject);
  });
  result.sessionPresent = again.connack.sessionPresent;
  result.kept = again.got;
  await again.client.endAsync();
} catch (error) {
  fail(error);
}
console.log(JSON.stringify(result));
process.exit(0);
