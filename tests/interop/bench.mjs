#!/usr/bin/env node
// Benchmark of @ethereumjs/devp2p (v10) on this machine. Prints ONE JSON object on stdout.
// See README.md. All traffic is 127.0.0.1 loopback TCP inside this single process.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'

import { ECIES, RLPx, genPrivateKey } from '@ethereumjs/devp2p'
import { RLP } from '@ethereumjs/rlp'
import { privateToPublic } from '@ethereumjs/util'
import * as snappy from 'snappyjs'

import { emit, exit, log, parseArgsOrDie, startHardTimeout } from './lib.mjs'

const args = parseArgsOrDie(
  { handshakes: 'int', 'mem-handshakes': 'int', 'mib-per-case': 'int', 'small-mib': 'int', 'timeout-ms': 'int' },
  'usage: node bench.mjs [--handshakes 200] [--mem-handshakes 200] [--mib-per-case 16] [--small-mib 4] [--timeout-ms 90000]',
)
startHardTimeout(args['timeout-ms'] ?? 90000)

const N_TCP = args.handshakes ?? 200
const N_MEM = args['mem-handshakes'] ?? 200
const MIB_PER_CASE = args['mib-per-case'] ?? 16
const SMALL_MIB = args['small-mib'] ?? 4 // total for the 1 KiB case (per-message overhead dominates)

const now = () => performance.now()

/** Minimal subprotocol: 1 message code, counts what it receives (payload already snappy-decompressed). */
let onBenchMessage = () => {}
class BenchProto {
  constructor(version, peer, send) {
    this._version = version
    this._peer = peer
    this._send = send
  }
  _handleMessage(code, data) {
    onBenchMessage(code, data)
  }
  getVersion() {
    return this._version
  }
}
const CAPS = [{ name: 'bench', version: 1, length: 1, constructor: BenchProto }]

// The library never calls setNoDelay(), and it writes each frame as two socket writes
// (header, then body): with Nagle + delayed ACK that costs ~40 ms per round trip.
// When NODELAY is set we force TCP_NODELAY on every socket to show the difference.
let NODELAY = false
const origConnect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...a) {
  if (NODELAY) this.setNoDelay(true)
  return origConnect.apply(this, a)
}

function mkRlpx(key, listen) {
  return new RLPx(key, {
    capabilities: CAPS,
    maxPeers: 1000,
    timeout: 10000,
    listenPort: null,
    clientId: Buffer.from('bench'),
  })
}

// ---------- 1. in-memory ECIES handshake (auth/ack EIP-8 + Hello both ways, framed) ----------
function memHandshakes(n) {
  const keyA = genPrivateKey()
  const keyB = genPrivateKey()
  const idA = privateToPublic(keyA)
  const idB = privateToPublic(keyB)
  const hello = (id) =>
    RLP.encode([Uint8Array.from([5]), Buffer.from('bench'), [[Buffer.from('eth'), Uint8Array.from([68])]], new Uint8Array(0), id])
  const frame = (from, to, code, payload) => {
    const msg = new Uint8Array([...RLP.encode(code), ...payload])
    const hdr = from.createBlockHeader(msg.length)
    const body = from.createBody(msg)
    const size = to.parseHeader(hdr)
    const got = to.parseBody(body.subarray(0, Math.ceil(size / 16) * 16 + 16))
    RLP.decode(got.subarray(1))
  }
  const one = () => {
    const a = new ECIES(keyA, idA, idB)
    const b = new ECIES(keyB, idB, null)
    const auth = a.createAuthEIP8()
    b._gotEIP8Auth = true
    b.parseAuthEIP8(auth)
    const ack = b.createAckEIP8()
    a._gotEIP8Ack = true
    a.parseAckEIP8(ack)
    frame(a, b, 0, hello(idA))
    frame(b, a, 0, hello(idB))
  }
  for (let i = 0; i < 10; i++) one() // warm-up
  const t0 = now()
  for (let i = 0; i < n; i++) one()
  const ms = now() - t0
  return { n, total_ms: round(ms), per_handshake_ms: round(ms / n, 3), handshakes_per_sec: round((n * 1000) / ms, 1) }
}

// ---------- 2. full RLPx handshakes over loopback TCP ----------
async function tcpHandshakes(n, nodelay) {
  NODELAY = nodelay
  const keyA = genPrivateKey()
  const a = mkRlpx(keyA, true)
  a._server.prependListener('connection', (s) => NODELAY && s.setNoDelay(true))
  await new Promise((res) => {
    a.events.once('listening', res)
    a.listen(0, '127.0.0.1')
  })
  const port = a._server.address().port
  const b = mkRlpx(genPrivateKey(), false)
  let aAdded = null
  let aRemoved = null
  let bAdded = null
  a.events.on('peer:added', (p) => aAdded?.(p))
  a.events.on('peer:removed', (p) => aRemoved?.(p))
  b.events.on('peer:added', (p) => bAdded?.(p))
  a.events.on('peer:error', (_p, e) => log(`A peer error ${e}`))
  b.events.on('peer:error', (_p, e) => log(`B peer error ${e}`))
  const lat = []
  const one = async () => {
    const pA = new Promise((r) => (aAdded = r))
    const pB = new Promise((r) => (bAdded = r))
    const t0 = now()
    await b.connect({ id: a.id, address: '127.0.0.1', tcpPort: port })
    const [, peerB] = await Promise.all([pA, pB])
    lat.push(now() - t0)
    // Tear down immediately (no 2 s Disconnect linger) and wait until both sides forgot the peer.
    const removed = new Promise((r) => (aRemoved = r))
    const bClosed = new Promise((r) => peerB._socket.once('close', r))
    peerB._socket.destroy()
    await Promise.all([removed, bClosed])
  }
  for (let i = 0; i < 10; i++) await one() // warm-up
  lat.length = 0
  const t0 = now()
  for (let i = 0; i < n; i++) await one()
  const ms = now() - t0
  a.destroy()
  b.destroy()
  lat.sort((x, y) => x - y)
  const mean = lat.reduce((s, x) => s + x, 0) / lat.length
  return {
    n,
    transport: 'loopback TCP 127.0.0.1, both peers in this process',
    tcp_nodelay: nodelay,
    total_ms: round(ms),
    handshakes_per_sec_incl_teardown: round((n * 1000) / ms, 1),
    handshake_latency_ms: { mean: round(mean, 3), p50: round(lat[Math.floor(n / 2)], 3), p99: round(lat[Math.floor(n * 0.99)], 3) },
    handshakes_per_sec_from_latency: round(1000 / mean, 1),
  }
}

