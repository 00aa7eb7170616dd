#!/usr/bin/env node
// eth protocol peer over the ethtest chain, built on @ethereumjs/devp2p 10.0.0 (RLPx, Hello,
// snappy) with our own eth message handling (Status, GetBlockHeaders, GetBlockBodies, GetReceipts).
// See README.md for the CLI contract. stdout: newline-delimited JSON events. stderr: diagnostics.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Common, Mainnet } from '@ethereumjs/common'
import { ETH, Peer, RLPx } from '@ethereumjs/devp2p'
import { RLP } from '@ethereumjs/rlp'
import * as snappy from 'snappyjs'

import { H, checkBody, fromBig, headerHash, hex, loadChain, toBig } from './ethchain.mjs'
import { emit, exit, hexToBytesStrict, log, parseArgsOrDie, parseEnode, readCommands, startHardTimeout, toHex } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const USAGE = `usage: node eth_peer.mjs --key <64 hex> (--listen [--port N] | --dial enode://<id>@127.0.0.1:<port>)
  --mode fetch|serve [--chain-dir DIR] [--eth 68|69|69,68] [--serve-upto N] [--batch 128]
  [--exit-on-done] [--exit-on-disconnect] [--exit-on-stdin-eof] [--timeout-ms 20000]`

const args = parseArgsOrDie(
  {
    key: 'string',
    listen: 'bool',
    port: 'int',
    dial: 'list',
    mode: 'string',
    'chain-dir': 'string',
    eth: 'string',
    'serve-upto': 'int',
    batch: 'int',
    'request-timeout-ms': 'int',
    'client-id': 'string',
    'exit-on-done': 'bool',
    'exit-on-disconnect': 'bool',
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
let privateKey
try {
  privateKey = hexToBytesStrict(args.key, '--key', 32)
} catch (e) {
  die(e.message)
}
if (!args.listen && args.dial.length === 0) die('need --listen or --dial')
const mode = args.mode ?? 'fetch'
if (!['fetch', 'serve'].includes(mode)) die(`bad --mode ${mode} (fetch|serve)`)
let dialTargets = []
try {
  dialTargets = args.dial.map(parseEnode)
} catch (e) {
  die(e.message)
}
const versions = (args.eth ?? '68').split(',').filter((s) => s !== '').map(Number)
if (versions.length === 0 || versions.some((v) => v !== 68 && v !== 69)) die(`bad --eth ${args.eth} (68, 69 or 69,68)`)
const BATCH = args.batch ?? 128
if (BATCH < 1 || BATCH > 1024) die('--batch must be 1..1024')
const REQ_TIMEOUT = args['request-timeout-ms'] ?? 10000

// ---------------------------------------------------------------- chain
// Serve mode loads the whole file but serves and advertises only blocks 0..HEAD; HEAD starts at
// --serve-upto and moves up with the `announce` command. Fetch mode: HEAD = 0 (genesis).
let chain
try {
  chain = loadChain(args['chain-dir'] ?? join(here, '../../testdata/ethtest'), mode === 'serve' ? Infinity : 0)
} catch (e) {
  die(`cannot load chain: ${e.message}`)
}
if (mode === 'serve' && args['serve-upto'] !== undefined && (args['serve-upto'] < 0 || args['serve-upto'] > chain.head))
  die(`--serve-upto ${args['serve-upto']} but chain.rlp only has blocks up to ${chain.head}`)
if (!chain.genesisComputed) log('warning: computed genesis header hash != parentHash of block 1; genesis header will not be served')
let HEAD = mode === 'serve' ? (args['serve-upto'] ?? chain.head) : 0
const forkIdAt = (n) => chain.forkId.forHead(n, chain.timeOf(n))
/** Block number of a hash we serve (0..HEAD), else undefined. */
const servedNumber = (hash) => {
  const n = chain.byHash.get(hash)
  return n !== undefined && n <= HEAD ? n : undefined
}
{
  const f = forkIdAt(HEAD)
  log(
    `chain: network ${chain.networkId}, genesis ${chain.hashes[0]}, head ${HEAD} ${chain.hashes[HEAD]}, td ${chain.tds[HEAD]}, ` +
      `forkid [${f.hash.toString(16)}, ${f.next}], blocks in file ${chain.head}`,
  )
}

// eth message codes (relative to the eth offset)
const C = {
  STATUS: 0x00, NEW_BLOCK_HASHES: 0x01, TXS: 0x02, GET_HEADERS: 0x03, HEADERS: 0x04, GET_BODIES: 0x05, BODIES: 0x06,
  NEW_BLOCK: 0x07, NEW_POOLED_HASHES: 0x08, GET_POOLED: 0x09, POOLED: 0x0a, GET_RECEIPTS: 0x0f, RECEIPTS: 0x10,
  BLOCK_RANGE_UPDATE: 0x11,
}
const MAX_HEADERS = 1024
const MAX_BODIES = 1024
const SOFT_RESPONSE_LIMIT = 2 * 1024 * 1024 // like geth: stop adding bodies once the reply exceeds 2 MiB

function ourStatus(version) {
  const ourForkId = forkIdAt(HEAD)
  const forkId = [fromBig(ourForkId.hash), fromBig(ourForkId.next)]
  if (version >= 69)
    return [fromBig(version), fromBig(chain.networkId), chain.genesisHash, forkId, fromBig(0), fromBig(HEAD), hexToBytesStrict(chain.hashes[HEAD], 'head')]
  return [fromBig(version), fromBig(chain.networkId), fromBig(chain.tds[HEAD]), hexToBytesStrict(chain.hashes[HEAD], 'head'), chain.genesisHash, forkId]
}

const peerIdHex = (peer) => {
  const id = peer.getId()
  return id ? toHex(id) : null
}
const remoteSnappy = (peer) => peer._hello !== null && peer._hello.protocolVersion >= 5

/** Our eth protocol: everything after Hello is handled here, never by the library's ETH code. */
class EthPeer extends ETH {
  constructor(version, peer, send) {
    super(version, peer, send)
    clearTimeout(this._statusTimeoutId) // library's 5 s Status timer: we do our own
    this.statusSent = false
    this.remoteStatus = null
    this.ready = false
    this.nextReqId = 1n
    this.pending = new Map() // reqid (string) -> { code, resolve, reject, timer }
    this.served = { headers: 0, bodies: 0, receipts: 0, requests: 0 }
  }
  get id() {
    return peerIdHex(this._peer)
  }
  send(code, payloadList) {
    const enc = RLP.encode(payloadList)
    this._send(code, remoteSnappy(this._peer) ? snappy.compress(enc) : enc)
    return enc.length
  }
  sendStatus() {
    if (this.statusSent) return
    this.statusSent = true
    const st = ourStatus(this._version)
    this.send(C.STATUS, st)
    emit({ event: 'status-sent', version: this._version, payload: hex(RLP.encode(st)), id: this.id })
  }
  fail(what, reason, extra = {}) {
    emit({ event: what, ...extra, id: this.id })
    this._peer.disconnect(reason)
    emit({ event: 'disconnect-sent', reason, id: this.id })
    if (args['exit-on-done'] && mode === 'fetch') setTimeout(() => exit(1), 200)
  }
  _handleMessage(code, data) {
    let msg
    try {
      msg = RLP.decode(data)
    } catch (e) {
      return this.fail('protocol-error', 0x10, { message: `bad RLP in eth code ${code}: ${e.message}` })
    }
    if (code === C.STATUS) return this.onStatus(msg)
    if (!this.ready) return this.fail('protocol-error', 0x10, { message: `eth code ${code} before Status exchange` })
    try {
      switch (code) {
        case C.GET_HEADERS:
          return this.onGetHeaders(msg)
        case C.GET_BODIES:
          return this.onGetBodies(msg)
        case C.GET_RECEIPTS:
          return this.onGetReceipts(msg)
        case C.GET_POOLED:
          this.send(C.POOLED, [msg[0], []])
          emit({ event: 'served', what: 'pooled-transactions', reqId: toBig(msg[0]).toString(), count: 0, id: this.id })
          return
        case C.HEADERS:
        case C.BODIES:
        case C.RECEIPTS:
        case C.POOLED:
          return this.onResponse(code, msg)
        case C.NEW_BLOCK_HASHES:
          if (this._version >= 69) break // not an eth/69 message: reported as eth-message below
          return this.onNewBlockHashes(msg)
        case C.NEW_BLOCK:
          if (this._version >= 69) break
          return this.onNewBlock(msg)
        case C.BLOCK_RANGE_UPDATE:
          emit({ event: 'block-range-update', earliest: toBig(msg[0]).toString(), latest: toBig(msg[1]).toString(), latestHash: hex(msg[2]), id: this.id })
          return
      }
      emit({ event: 'eth-message', code, len: data.length, id: this.id })
    } catch (e) {
      log(`handling eth code ${code}: ${e.stack ?? e}`)
      this.fail('protocol-error', 0x10, { message: `malformed eth code ${code}: ${e.message}` })
    }
  }

  onStatus(st) {
    if (this.remoteStatus !== null) return this.fail('status-mismatch', 0x10, { message: 'second Status' })
    this.remoteStatus = st
    const v = this._version
    let info
    try {
      if (!Array.isArray(st)) throw new Error('Status is not a list')
      const n = Number(toBig(st[0]))
      if (v >= 69) {
        if (st.length < 7) throw new Error(`eth/69 Status has ${st.length} elements, want 7`)
        info = { version: n, networkId: toBig(st[1]), genesis: st[2], forkId: st[3], earliest: toBig(st[4]), latest: toBig(st[5]), head: st[6] }
      } else {
        if (st.length < 6) throw new Error(`eth/${v} Status has ${st.length} elements, want 6`)
        info = { version: n, networkId: toBig(st[1]), td: toBig(st[2]), head: st[3], genesis: st[4], forkId: st[5] }
      }
      if (!Array.isArray(info.forkId) || info.forkId.length !== 2) throw new Error('fork id is not [hash, next]')
      if (info.forkId[0].length !== 4) throw new Error('fork hash is not 4 bytes')
      if (info.head.length !== 32 || info.genesis.length !== 32) throw new Error('hash is not 32 bytes')
    } catch (e) {
      return this.fail('status-mismatch', 0x10, { message: `malformed Status: ${e.message}` })
    }
    const remoteFork = { hash: Number(toBig(info.forkId[0])), next: toBig(info.forkId[1]) }
    const ourForkId = forkIdAt(HEAD)
    const fc = chain.forkId.validate(remoteFork, HEAD, chain.timeOf(HEAD))
    const ev = {
      event: 'status',
      version: info.version,
      networkId: info.networkId.toString(),
      genesis: hex(info.genesis),
      head: hex(info.head),
      forkId: [remoteFork.hash.toString(16).padStart(8, '0'), remoteFork.next.toString()],
      ...(info.td !== undefined ? { td: info.td.toString() } : { earliest: info.earliest.toString(), latest: info.latest.toString() }),
      ourForkId: [ourForkId.hash.toString(16).padStart(8, '0'), ourForkId.next.toString()],
      forkIdCheck: fc.rule,
      id: this.id,
    }
    emit(ev)
    const problems = []
    if (info.version !== v) problems.push(`version ${info.version} != negotiated ${v}`)
    if (info.networkId !== chain.networkId) problems.push(`network id ${info.networkId} != ${chain.networkId}`)
    if (hex(info.genesis) !== chain.hashes[0]) problems.push(`genesis ${hex(info.genesis)} != ${chain.hashes[0]}`)
    if (!fc.ok) problems.push(`fork id rejected (${fc.rule})`)
    if (info.earliest !== undefined && info.earliest > info.latest) problems.push('earliest > latest')
    if (problems.length > 0) return this.fail('status-mismatch', 0x10, { message: problems.join('; ') })
    this.remoteHead = { hash: hex(info.head), number: info.latest } // number only on eth/69
    this.sendStatus() // in case the remote spoke first
    this.ready = true
    if (mode === 'fetch') fetchChain(this).catch((e) => log(`fetch crashed: ${e.stack ?? e}`))
  }

  // ------------------------------------------------ block announcements
  onNewBlockHashes(msg) {
    if (!Array.isArray(msg) || msg.some((e) => !Array.isArray(e) || e.length < 2 || !(e[0] instanceof Uint8Array) || e[0].length !== 32))
      throw new Error('NewBlockHashes is not [[hash, number], ...]')
    const hashes = msg.map(([h, n]) => ({ hash: hex(h), number: Number(toBig(n)) }))
    emit({ event: 'new-block-hashes', hashes, id: this.id })
  }
  onNewBlock(msg) {
    if (!Array.isArray(msg) || msg.length < 2 || !Array.isArray(msg[0]) || msg[0].length < 3 || !Array.isArray(msg[0][0]))
      throw new Error('NewBlock is not [[header, txs, ommers, ...], td]')
    const [block, td] = msg
    const header = block[0]
    const hash = hex(headerHash(header))
    const bodyError = checkBody(header, block.slice(1))
    emit({
      event: 'new-block', number: Number(toBig(header[H.number])), hash, td: toBig(td).toString(),
      txs: Array.isArray(block[1]) ? block[1].length : null, inChainFile: chain.byHash.get(hash) !== undefined,
      bodyError, id: this.id,
    })
  }

  // ------------------------------------------------ serving
  onGetHeaders(msg) {
    const [reqId, q] = msg
    const [origin, amountB, skipB, reverseB] = q
    const amount = toBig(amountB)
    const skip = toBig(skipB)
    const reverse = toBig(reverseB) !== 0n
    let start
    if (origin.length === 32) start = servedNumber(hex(origin))
    else start = toBig(origin) <= BigInt(HEAD) ? Number(toBig(origin)) : undefined
    const out = []
    if (start !== undefined && chain.headers[start] !== null) {
      let n = BigInt(start)
      const max = amount < BigInt(MAX_HEADERS) ? Number(amount) : MAX_HEADERS
      while (out.length < max && n >= 0n && n <= BigInt(HEAD) && chain.headers[Number(n)] !== null) {
        out.push(chain.headers[Number(n)])
        n = reverse ? n - skip - 1n : n + skip + 1n
      }
    }
    const bytes = this.send(C.HEADERS, [reqId, out])
    this.served.headers += out.length
    this.served.requests++
    emit({
      event: 'served', what: 'headers', reqId: toBig(reqId).toString(),
      origin: origin.length === 32 ? hex(origin) : toBig(origin).toString(), amount: amount.toString(),
      skip: skip.toString(), reverse, count: out.length, bytes, id: this.id,
    })
  }
  onGetBodies(msg) {
    const [reqId, hashes] = msg
    const out = []
    let size = 0
    for (const h of hashes) {
      if (out.length >= MAX_BODIES || size >= SOFT_RESPONSE_LIMIT) break
      const n = servedNumber(hex(h))
      if (n === undefined) continue // unknown hashes are skipped, like geth
      const enc = RLP.encode(chain.bodies[n])
      size += enc.length
      out.push(chain.bodies[n])
    }
    const bytes = this.send(C.BODIES, [reqId, out])
    this.served.bodies += out.length
    this.served.requests++
    emit({ event: 'served', what: 'bodies', reqId: toBig(reqId).toString(), requested: hashes.length, count: out.length, bytes, id: this.id })
  }
  onGetReceipts(msg) {
    const [reqId, hashes] = msg
    // We execute nothing, so we hold receipts only of blocks without transactions (empty
    // lists); the answer stops at the first block whose receipts we lack (with
    // transactions, or unknown), as the spec asks of a node missing receipts.
    const out = []
    for (const h of hashes) {
      const n = servedNumber(hex(h))
      if (n === undefined || out.length >= MAX_BODIES || chain.bodies[n][0].length > 0) break
      out.push([])
    }
    this.send(C.RECEIPTS, [reqId, out])
    this.served.receipts += out.length
    this.served.requests++
    emit({ event: 'served', what: 'receipts', reqId: toBig(reqId).toString(), requested: hashes.length, count: out.length, id: this.id })
  }

  // ------------------------------------------------ requesting
  request(code, respCode, body) {
    const reqId = this.nextReqId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId.toString())
        reject(new Error(`no reply to request ${reqId} (code ${code}) within ${REQ_TIMEOUT} ms`))
      }, REQ_TIMEOUT)
      this.pending.set(reqId.toString(), { respCode, resolve, reject, timer })
      this.send(code, [fromBig(reqId), body])
    })
  }
  onResponse(code, msg) {
    if (!Array.isArray(msg) || msg.length !== 2 || !Array.isArray(msg[1])) throw new Error('response is not [reqid, [...]]')
    const key = toBig(msg[0]).toString()
    const p = this.pending.get(key)
    if (p === undefined || p.respCode !== code) {
      emit({ event: 'unsolicited', code, reqId: key, id: this.id })
      return
    }
    this.pending.delete(key)
    clearTimeout(p.timer)
    p.resolve(msg[1])
  }
  abortAll(why) {
    for (const [k, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(new Error(why))
      this.pending.delete(k)
    }
  }
}

