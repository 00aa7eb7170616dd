// Chain helpers for eth_peer.mjs: load the ethtest chain (geth genesis.json + chain.rlp),
// keccak, a minimal Merkle-Patricia root, header field access, genesis header construction,
// and EIP-2124 / EIP-6122 fork ids (CRC32 implemented here; ethereumjs Common is not used).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { RLP } from '@ethereumjs/rlp'
// ethereum-cryptography is a dependency of @ethereumjs/util (installed by `npm ci`).
import { keccak256 } from 'ethereum-cryptography/keccak.js'

export { keccak256 }

export const EMPTY_ROOT = hexBytes('56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421')
export const EMPTY_OMMERS = hexBytes('1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347')

export function hexBytes(h) {
  if (h.startsWith('0x') || h.startsWith('0X')) h = h.slice(2)
  if (h.length % 2) h = '0' + h
  return Uint8Array.from(Buffer.from(h, 'hex'))
}
export const hex = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** RLP scalar (big-endian, no leading zeros) -> bigint. */
export function toBig(b) {
  if (!(b instanceof Uint8Array)) throw new Error('expected a byte string')
  let n = 0n
  for (const x of b) n = (n << 8n) | BigInt(x)
  return n
}
/** bigint|number -> minimal big-endian bytes (0 -> empty). */
export function fromBig(n) {
  n = BigInt(n)
  if (n < 0n) throw new Error('negative')
  const out = []
  while (n > 0n) {
    out.unshift(Number(n & 0xffn))
    n >>= 8n
  }
  return Uint8Array.from(out)
}
function u64be(n) {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}

