// Shared helpers for the interop scripts: CLI parsing, NDJSON event output,
// hard timeout, stdin command reading, enode parsing, loopback enforcement.
import { createInterface } from 'node:readline'

/** Write one JSON object as a single line to stdout. */
export function emit(obj) {
  process.stdout.write(
    JSON.stringify(obj, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n',
  )
}

/** Diagnostics go to stderr only. */
export function log(...args) {
  process.stderr.write(`[${new Date().toISOString()}] ${args.join(' ')}\n`)
}

/** Flush stdout, then exit with `code`. */
let exiting = false
export function exit(code) {
  if (exiting) return
  exiting = true
  // Pipes are synchronous on Linux, but wait for the write callback anyway.
  process.stdout.write('', () => process.exit(code))
  // Safety net in case the callback never fires (e.g. closed pipe).
  setTimeout(() => process.exit(code), 500).unref()
}

/**
 * Minimal argv parser. `spec` maps option name -> 'string' | 'bool' | 'list' | 'int'.
 * Returns an object keyed by option name (without leading dashes).
 */
export function parseArgs(argv, spec) {
  const out = {}
  for (const [k, t] of Object.entries(spec)) if (t === 'list') out[k] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`)
    let name = a.slice(2)
    let val
    const eq = name.indexOf('=')
    if (eq >= 0) {
      val = name.slice(eq + 1)
      name = name.slice(0, eq)
    }
    const t = spec[name]
    if (t === undefined) throw new Error(`unknown option: --${name}`)
    if (t === 'bool') {
      out[name] = val === undefined ? true : val !== 'false'
      continue
    }
    if (val === undefined) {
      if (i + 1 >= argv.length) throw new Error(`option --${name} needs a value`)
      val = argv[++i]
    }
    if (t === 'int') {
      const n = Number(val)
      if (!Number.isInteger(n) || n < 0) throw new Error(`option --${name}: bad integer ${val}`)
      out[name] = n
    } else if (t === 'list') out[name].push(val)
    else out[name] = val
  }
  return out
}

/** Parse args or print the error and exit 1. */
export function parseArgsOrDie(spec, usage) {
  try {
    return parseArgs(process.argv.slice(2), spec)
  } catch (e) {
    log(`error: ${e.message}`)
    log(usage)
    emit({ event: 'error', message: e.message })
    process.exit(1)
  }
}

/** Start the hard timeout: emits {"event":"timeout"} and exits 2. */
export function startHardTimeout(ms) {
  const t = setTimeout(() => {
    emit({ event: 'timeout', ms })
    log(`hard timeout after ${ms} ms, exiting 2`)
    exit(2)
  }, ms)
  return t
}

export function hexToBytesStrict(hex, name, expectLen) {
  let h = hex.startsWith('0x') ? hex.slice(2) : hex
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw new Error(`${name}: invalid hex`)
  if (expectLen !== undefined && h.length !== expectLen * 2)
    throw new Error(`${name}: expected ${expectLen} bytes, got ${h.length / 2}`)
  return Uint8Array.from(Buffer.from(h, 'hex'))
}

export function toHex(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost'])

/** Ensure an address is loopback; returns the normalised IPv4 loopback string. */
export function requireLoopback(addr, what) {
  if (!LOOPBACK.has(addr)) throw new Error(`${what}: only 127.0.0.1 is allowed, got ${addr}`)
  return '127.0.0.1'
}

/**
 * Parse `enode://<128 hex>@127.0.0.1:<tcp>[?discport=<udp>]`.
 * Returns { id: Uint8Array(64), idHex, address, tcpPort, udpPort }.
 */
export function parseEnode(s) {
  const m = /^enode:\/\/([0-9a-fA-F]{128})@([^:/?]+):(\d+)(?:\?discport=(\d+))?$/.exec(s)
  if (!m) throw new Error(`bad enode url: ${s}`)
  const address = requireLoopback(m[2], 'enode host')
  const tcpPort = Number(m[3])
  const udpPort = m[4] !== undefined ? Number(m[4]) : tcpPort
  if (tcpPort > 65535 || udpPort > 65535) throw new Error(`bad port in ${s}`)
  return { id: hexToBytesStrict(m[1], 'enode id', 64), idHex: m[1].toLowerCase(), address, tcpPort, udpPort }
}

/** Read newline-delimited JSON commands from stdin; calls handler(obj). */
export function readCommands(handler, { exitOnEof = false } = {}) {
  const rl = createInterface({ input: process.stdin, terminal: false })
  rl.on('line', (line) => {
    line = line.trim()
    if (line === '') return
    let obj
    try {
      obj = JSON.parse(line)
    } catch (e) {
      emit({ event: 'error', message: `bad command json: ${e.message}` })
      return
    }
    try {
      handler(obj)
    } catch (e) {
      log(`command failed: ${e.stack ?? e}`)
      emit({ event: 'error', message: `command ${obj.cmd} failed: ${e.message}` })
    }
  })
  rl.on('close', () => {
    if (exitOnEof) {
      log('stdin closed, exiting 0')
      exit(0)
    }
  })
}