// ---------------------------------------------------------------- fetch mode
/** --exit-on-done: send Disconnect (0x08 client quitting on success, 0x10 on fetch-error), exit shortly after. */
function finish(eth, reason, code) {
  try {
    eth._peer.disconnect(reason)
    emit({ event: 'disconnect-sent', reason, id: eth.id })
  } catch (e) {
    log(`disconnect failed: ${e}`)
  }
  setTimeout(() => exit(code), 200)
}
async function fetchChain(eth) {
  const t0 = Date.now()
  const fetched = [{ hash: chain.hashes[0], header: chain.headers[0] }]
  const fetchErr = (message, extra = {}) => {
    emit({ event: 'fetch-error', message, ...extra, id: eth.id })
    if (args['exit-on-done']) finish(eth, 0x10, 1)
  }
  try {
    // 1. headers by number, ascending, in batches, until an empty reply or the remote head
    let reachedHead = false
    while (!reachedHead) {
      const from = fetched.length
      const hs = await eth.request(C.GET_HEADERS, C.HEADERS, [fromBig(from), fromBig(BATCH), fromBig(0), fromBig(0)])
      if (hs.length === 0) break
      if (hs.length > BATCH) return fetchErr(`asked for ${BATCH} headers from ${from}, got ${hs.length}`)
      for (const h of hs) {
        const n = fetched.length
        if (!Array.isArray(h) || h.length < 15) return fetchErr(`header ${n} is not a header list`, { number: n })
        if (toBig(h[H.number]) !== BigInt(n)) return fetchErr(`expected header ${n}, got number ${toBig(h[H.number])}`, { number: n })
        const parent = fetched[n - 1].hash
        if (hex(h[H.parentHash]) !== parent)
          return fetchErr(`header ${n}: parentHash ${hex(h[H.parentHash])} != keccak(header ${n - 1}) ${parent}`, { number: n })
        const hash = hex(headerHash(h))
        fetched.push({ hash, header: h })
        if (hash === eth.remoteHead.hash) {
          reachedHead = true
          break
        }
      }
      log(`headers: have ${fetched.length - 1}`)
    }
    const N = fetched.length - 1
    if (N === 0) return fetchErr('remote returned no headers from block 1')
    if (!reachedHead) log(`warning: header ${N} (${fetched[N].hash}) is not the remote Status head ${eth.remoteHead.hash}`)
    if (eth.remoteHead.number !== undefined && BigInt(N) !== eth.remoteHead.number)
      return fetchErr(`fetched ${N} headers but eth/69 Status said latest = ${eth.remoteHead.number}`)

    // 2. bodies by hash, in batches; partial replies are re-requested from the first missing one
    let txs = 0
    let next = 1
    while (next <= N) {
      const want = fetched.slice(next, Math.min(N, next + BATCH - 1) + 1)
      const bodies = await eth.request(C.GET_BODIES, C.BODIES, want.map((f) => hexToBytesStrict(f.hash, 'hash')))
      if (bodies.length === 0) return fetchErr(`empty BlockBodies reply for blocks ${next}..${next + want.length - 1}`, { number: next })
      if (bodies.length > want.length) return fetchErr(`asked for ${want.length} bodies, got ${bodies.length}`)
      for (let i = 0; i < bodies.length; i++) {
        const n = next + i
        const err = checkBody(fetched[n].header, bodies[i])
        if (err !== null) return fetchErr(`body ${n}: ${err}`, { number: n })
        txs += bodies[i][0].length
      }
      next += bodies.length
    }

    // 3. spot check: headers by hash with skip and reverse
    const origin = Math.min(N, 100)
    const amount = Math.min(5, Math.floor(origin / 3) + 1)
    const spot = await eth.request(C.GET_HEADERS, C.HEADERS, [hexToBytesStrict(fetched[origin].hash, 'hash'), fromBig(amount), fromBig(2), fromBig(1)])
    const wantNums = Array.from({ length: amount }, (_, i) => origin - 3 * i)
    const gotNums = spot.map((h) => Number(toBig(h[H.number])))
    if (spot.length !== amount || spot.some((h, i) => hex(headerHash(h)) !== fetched[wantNums[i]].hash))
      return fetchErr(`spot check by hash ${fetched[origin].hash} amount ${amount} skip 2 reverse: got blocks [${gotNums}], want [${wantNums}]`)
    // and a reverse by-number request crossing genesis (must stop at block 0 / 1)
    const spot2 = await eth.request(C.GET_HEADERS, C.HEADERS, [fromBig(3), fromBig(10), fromBig(0), fromBig(1)])
    const got2 = spot2.map((h) => Number(toBig(h[H.number])))
    if (got2.length !== 4 || got2.some((n, i) => n !== 3 - i) || spot2.some((h, i) => hex(headerHash(h)) !== fetched[3 - i].hash))
      return fetchErr(`spot check by number 3 amount 10 reverse: got blocks [${got2}], want [3,2,1,0] (incl. genesis) with matching hashes`)

    emit({ event: 'fetched', blocks: N, head: fetched[N].hash, txs, reachedStatusHead: reachedHead, ms: Date.now() - t0, id: eth.id })
    if (args['exit-on-done']) finish(eth, 0x08, 0)
  } catch (e) {
    fetchErr(e.message)
  }
}

