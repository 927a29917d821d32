// mqtt-packet as a differential peer for mqttref's codec tests.
//
// One long-lived process per test session: it reads one JSON request per
// line on stdin and answers one JSON line on stdout, in order.
//
//   {"op": "parse", "version": 4, "hex": "3005..."}
//       -> {"packets": [...], "error": null | "message", "left": <bytes not consumed>}
//   {"op": "generate", "version": 5, "packet": {...mqtt-packet object...}}
//       -> {"hex": "..."} or {"error": "message"}
//
// Buffers cross the pipe as {"$hex": "..."} in both directions; everything
// else is mqtt-packet's own object shape, unchanged, so the Python side maps
// their field names onto ours and nothing here interprets MQTT.
'use strict'

const mqtt = require('mqtt-packet')
const readline = require('readline')

function toJSON (value) {
  if (Buffer.isBuffer(value)) return { $hex: value.toString('hex') }
  if (Array.isArray(value)) return value.map(toJSON)
  if (value !== null && typeof value === 'object') {
    const out = {}
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) out[key] = toJSON(value[key])
    }
    return out
  }
  return value
}

function fromJSON (value) {
  if (Array.isArray(value)) return value.map(fromJSON)
  if (value !== null && typeof value === 'object') {
    if (typeof value.$hex === 'string') return Buffer.from(value.$hex, 'hex')
    const out = {}
    for (const key of Object.keys(value)) out[key] = fromJSON(value[key])
    return out
  }
  return value
}

function parse (request) {
  const parser = mqtt.parser({ protocolVersion: request.version })
  const packets = []
  let error = null
  parser.on('packet', (packet) => packets.push(toJSON(Object.assign({}, packet))))
  parser.on('error', (err) => { if (error === null) error = err.message })
  const left = parser.parse(Buffer.from(request.hex, 'hex'))
  return { packets, error, left }
}

function generate (request) {
  try {
    const bytes = mqtt.generate(fromJSON(request.packet), { protocolVersion: request.version })
    return { hex: bytes.toString('hex') }
  } catch (err) {
    return { error: err.message }
  }
}

const lines = readline.createInterface({ input: process.stdin, terminal: false })
lines.on('line', (line) => {
  let answer
  try {
    const request = JSON.parse(line)
    answer = request.op === 'parse' ? parse(request) : generate(request)
  } catch (err) {
    answer = { error: 'peer: ' + err.message }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
})
