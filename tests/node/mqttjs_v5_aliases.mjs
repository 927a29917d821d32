// MQTT.js 5 receiving from a broker that gives topics aliases (its Topic Alias Maximum 5).
// Usage: node mqttjs_v5_aliases.mjs PORT  -> JSON: the topics as MQTT.js resolved them.
import mqtt from "mqtt";

const port = Number(process.argv[2]);
const url = `mqtt://127.0.0.1:${port}`;
const fail = (why) => { console.log(JSON.stringify({ error: String(why) })); process.exit(1); };
setTimeout(() => fail("timeout"), 10000).unref();
const connect = (options) => new Promise((resolve, reject) => {
  const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
  client.once("connect", () => resolve(client));
  client.once("error", reject);
});
try {
  const sub = await connect({ clientId: "js-alias-sub", properties: { topicAliasMaximum: 5 } });
  const got = [];
  sub.on("message", (topic, payload, packet) => got.push(
    { topic, payload: payload.toString(), alias: packet.properties?.topicAlias ?? null }));
  await sub.subscribeAsync("alias/#", { qos: 1 });
  const pub = await connect({ clientId: "js-alias-pub" });
  for (const n of [1, 2, 3]) await pub.publishAsync("alias/a/long/topic", `m${n}`, { qos: 1 });
  const deadline = Date.now() + 5000;
  while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  console.log(JSON.stringify({ received: got }));
  await pub.endAsync();
  await sub.endAsync();
} catch (error) {
  fail(error);
}
process.exit(0);