// ---------------------------------------------------------------- RLPx plumbing
let everConnected = false
const origSocketClose = Peer.prototype._onSocketClose
Peer.prototype._onSocketClose = function (...a) {
  const wasConnected = this._connected
  const res = origSocketClose.apply(this, a)
  const by = this._disconnectWe === true ? 'local' : this._disconnectWe === false ? 'remote' : 'socket'
  const eth = this.getProtocols?.().find((p) => p instanceof EthPeer)
  if (eth) eth.abortAll('disconnected')
  emit({
    event: 'disconnect', reason: this._disconnectReason ?? null, by, id: peerIdHex(this), connected: wasConnected,
    ...(eth && mode === 'serve' ? { served: eth.served } : {}),
  })
  if (args['exit-on-disconnect']) exit(everConnected ? 0 : 1)
  return res
}

const caps = versions.map((v) => ({ name: 'eth', version: v, length: v >= 69 ? 18 : 17, constructor: EthPeer }))
let rlpx
try {
  rlpx = new RLPx(privateKey, {
    clientId: Buffer.from(args['client-id'] ?? 'ethereumjs-devp2p-interop-eth/v10.0.0'),
    capabilities: caps,
    common: new Common({ chain: Mainnet }), // only to satisfy the ETH base constructor; never used
    maxPeers: 25,
    listenPort: null,
    timeout: 10000,
  })
} catch (e) {
  die(`cannot create RLPx (bad key?): ${e.message}`)
}
const ourId = toHex(rlpx.id)
log(`our id ${ourId}, mode ${mode}, caps ${versions.map((v) => `eth/${v}`)}`)

