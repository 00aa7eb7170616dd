#!/usr/bin/env node
// Discovery v5 node built on @chainsafe/discv5 (Lodestar's), for interop tests. See README.md.
// stdout: newline-delimited JSON events. stderr: diagnostics.
//
// Events: {"event":"ready","enr","nodeId","port"} once bound; {"event":"talkreq",...} per
// TALKREQ received; answers to commands:
//   {"cmd":"ping","enr"}                 -> {"event":"pong","enrSeq"} | {"event":"ping-failed"}
//   {"cmd":"findnode","enr","distances"} -> {"event":"nodes","enrs":[...]} | {"event":"findnode-failed"}
//   {"cmd":"lookup","target"}            -> {"event":"lookup","enrs":[...]} (target: node id hex)
//   {"cmd":"talkreq","enr","protocol","payload"} -> {"event":"talkresp","payload"} | {"event":"talkreq-failed"}
//   {"cmd":"add","enr"}                  -> {"event":"added","nodeId"}
//   {"cmd":"table"}                      -> {"event":"table","enrs":[...]}
//   {"cmd":"exit"}
import { Discv5 } from '@chainsafe/discv5'
import { ENR, SignableENR } from '@chainsafe/enr'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'

import {
  emit,
  exit,
  hexToBytesStrict,
  log,
  parseArgsOrDie,
  readCommands,
  startHardTimeout,
  toHex,
} from './lib.mjs'

const USAGE = `usage: node discv5_peer.mjs [--key <64 hex>] [--add enr:...]... [--bootnode enr:...]...
  [--eth <hex of the eth entry's RLP>] [--exit-on-stdin-eof] [--timeout-ms 30000]`

const args = parseArgsOrDie(
  {
    key: 'string',
    add: 'list',
    bootnode: 'list',
    eth: 'string',
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

startHardTimeout(args['timeout-ms'] ?? 30000)

/** Only loopback records are ever contacted (tests run on 127.0.0.1). */
function loopbackEnr(text) {
  const enr = ENR.decodeTxt(String(text))
  const ip = enr.ip
  if (ip !== undefined && ip !== '127.0.0.1') throw new Error(`only 127.0.0.1 records, got ${ip}`)
  return enr
}

let privateKey
try {
  privateKey =
    args.key !== undefined
      ? privateKeyFromRaw(hexToBytesStrict(args.key, '--key', 32))
      : await generateKeyPair('secp256k1')
} catch (e) {
  die(`bad key: ${e.message}`)
}

const enr = SignableENR.createFromPrivateKey(privateKey)
if (args.eth !== undefined) enr.set('eth', hexToBytesStrict(args.eth, '--eth'))
let discv5
try {
  discv5 = Discv5.create({
    enr,
    privateKey,
    bindAddrs: { ip4: multiaddr('/ip4/127.0.0.1/udp/0') },
    // Keep our record's address as we set it (no votes), and stay quiet.
    config: { enrUpdate: false, requestTimeout: 2000, lookupTimeout: 5000 },
  })
  await discv5.start()
} catch (e) {
  die(`cannot start discv5: ${e.stack ?? e}`)
}
const port = discv5.sessionService.transport.ip4.socket.address().port
discv5.enr.ip = '127.0.0.1'
discv5.enr.udp = port

const enrsText = (list) => list.map((e) => e.encodeTxt())

discv5.on('talkReqReceived', (nodeAddr, _enr, message) => {
  emit({
    event: 'talkreq',
    from: toHex(hexToBytesStrict(nodeAddr.nodeId, 'node id')),
    protocol: toHex(message.protocol),
    bytes: message.request.length,
  })
})

for (const text of [...args.bootnode, ...args.add]) {
  try {
    discv5.addEnr(loopbackEnr(text))
  } catch (e) {
    die(`bad ENR ${String(text).slice(0, 40)}: ${e.message}`)
  }
}

readCommands(
  (cmd) => {
    switch (cmd.cmd) {
      case 'ping':
        discv5
          .sendPing(loopbackEnr(cmd.enr))
          .then((p) => emit({ event: 'pong', enrSeq: p.enrSeq }))
          .catch((e) => emit({ event: 'ping-failed', message: String(e?.message ?? e) }))
        break
      case 'findnode':
        discv5
          .sendFindNode(loopbackEnr(cmd.enr), (cmd.distances ?? [256]).map(Number))
          .then((enrs) => emit({ event: 'nodes', enrs: enrsText(enrs) }))
          .catch((e) => emit({ event: 'findnode-failed', message: String(e?.message ?? e) }))
        break
      case 'lookup':
        discv5
          .findNode(String(cmd.target))
          .then((enrs) => emit({ event: 'lookup', enrs: enrsText(enrs) }))
          .catch((e) => emit({ event: 'lookup-failed', message: String(e?.message ?? e) }))
        break
      case 'talkreq':
        discv5
          .sendTalkReq(
            loopbackEnr(cmd.enr),
            Buffer.from(String(cmd.payload ?? ''), 'utf8'),
            String(cmd.protocol ?? 'x'),
          )
          .then((r) => emit({ event: 'talkresp', payload: toHex(r) }))
          .catch((e) => emit({ event: 'talkreq-failed', message: String(e?.message ?? e) }))
        break
      case 'add': {
        const e = loopbackEnr(cmd.enr)
        discv5.addEnr(e)
        emit({ event: 'added', nodeId: e.nodeId })
        break
      }
      case 'table':
        emit({ event: 'table', enrs: enrsText(discv5.kadValues()) })
        break
      case 'exit':
        discv5.stop().finally(() => exit(0))
        break
      default:
        throw new Error(`unknown cmd ${cmd.cmd}`)
    }
  },
  { exitOnEof: args['exit-on-stdin-eof'] === true },
)

emit({ event: 'ready', enr: discv5.enr.encodeTxt(), nodeId: discv5.enr.nodeId, port })
