#!/usr/bin/env node
// RLPx peer built on @ethereumjs/devp2p, for interop tests. See README.md for the CLI contract.
// stdout: newline-delimited JSON events. stderr: diagnostics.
import { Common, Mainnet } from '@ethereumjs/common'
import { DISCONNECT_REASON, ETH, Peer, RLPx } from '@ethereumjs/devp2p'
import { RLP } from '@ethereumjs/rlp'
import * as snappy from 'snappyjs'

import {
  emit,
  exit,
  hexToBytesStrict,
  log,
  parseArgsOrDie,
  parseEnode,
  readCommands,
  startHardTimeout,
  toHex,
} from './lib.mjs'

const USAGE = `usage: node rlpx_peer.mjs --key <64 hex> [--listen] [--port N] [--dial enode://<id>@127.0.0.1:<port>]...
  [--client-id S] [--caps eth/68,eth/67] [--status raw|reply|none|strict] [--no-ping]
  [--exit-on-disconnect] [--exit-on-stdin-eof] [--timeout-ms 20000]`

const args = parseArgsOrDie(
  {
    key: 'string',
    listen: 'bool',
    port: 'int',
    dial: 'list',
    'client-id': 'string',
    caps: 'string',
    status: 'string',
    'no-ping': 'bool',
    'exit-on-disconnect': 'bool',
    'exit-on-stdin-eof': 'bool',
    'timeout-ms': 'int',
  },
  USAGE,
)

function die(msg) {
  log(`error: ${msg}`)
  emit({ event: 'error', message: msg })
  process.exit(1) // stdout is a pipe/file: writes above are synchronous on Linux
}

startHardTimeout(args['timeout-ms'] ?? 20000)

if (args.key === undefined) die('--key is required')
let privateKey
try {
  privateKey = hexToBytesStrict(args.key, '--key', 32)
} catch (e) {
  die(e.message)
}
if (!args.listen && args.dial.length === 0) die('need --listen and/or --dial')
const statusMode = args.status ?? 'raw'
if (!['raw', 'reply', 'none', 'strict'].includes(statusMode)) die(`bad --status ${statusMode}`)
let dialTargets = []
try {
  dialTargets = args.dial.map(parseEnode)
} catch (e) {
  die(e.message)
}

const ETH_CAPS = { 'eth/66': ETH.eth66, 'eth/67': ETH.eth67, 'eth/68': ETH.eth68 }
const capNames = (args.caps ?? 'eth/68,eth/67').split(',').filter((s) => s !== '')
for (const c of capNames) if (ETH_CAPS[c] === undefined) die(`unsupported cap ${c} (supported: ${Object.keys(ETH_CAPS)})`)

// The deterministic dummy eth Status used in raw/reply mode:
// [version, networkId=1337, td=1, bestHash=0x11*32, genesis=0x11*32, forkId=[0xdeadbeef, 0]]
const DUMMY_HASH = new Uint8Array(32).fill(0x11)
function dummyStatus(version) {
  return [
    Uint8Array.from([version]),
    Uint8Array.from([0x05, 0x39]), // 1337
    Uint8Array.from([0x01]), // td = 1
    DUMMY_HASH,
    DUMMY_HASH,
    [Uint8Array.from([0xde, 0xad, 0xbe, 0xef]), new Uint8Array(0)],
  ]
}

// Mainnet common (default hardfork: prague). Required by ETH >= 64 (fork id) and used in strict mode.
const common = new Common({ chain: Mainnet })

const peerIdHex = (peer) => {
  const id = peer.getId()
  return id ? toHex(id) : null
}
const remoteSnappy = (peer) => peer._hello !== null && peer._hello.protocolVersion >= 5

/**
 * ETH subclass that taps every received message (raw, snappy-decompressed payload)
 * before the library handles it, and implements the status policy.
 */
class TapETH extends ETH {
  constructor(version, peer, send) {
    super(version, peer, send)
    this._tapStatusSent = false
    if (statusMode !== 'strict') {
      // The library disconnects with TIMEOUT (0x0b) if no Status exchange completes within 5 s.
      // Outside strict mode we disable that so that tests can take their time.
      clearTimeout(this._statusTimeoutId)
    }
  }