rlpx.events.on('error', (err) => die(`rlpx error: ${err.message ?? err}`))
rlpx.events.on('peer:error', (peer, err) => {
  log(`peer error (${peerIdHex(peer)}): ${err?.stack ?? err}`)
  emit({ event: 'peer-error', id: peerIdHex(peer), message: String(err?.message ?? err) })
})
rlpx.events.on('peer:added', (peer) => {
  everConnected = true
  const hello = peer.getHelloMessage()
  const eth = peer.getProtocols().find((p) => p instanceof EthPeer)
  emit({
    event: 'peer', id: peerIdHex(peer), clientId: hello.clientId, caps: hello.capabilities.map((c) => `${c.name}/${c.version}`),
    sharedCaps: peer.getProtocols().map((p) => `eth/${p.getVersion()}`), protocolVersion: hello.protocolVersion,
    snappy: hello.protocolVersion >= 5, remoteAddress: peer._socket.remoteAddress, remotePort: peer._socket.remotePort,
  })
  if (eth) eth.sendStatus()
})

/**
 * `{"cmd":"announce","number":N,"full":true|false[,"id":..]}` (serve mode): serve and advertise
 * blocks up to N from now on (HEAD = max(HEAD, N); N must be in chain.rlp), then send block N to
 * every ready eth/68 peer: NewBlock [block, td] if full, else NewBlockHashes [[hash, N]]. eth/69
 * has neither message: its peers get BlockRangeUpdate [0, HEAD, hash(HEAD)] instead.
 */