// ---------------------------------------------------------------- Merkle-Patricia root
function nibbles(key) {
  const out = new Array(key.length * 2)
  for (let i = 0; i < key.length; i++) {
    out[2 * i] = key[i] >> 4
    out[2 * i + 1] = key[i] & 15
  }
  return out
}
function hexPrefix(nibs, leaf) {
  const flag = (leaf ? 2 : 0) + (nibs.length % 2)
  const all = nibs.length % 2 ? [flag, ...nibs] : [flag, 0, ...nibs]
  const out = new Uint8Array(all.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = (all[2 * i] << 4) | all[2 * i + 1]
  return out
}
function ref(node) {
  const enc = RLP.encode(node)
  return enc.length < 32 ? node : keccak256(enc)
}
function build(items, depth) {
  if (items.length === 0) return new Uint8Array(0)
  if (items.length === 1) return [hexPrefix(items[0].k.slice(depth), true), items[0].v]
  // longest common prefix from `depth`
  let cp = 0
  for (;;) {
    const d = depth + cp
    if (items.some((it) => it.k.length <= d)) break
    const n = items[0].k[d]
    if (items.some((it) => it.k[d] !== n)) break
    cp++
  }
  if (cp > 0) return [hexPrefix(items[0].k.slice(depth, depth + cp), false), ref(build(items, depth + cp))]
  const branch = []
  for (let n = 0; n < 16; n++) {
    const sub = items.filter((it) => it.k.length > depth && it.k[depth] === n)
    branch.push(sub.length === 0 ? new Uint8Array(0) : ref(build(sub, depth + 1)))
  }
  const here = items.find((it) => it.k.length === depth)
  branch.push(here ? here.v : new Uint8Array(0))
  return branch
}
/** Root of a trie holding (key bytes -> value bytes) pairs. */
export function trieRoot(pairs) {
  if (pairs.length === 0) return EMPTY_ROOT
  const items = pairs.map(([k, v]) => ({ k: nibbles(k), v }))
  return keccak256(RLP.encode(build(items, 0)))
}
/** Root of an ordered list trie (transactions, withdrawals, receipts): key = RLP(index). */
export function listRoot(values) {
  return trieRoot(values.map((v, i) => [RLP.encode(i === 0 ? new Uint8Array(0) : fromBig(i)), v]))
}
/** Trie value of a transaction as found in a block body: legacy = RLP list, typed = opaque bytes. */
export const txTrieValue = (tx) => (Array.isArray(tx) ? RLP.encode(tx) : tx)

// ---------------------------------------------------------------- headers / blocks
export const H = {
  parentHash: 0, ommersHash: 1, coinbase: 2, stateRoot: 3, txRoot: 4, receiptsRoot: 5, bloom: 6,
  difficulty: 7, number: 8, gasLimit: 9, gasUsed: 10, time: 11, extra: 12, mixHash: 13, nonce: 14,
  baseFee: 15, withdrawalsRoot: 16, blobGasUsed: 17, excessBlobGas: 18, beaconRoot: 19, requestsHash: 20,
}
export const headerHash = (header) => keccak256(RLP.encode(header))

/**
 * Check a block body [txs, ommers, withdrawals?] against its header. Returns null if fine,
 * else a string describing the mismatch.
 */
export function checkBody(header, body) {
  if (!Array.isArray(body) || body.length < 2 || !Array.isArray(body[0]) || !Array.isArray(body[1]))
    return 'body is not [txs, ommers, ...]'
  const txRoot = listRoot(body[0].map(txTrieValue))
  if (hex(txRoot) !== hex(header[H.txRoot]))
    return `transactions root ${hex(txRoot)} != header ${hex(header[H.txRoot])}`
  const om = keccak256(RLP.encode(body[1]))
  if (hex(om) !== hex(header[H.ommersHash])) return `ommers hash ${hex(om)} != header ${hex(header[H.ommersHash])}`
  if (header.length > H.withdrawalsRoot) {
    if (body.length < 3 || !Array.isArray(body[2])) return 'header has withdrawalsRoot but body has no withdrawals'
    const wr = listRoot(body[2].map((w) => RLP.encode(w)))
    if (hex(wr) !== hex(header[H.withdrawalsRoot]))
      return `withdrawals root ${hex(wr)} != header ${hex(header[H.withdrawalsRoot])}`
  } else if (body.length > 2) return 'body has withdrawals but header has no withdrawalsRoot'
  return null
}

// ---------------------------------------------------------------- genesis
/** Compute the genesis header from a geth genesis.json (Frontier..Cancun/Prague-at-genesis aware). */
export function genesisHeader(g) {
  const cfg = g.config ?? {}
  const big = (s) => BigInt(s ?? 0)
  const accounts = Object.entries(g.alloc ?? {}).map(([addr, acc]) => {
    const storage = Object.entries(acc.storage ?? {})
      .map(([k, v]) => [keccak256(hexBytes(k.padStart(66, '0').slice(-64))), fromBig(big(v))])
      .filter(([, v]) => v.length > 0)
      .map(([k, v]) => [k, RLP.encode(v)])
    const code = hexBytes(acc.code ?? '0x')
    const value = RLP.encode([fromBig(big(acc.nonce)), fromBig(big(acc.balance)), trieRoot(storage), keccak256(code)])
    return [keccak256(hexBytes(addr.replace(/^0x/, '').padStart(40, '0'))), value]
  })
  const time = big(g.timestamp)
  const at = (k) => cfg[k] !== undefined && cfg[k] !== null && BigInt(cfg[k]) <= time
  const atBlock0 = (k) => cfg[k] !== undefined && cfg[k] !== null && BigInt(cfg[k]) === 0n
  const header = [
    hexBytes(g.parentHash ?? '00'.repeat(32)).length === 32 ? hexBytes(g.parentHash ?? '00'.repeat(32)) : new Uint8Array(32),
    EMPTY_OMMERS,
    hexBytes(g.coinbase ?? '00'.repeat(20)),
    trieRoot(accounts),
    EMPTY_ROOT,
    EMPTY_ROOT,
    new Uint8Array(256),
    fromBig(big(g.difficulty)),
    fromBig(big(g.number)),
    fromBig(big(g.gasLimit)),
    fromBig(big(g.gasUsed)),
    fromBig(time),
    hexBytes(g.extraData ?? '0x'),
    hexBytes(g.mixHash ?? '00'.repeat(32)),
    u64be(big(g.nonce)),
  ]
  if (atBlock0('londonBlock')) header.push(fromBig(g.baseFeePerGas != null ? big(g.baseFeePerGas) : 1000000000n))
  if (at('shanghaiTime')) header.push(EMPTY_ROOT)
  if (at('cancunTime')) {
    header.push(fromBig(big(g.blobGasUsed)), fromBig(big(g.excessBlobGas)), new Uint8Array(32))
  }
  if (at('pragueTime')) header.push(hexBytes('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'))
  return header
}

// ---------------------------------------------------------------- fork id (EIP-2124 / EIP-6122)
const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()
function crc32Update(crc, bytes) {
  crc = ~crc >>> 0
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8)
  return ~crc >>> 0
}

/**
 * Fork schedule like geth's gatherForks: every config field ending in "Block" (block forks)
 * or "Time" (time forks), deduplicated, ascending; block forks at 0 and time forks at or before
 * the genesis time are not forks.
 */
export function gatherForks(config, genesisTime) {
  const blocks = new Set()
  const times = new Set()
  for (const [k, v] of Object.entries(config)) {
    if (v === null || v === undefined || typeof v === 'object' || typeof v === 'boolean') continue
    let n
    try {
      n = BigInt(v)
    } catch {
      continue
    }
    if (/Block$/.test(k) && n > 0n) blocks.add(n)
    if (/Time$/.test(k) && n > BigInt(genesisTime)) times.add(n)
  }
  const asc = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
  return { blocks: [...blocks].sort(asc), times: [...times].sort(asc) }
}