  _handleMessage(code, data) {
    emit({ event: 'message', proto: 'eth', code, payload: toHex(data), id: peerIdHex(this._peer) })
    if (statusMode === 'strict') {
      if (code === 0 && !this._tapStatusSent) sendOwnStatus(this._peer)
      return super._handleMessage(code, data)
    }
    if (code === 0) {
      // Bypass the library's Status validation entirely (never calls _handleStatus).
      if (statusMode === 'raw' || statusMode === 'reply') {
        if (!this._tapStatusSent) sendOwnStatus(this._peer)
      }
      return
    }
    // Non-status messages: let the library decode (RLP) them; invalid RLP => Disconnect(0x10).
    return super._handleMessage(code, data)
  }
}

function getEth(peer) {
  return peer.getProtocols().find((p) => p instanceof TapETH)
}

function sendOwnStatus(peer) {
  const eth = getEth(peer)
  if (!eth || eth._tapStatusSent) return
  eth._tapStatusSent = true
  let payload
  if (statusMode === 'strict') {
    eth.sendStatus({
      td: Uint8Array.from([0x01]),
      bestHash: hexToBytesStrict(common.genesis().hash ?? MAINNET_GENESIS, 'genesis', 32),
      genesisHash: hexToBytesStrict(common.genesis().hash ?? MAINNET_GENESIS, 'genesis', 32),
    })
    payload = RLP.encode(eth._status)
  } else {
    payload = RLP.encode(dummyStatus(eth.getVersion()))
    eth._send(0, remoteSnappy(peer) ? snappy.compress(payload) : payload)
  }
  emit({ event: 'status-sent', proto: 'eth', code: 0, payload: toHex(payload), id: peerIdHex(peer) })
}
const MAINNET_GENESIS = 'd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3'

// --- Tap the base protocol (Hello / Disconnect / Ping / Pong) and socket close ---
const PREFIX = { HELLO: 0, DISCONNECT: 1, PING: 2, PONG: 3 }
let everConnected = false
const origPeerHandle = Peer.prototype._handleMessage
Peer.prototype._handleMessage = function (code, msg) {
  try {
    if (code === PREFIX.PING) emit({ event: 'ping', id: peerIdHex(this) })
    else if (code === PREFIX.PONG) emit({ event: 'pong', id: peerIdHex(this) })
    else if (code === PREFIX.HELLO) {
      const caps = Array.isArray(msg[2]) ? msg[2].map((c) => `${Buffer.from(c[0]).toString()}/${bytesInt(c[1])}`) : []
      emit({
        event: 'hello',
        id: msg[4] instanceof Uint8Array ? toHex(msg[4]) : null,
        clientId: msg[1] instanceof Uint8Array ? Buffer.from(msg[1]).toString() : null,
        caps,
        protocolVersion: bytesInt(msg[0]),
        listenPort: msg[3] instanceof Uint8Array ? bytesInt(msg[3]) : null,
      })
    } else if (code === PREFIX.DISCONNECT) {
      const r = msg instanceof Uint8Array ? bytesInt(msg) : Array.isArray(msg) && msg[0] instanceof Uint8Array ? bytesInt(msg[0]) : 0
      emit({ event: 'disconnect-received', reason: r, id: peerIdHex(this) })
    }
  } catch (e) {
    log(`tap error: ${e}`)
  }
  return origPeerHandle.call(this, code, msg)
}
const origSocketClose = Peer.prototype._onSocketClose
Peer.prototype._onSocketClose = function (...a) {
  const wasConnected = this._connected
  const res = origSocketClose.apply(this, a)
  const by = this._disconnectWe === true ? 'local' : this._disconnectWe === false ? 'remote' : 'socket'
  emit({
    event: 'disconnect',
    reason: this._disconnectReason ?? null,
    by,
    id: peerIdHex(this),
    connected: wasConnected,
  })
  if (args['exit-on-disconnect']) exit(everConnected ? 0 : 1)
  return res
}
function bytesInt(b) {
  if (!(b instanceof Uint8Array) || b.length === 0) return 0
  let n = 0
  for (const x of b) n = n * 256 + x
  return n
}

