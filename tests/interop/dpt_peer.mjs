#!/usr/bin/env node
// Discovery v4 node built on @ethereumjs/devp2p's DPT, for interop tests. See README.md.
// stdout: newline-delimited JSON events. stderr: diagnostics.
import { DPT } from '@ethereumjs/devp2p'

import {
  emit,
  exit,
  hexToBytesStrict,
  log,
  parseArgsOrDie,
  parseEnode,
  readCommands,
  requireLoopback,
  startHardTimeout,
  toHex,
} from './lib.mjs'

const USAGE = `usage: node dpt_peer.mjs --key <64 hex> [--udp-port 0] [--tcp-port N]
  [--bootnode enode://<id>@127.0.0.1:<tcp>?discport=<udp>]... [--add enode://...]...
  [--no-find-neighbours] [--refresh-ms 60000] [--exit-on-stdin-eof] [--timeout-ms 20000]`

const args = parseArgsOrDie(
  {
    key: 'string',
    'udp-port': 'int',
    'tcp-port': 'int',
    bootnode: 'list',
    add: 'list',
    'no-find-neighbours': 'bool',
    'refresh-ms': 'int',
    'exit-on-stdin-eof': 'bool',
    'timeout-ms': 'int',
  },
  USAGE,
)

function die(msg) {
  log(`error: ${msg}`)
  emit({ event: 'error', message: msg })
  process.exit(1)
}

startHardTimeout(args['timeout-ms'] ?? 20000)

if (args.key === undefined) die('--key is required')
let privateKey, bootnodes, adds
try {
  privateKey = hexToBytesStrict(args.key, '--key', 32)
  bootnodes = args.bootnode.map(parseEnode)
  adds = args.add.map(parseEnode)
} catch (e) {
  die(e.message)
}

const peerJson = (p) => ({
  id: p.id ? toHex(p.id) : null,
  address: p.address,
  udpPort: p.udpPort ?? null,
  tcpPort: p.tcpPort ?? null,
})

let dpt
try {
  dpt = new DPT(privateKey, {
    // Endpoint advertised in our Ping `from`; udpPort is filled in after bind.
    endpoint: { address: '127.0.0.1', udpPort: null, tcpPort: args['tcp-port'] ?? null },
    // Never contact public infrastructure: no DNS discovery (ENR trees / 8.8.8.8).
    shouldGetDnsPeers: false,
    dnsNetworks: [],
    dnsAddr: '127.0.0.1',
    // Neighbour lookups only ever go to peers already in our table (all loopback here).
    shouldFindNeighbours: !args['no-find-neighbours'],
    refreshInterval: args['refresh-ms'] ?? 60000,
    timeout: 4000,
  })
} catch (e) {
  die(`cannot create DPT (bad key?): ${e.message}`)
}
const ourId = toHex(dpt.id)

// Safety net: refuse to send any UDP packet to a non-loopback address (e.g. an address
// learned from a Neighbours packet).
const server = dpt._server
const origSend = server._send.bind(server)
server._send = (peer, typename, data) => {
  if (peer.address !== '127.0.0.1' && peer.address !== 'localhost') {
    log(`refusing to send ${typename} to non-loopback ${peer.address}:${peer.udpPort}`)
    emit({ event: 'refused', typename, address: peer.address, udpPort: peer.udpPort ?? null })
    return new Uint8Array(32)
  }
  return origSend(peer, typename, data)
}
// Tap received packets (type names) for observability.
const origHandler = server._handler.bind(server)
server._handler = (msg, rinfo) => {
  let typename = null
  const t = msg[97]
  typename = { 1: 'ping', 2: 'pong', 3: 'findneighbours', 4: 'neighbours' }[t] ?? `type${t}`
  emit({ event: 'packet', typename, address: rinfo.address, udpPort: rinfo.port })
  inNeighbours = typename === 'neighbours'
  try {
    return origHandler(msg, rinfo)
  } finally {
    inNeighbours = false
  }
}
let inNeighbours = false
// The server emits 'peers' synchronously while handling a Neighbours packet (and, delayed,
// for the `from` endpoint of a Ping from an unknown node); report only the former.
server.events.on('peers', (peers) => {
  if (!inNeighbours) return
  emit({ event: 'neighbours', peers: peers.map((p) => ({ address: p.address, udpPort: p.udpPort ?? null, tcpPort: p.tcpPort ?? null })) })
})

dpt.events.on('peer:added', (p) => emit({ event: 'peer:added', ...peerJson(p) }))
dpt.events.on('peer:removed', (p) => emit({ event: 'peer:removed', ...peerJson(p) }))
dpt.events.on('peer:new', (p) => emit({ event: 'peer:new', ...peerJson(p) }))
dpt.events.on('error', (err) => {
  log(`dpt error: ${err?.stack ?? err}`)
  emit({ event: 'dpt-error', message: String(err?.message ?? err) })
})

readCommands(
  (cmd) => {
    switch (cmd.cmd) {
      case 'findneighbours': {
        const address = requireLoopback(String(cmd.address ?? '127.0.0.1'), 'address')
        const target = cmd.target !== undefined ? hexToBytesStrict(String(cmd.target), 'target', 64) : dpt.id
        const peer = {
          id: cmd.id !== undefined ? hexToBytesStrict(String(cmd.id), 'id', 64) : undefined,
          address,
          udpPort: Number(cmd.udpPort),
        }
        server.findneighbours(peer, target)
        emit({ event: 'findneighbours-sent', address, udpPort: peer.udpPort, target: toHex(target) })
        break
      }
      case 'add': {
        const t = parseEnode(String(cmd.enode))
        dpt
          .addPeer({ id: t.id, address: t.address, udpPort: t.udpPort, tcpPort: t.tcpPort })
          .then((p) => emit({ event: 'add-ok', ...peerJson(p) }))
          .catch((e) => emit({ event: 'add-failed', message: String(e?.message ?? e) }))
        break
      }
      case 'ping': {
        const address = requireLoopback(String(cmd.address ?? '127.0.0.1'), 'address')
        server
          .ping({ address, udpPort: Number(cmd.udpPort) })
          .then((p) => emit({ event: 'pong', ...peerJson(p) }))
          .catch((e) => emit({ event: 'ping-failed', message: String(e?.message ?? e) }))
        break
      }
      case 'peers':
        emit({ event: 'peers', peers: dpt.getPeers().map(peerJson) })
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

dpt.events.once('listening', () => {
  const port = server._socket.address().port
  server._endpoint.udpPort = port
  emit({ event: 'listening', port, id: ourId })
  for (const b of bootnodes) {
    dpt.bootstrap({ id: b.id, address: b.address, udpPort: b.udpPort, tcpPort: b.tcpPort })
  }
  for (const a of adds) {
    dpt
      .addPeer({ id: a.id, address: a.address, udpPort: a.udpPort, tcpPort: a.tcpPort })
      .then((p) => emit({ event: 'add-ok', ...peerJson(p) }))
      .catch((e) => emit({ event: 'add-failed', message: String(e?.message ?? e) }))
  }
})
dpt.bind(args['udp-port'] ?? 0, '127.0.0.1')