// ---------- 3. one session's one-direction payload throughput ----------
async function throughput(cases) {
  const a = mkRlpx(genPrivateKey(), true)
  await new Promise((res) => {
    a.events.once('listening', res)
    a.listen(0, '127.0.0.1')
  })
  const port = a._server.address().port
  const b = mkRlpx(genPrivateKey(), false)
  const pA = new Promise((r) => a.events.once('peer:added', r))
  const pB = new Promise((r) => b.events.once('peer:added', r))
  await b.connect({ id: a.id, address: '127.0.0.1', tcpPort: port })
  const [, peerB] = await Promise.all([pA, pB])
  const protoB = peerB.getProtocols()[0]
  const sockB = peerB._socket
  const results = []
  for (const c of cases) {
    const payload = c.kind === 'random' ? randomBytes(c.size) : compressible(c.size)
    const count = Math.max(1, Math.round(c.totalBytes / c.size))
    let received = 0
    let receivedBytes = 0
    let done
    const finished = new Promise((r) => (done = r))
    onBenchMessage = (_code, data) => {
      received++
      receivedBytes += data.length
      if (received === count) done()
    }
    let wireBytes = 0
    const t0 = now()
    for (let i = 0; i < count; i++) {
      // Same as the library's ETH.sendMessage: snappy-compress (p2p v5), then frame+encrypt.
      const wire = snappy.compress(payload)
      wireBytes += wire.length
      protoB._send(0, wire)
      if (sockB.writableLength > 8 * 1024 * 1024) await new Promise((r) => sockB.once('drain', r))
    }
    await finished
    const s = (now() - t0) / 1000
    if (receivedBytes !== count * c.size) throw new Error('byte count mismatch')
    results.push({
      size: c.label,
      payload: c.kind,
      messages: count,
      total_mb: round((count * c.size) / 1e6, 2),
      snappy_ratio: round(wireBytes / (count * c.size), 3),
      seconds: round(s, 3),
      mb_per_s: round((count * c.size) / 1e6 / s, 1),
      msgs_per_s: round(count / s, 0),
    })
  }
  sockB.destroy()
  a.destroy()
  b.destroy()
  return results
}

function compressible(size) {
  // Repeating 64-byte random block: highly compressible by snappy.
  const block = randomBytes(64)
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i += 64) out.set(block.subarray(0, Math.min(64, size - i)), i)
  return out
}

function round(x, d = 2) {
  const f = 10 ** d
  return Math.round(x * f) / f
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version
  } catch {
    return null
  }
}

const t0 = now()
const mem = memHandshakes(N_MEM)
log(`mem handshakes done: ${JSON.stringify(mem)}`)
const tcp = await tcpHandshakes(N_TCP, false)
log(`tcp handshakes (library default, Nagle on) done: ${JSON.stringify(tcp)}`)
const tcpNoDelay = await tcpHandshakes(N_TCP, true)
log(`tcp handshakes (TCP_NODELAY forced) done: ${JSON.stringify(tcpNoDelay)}`)
NODELAY = false
const KiB = 1024
const MiB = 1024 * 1024
const cases = []
for (const kind of ['random', 'compressible']) {
  cases.push({ label: '1KiB', size: KiB, kind, totalBytes: SMALL_MIB * MiB })
  cases.push({ label: '64KiB', size: 64 * KiB, kind, totalBytes: MIB_PER_CASE * MiB })
  cases.push({ label: '1MiB', size: MiB, kind, totalBytes: MIB_PER_CASE * MiB })
}
const tput = await throughput(cases)
emit({
  bench: '@ethereumjs/devp2p',
  devp2p_version: pkgVersion('@ethereumjs/devp2p'),
  node_version: process.version,
  platform: `${os.platform()}-${os.arch()}`,
  cpu: os.cpus()[0]?.model ?? null,
  cpus: os.cpus().length,
  ecies_handshake_in_memory: mem,
  rlpx_handshake_tcp: tcp,
  rlpx_handshake_tcp_nodelay: tcpNoDelay,
  throughput_one_direction: {
    note:
      'one RLPx session over loopback TCP, sender and receiver in the same Node process (single thread); ' +
      'payload snappy-compressed by the sender as ETH.sendMessage does, sent through a 1-code custom subprotocol, ' +
      'counted after decrypt+snappy-uncompress on the receiver (no RLP decode). MB = 1e6 bytes.',
    results: tput,
  },
  total_seconds: round((now() - t0) / 1000, 2),
})
exit(0)