function announce(cmd) {
  if (mode !== 'serve') throw new Error('announce needs --mode serve')
  const n = Number(cmd.number)
  if (!Number.isInteger(n) || n < 1 || n > chain.head) throw new Error(`announce: number must be 1..${chain.head}`)
  const full = cmd.full !== false
  const peers = cmd.id === undefined ? rlpx.getPeers() : targetPeers(cmd) // no peers is fine without an id
  const from = HEAD
  if (n > HEAD) HEAD = n
  const hash = chain.hashes[n]
  const sent = []
  const rangeUpdates = []
  for (const peer of peers) {
    const eth = peer.getProtocols().find((p) => p instanceof EthPeer)
    if (!eth || !eth.ready) continue
    if (eth._version >= 69) {
      eth.send(C.BLOCK_RANGE_UPDATE, [fromBig(0), fromBig(HEAD), hexToBytesStrict(chain.hashes[HEAD], 'head')])
      rangeUpdates.push(eth.id)
    } else if (full) {
      eth.send(C.NEW_BLOCK, [[chain.headers[n], ...chain.bodies[n]], fromBig(chain.tds[n])])
      sent.push(eth.id)
    } else {
      eth.send(C.NEW_BLOCK_HASHES, [[hexToBytesStrict(hash, 'hash'), fromBig(n)]])
      sent.push(eth.id)
    }
  }
  emit({
    event: 'announced', number: n, hash, full, td: chain.tds[n].toString(), head: HEAD, previousHead: from,
    sent, rangeUpdates,
  })
}

function targetPeers(cmd) {
  let peers = rlpx.getPeers()
  if (cmd.id !== undefined) peers = peers.filter((p) => peerIdHex(p) === String(cmd.id).toLowerCase())
  if (peers.length === 0) throw new Error('no connected peer')
  return peers
}
readCommands(
  (cmd) => {
    switch (cmd.cmd) {
      case 'exit':
        exit(0)
        break
      case 'peers':
        emit({ event: 'peers', peers: rlpx.getPeers().map(peerIdHex) })
        break
      case 'announce':
        announce(cmd)
        break
      case 'disconnect': {
        const reason = cmd.reason === undefined ? 0 : Number(cmd.reason)
        for (const peer of targetPeers(cmd)) {
          peer.disconnect(reason)
          emit({ event: 'disconnect-sent', reason, id: peerIdHex(peer) })
        }
        break
      }
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
    rlpx._listenPort = port
    emit({ event: 'listening', port, id: ourId, enode: `enode://${ourId}@127.0.0.1:${port}` })
    startDials()
  })
  rlpx.listen(args.port ?? 0, '127.0.0.1')
} else {
  emit({ event: 'started', id: ourId })
  startDials()
}