export class ForkId {
  constructor(genesisHash, forks) {
    this.forks = [...forks.blocks.map((n) => ({ at: n, time: false })), ...forks.times.map((n) => ({ at: n, time: true }))]
    this.sums = [crc32Update(0, genesisHash)]
    for (const f of this.forks) this.sums.push(crc32Update(this.sums[this.sums.length - 1], u64be(f.at)))
  }
  passed(f, number, time) {
    return f.time ? BigInt(time) >= f.at : BigInt(number) >= f.at
  }
  /** Fork id for a head: { hash: number (uint32), next: bigint }. */
  forHead(number, time) {
    let i = 0
    while (i < this.forks.length && this.passed(this.forks[i], number, time)) i++
    return { hash: this.sums[i], next: i < this.forks.length ? this.forks[i].at : 0n }
  }
  /**
   * EIP-2124 validation of a remote fork id against our head. Returns { ok, rule } where rule is
   * one of: equal, remote-ahead (remote hash is a later fork of ours: we are syncing),
   * remote-behind (remote is at an earlier fork and announces our next fork), and on failure
   * local-stale / remote-stale / unknown.
   */
  validate(remote, number, time) {
    let i = 0
    while (i < this.forks.length && this.passed(this.forks[i], number, time)) i++
    if (this.sums[i] === remote.hash) {
      if (remote.next > 0n) {
        // The remote announces a fork that we have already passed by our head -> we are incompatible.
        // Is the announced next fork a timestamp? (all block forks precede all time forks, EIP-6122)
        const lastBlockFork = this.forks.filter((f) => !f.time).at(-1)?.at ?? 0n
        const isTime = this.forks.some((f) => f.time) && remote.next > lastBlockFork
        const head = isTime ? BigInt(time) : BigInt(number)
        if (head >= remote.next) return { ok: false, rule: 'local-stale' }
      }
      return { ok: true, rule: 'equal' }
    }
    for (let j = 0; j < i; j++) {
      if (this.sums[j] === remote.hash) {
        if (this.forks[j].at !== remote.next) return { ok: false, rule: 'remote-stale' }
        return { ok: true, rule: 'remote-behind' }
      }
    }
    for (let j = i + 1; j < this.sums.length; j++) if (this.sums[j] === remote.hash) return { ok: true, rule: 'remote-ahead' }
    return { ok: false, rule: 'unknown' }
  }
}

// ---------------------------------------------------------------- chain loading
/**
 * Load <dir>/genesis.json and <dir>/chain.rlp. Returns
 * { networkId, genesisHash, genesisJson, headers: [header0..headerN], bodies, hashes (hex), byHash: Map, forkId, tds }
 * where index = block number. headers[0] is the computed genesis header if its hash matches block 1's
 * parentHash, otherwise null (genesisComputed=false).
 */
export function loadChain(dir, upto = Infinity) {
  const g = JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8'))
  const raw = Uint8Array.from(readFileSync(join(dir, 'chain.rlp')))
  const blocks = []
  let rest = raw
  while (rest.length > 0) {
    const { data, remainder } = RLP.decode(rest, true)
    blocks.push(data)
    rest = remainder
  }
  if (blocks.length === 0) throw new Error('chain.rlp is empty')
  const genesisHash = blocks[0][0][H.parentHash]
  const gh = genesisHeader(g)
  const genesisComputed = hex(headerHash(gh)) === hex(genesisHash)
  const headers = [genesisComputed ? gh : null]
  const bodies = [[[], [], ...(gh.length > H.withdrawalsRoot ? [[]] : [])]]
  for (const b of blocks) {
    const n = Number(toBig(b[0][H.number]))
    if (n !== headers.length) throw new Error(`chain.rlp: expected block ${headers.length}, got ${n}`)
    if (n > upto) break
    headers.push(b[0])
    bodies.push(b.slice(1))
  }
  const hashes = headers.map((h, i) => (i === 0 ? hex(genesisHash) : hex(headerHash(h))))
  for (let i = 1; i < headers.length; i++) {
    if (hex(headers[i][H.parentHash]) !== hashes[i - 1]) throw new Error(`chain.rlp: bad parent hash at ${i}`)
  }
  const byHash = new Map(hashes.map((h, i) => [h, i]))
  const genesisDifficulty = BigInt(g.difficulty ?? 0)
  const tds = [genesisDifficulty]
  for (let i = 1; i < headers.length; i++) tds.push(tds[i - 1] + toBig(headers[i][H.difficulty]))
  const genesisTime = BigInt(g.timestamp ?? 0)
  const forkId = new ForkId(genesisHash, gatherForks(g.config ?? {}, genesisTime))
  const timeOf = (i) => (i === 0 ? genesisTime : toBig(headers[i][H.time]))
  return {
    networkId: BigInt(g.config?.chainId ?? 1),
    genesisHash,
    genesisComputed,
    genesisTime,
    headers,
    bodies,
    hashes,
    byHash,
    tds,
    forkId,
    timeOf,
    head: headers.length - 1,
    totalBlocksInFile: blocks.length,
  }
}