// --- RLPx ---
let rlpx
try {
rlpx = new RLPx(privateKey, {
  clientId: Buffer.from(args['client-id'] ?? 'ethereumjs-devp2p-interop/v10.0.0'),
  capabilities: capNames.map((c) => ({ ...ETH_CAPS[c], constructor: TapETH })),
  common,
  maxPeers: 25,
  listenPort: null,
  timeout: 10000,
})
} catch (e) {
  die(`cannot create RLPx (bad key?): ${e.message}`)
}
const ourId = toHex(rlpx.id)
log(`our id ${ourId}, caps ${capNames}, status mode ${statusMode}`)

rlpx.events.on('error', (err) => die(`rlpx error: ${err.message ?? err}`))
rlpx.events.on('peer:error', (peer, err) => {
  log(`peer error (${peerIdHex(peer)}): ${err?.stack ?? err}`)
  emit({ event: 'peer-error', id: peerIdHex(peer), message: String(err?.message ?? err) })
})
rlpx.events.on('peer:added', (peer) => {
  everConnected = true
  const hello = peer.getHelloMessage()
  emit({
    event: 'peer',
    id: peerIdHex(peer),
    clientId: hello.clientId,
    caps: hello.capabilities.map((c) => `${c.name}/${c.version}`),
    sharedCaps: peer.getProtocols().map((p) => `eth/${p.getVersion()}`),
    protocolVersion: hello.protocolVersion,
    localProtocolVersion: 5,
    snappy: hello.protocolVersion >= 5,
    listenPort: hello.port,
    remoteAddress: peer._socket.remoteAddress,
    remotePort: peer._socket.remotePort,
  })
  if (statusMode === 'raw' || statusMode === 'strict') sendOwnStatus(peer)
  if (!args['no-ping']) {
    peer._sendPing()
    emit({ event: 'ping-sent', id: peerIdHex(peer) })
  }
})

function targetPeers(cmd) {
  let peers = rlpx.getPeers()
  if (cmd.id !== undefined) peers = peers.filter((p) => peerIdHex(p) === String(cmd.id).toLowerCase())
  if (peers.length === 0) throw new Error('no connected peer')
  return peers
}

readCommands(
  (cmd) => {
    switch (cmd.cmd) {
      case 'send': {
        const code = Number(cmd.code)
        const payload = hexToBytesStrict(String(cmd.payload ?? ''), 'payload')
        for (const peer of targetPeers(cmd)) {
          const eth = getEth(peer)
          if (!eth) throw new Error('no eth protocol on peer')
          const wire = cmd.compress === false || !remoteSnappy(peer) ? payload : snappy.compress(payload)
          eth._send(code, wire)
          if (code === 0) eth._tapStatusSent = true
          emit({ event: 'sent', proto: 'eth', code, len: payload.length, id: peerIdHex(peer) })
        }
        break
      }
      case 'status':
        for (const peer of targetPeers(cmd)) sendOwnStatus(peer)
        break
      case 'ping':
        for (const peer of targetPeers(cmd)) {
          peer._sendPing()
          emit({ event: 'ping-sent', id: peerIdHex(peer) })
        }
        break
      case 'disconnect': {
        const reason = cmd.reason === undefined ? DISCONNECT_REASON.DISCONNECT_REQUESTED : Number(cmd.reason)
        for (const peer of targetPeers(cmd)) {
          peer.disconnect(reason)
          emit({ event: 'disconnect-sent', reason, id: peerIdHex(peer) })
        }
        break
      }
      case 'peers':
        emit({ event: 'peers', peers: rlpx.getPeers().map(peerIdHex) })
        break
      case 'exit':
        exit(0)
        break
      default:
        throw new Error(`unknown cmd ${cmd.cmd}`)
    }
  },
  { exitOnEof: args['exit-on-stdin-eof'] === true },
)

function startDials() {
  for (const t of dialTargets) {
    log(`dialing ${t.address}:${t.tcpPort} (${t.idHex.slice(0, 16)}...)`)
    rlpx.connect({ id: t.id, address: t.address, tcpPort: t.tcpPort }).catch((err) => {
      die(`dial ${t.address}:${t.tcpPort} failed: ${err?.message ?? err}`)
    })
  }
}

if (args.listen) {
  rlpx.events.once('listening', () => {
    const port = rlpx._server.address().port
    rlpx._listenPort = port // advertised in our Hello
    emit({ event: 'listening', port, id: ourId })
    startDials()
  })
  rlpx.listen(args.port ?? 0, '127.0.0.1')
} else {
  emit({ event: 'started', id: ourId })
  startDials()
}
