#!/usr/bin/env node
// Self-test for eth_peer.mjs: JS serve <-> JS fetch on loopback.
// Cases: eth/68 full chain (fetcher dials server), eth/69 (server dials listening fetcher),
// --serve-upto 100, Status mismatch (different chain dir genesis via --eth 68 vs fake network).
// Exits 0 if all expectations hold, 1 otherwise, 2 on overall timeout (60 s).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
const CHAIN = join(here, '../../testdata/ethtest')
const HEAD600 = '44e3809c9a3cda717f00aea3a9da336d149612c8d5657fbc0028176ef8d94d2a'
const children = []
const overall = setTimeout(() => {
  console.error('eth_selftest: overall timeout')
  for (const c of children) c.kill('SIGKILL')
  process.exit(2)
}, 60000)

function start(name, args) {
  const child = spawn(process.execPath, [join(here, 'eth_peer.mjs'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  const events = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    console.log(`${name} > ${line.length > 400 ? line.slice(0, 400) + '...' : line}`)
    const ev = JSON.parse(line)
    events.push(ev)
    for (const w of [...waiters]) if (w.pred(ev)) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(ev)
    }
  })
  createInterface({ input: child.stderr }).on('line', (line) => console.error(`${name} ! ${line}`))
  const exited = new Promise((res) => child.on('exit', (code) => res(code)))
  return {
    events,
    exited,
    send: (obj) => child.stdin.write(JSON.stringify(obj) + '\n'),
    wait(pred, what, ms = 15000) {
      const found = events.find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const w = { pred, resolve }
        waiters.push(w)
        setTimeout(() => reject(new Error(`${name}: timed out waiting for ${what}`)), ms).unref()
      })
    },
  }
}
function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`)
  console.error(`ok: ${msg}`)
}
const key = (b) => b.repeat(32)

async function case68() {
  const s = start('S68', ['--key', key('11'), '--listen', '--mode', 'serve', '--timeout-ms', '30000'])
  const l = await s.wait((e) => e.event === 'listening', 'listening')
  const f = start('F68', ['--key', key('22'), '--dial', l.enode, '--mode', 'fetch', '--exit-on-done', '--timeout-ms', '30000'])
  const fst = await f.wait((e) => e.event === 'status', 'status')
  check(fst.version === 68 && fst.networkId === '3503995874084926' && fst.head === HEAD600, 'eth/68: fetcher sees server Status (network, head 600)')
  check(fst.forkId[0] === '377aaa78' && fst.forkId[1] === '0' && fst.forkIdCheck === 'remote-ahead', 'eth/68: server fork id 377aaa78/0 accepted as remote-ahead')
  const sst = await s.wait((e) => e.event === 'status', 'status')
  check(sst.forkId[0] === '8fd57d63' && sst.forkId[1] === '60' && sst.forkIdCheck === 'remote-behind', 'eth/68: fetcher fork id 8fd57d63/60 accepted as remote-behind')
  check(sst.td === '131072' && fst.td === '131072', 'eth/68: td 131072 both ways')
  const done = await f.wait((e) => e.event === 'fetched' || e.event === 'fetch-error', 'fetched')
  check(done.event === 'fetched' && done.blocks === 600 && done.head === HEAD600 && done.txs === 603, 'eth/68: fetched 600 blocks, 603 txs, head hash')
  check((await f.exited) === 0, 'eth/68: fetcher exit 0')
  const d = await s.wait((e) => e.event === 'disconnect', 'disconnect')
  check(d.reason === 8 && d.served.headers >= 600 && d.served.bodies === 600, 'eth/68: server got Disconnect 0x08, served >= 600 headers and 600 bodies')
  s.send({ cmd: 'exit' })
  check((await s.exited) === 0, 'eth/68: server exit 0 on stdin exit')
}

async function case69() {
  // roles reversed: the fetcher listens, the server dials
  const f = start('F69', ['--key', key('33'), '--listen', '--mode', 'fetch', '--eth', '69,68', '--exit-on-done', '--timeout-ms', '30000'])
  const l = await f.wait((e) => e.event === 'listening', 'listening')
  const s = start('S69', ['--key', key('44'), '--dial', l.enode, '--mode', 'serve', '--eth', '69', '--serve-upto', '100', '--exit-on-disconnect', '--timeout-ms', '30000'])
  const fst = await f.wait((e) => e.event === 'status', 'status')
  check(fst.version === 69 && fst.latest === '100' && fst.earliest === '0', 'eth/69: Status with earliest 0 / latest 100')
  check(fst.forkId[0] === '377aaa78' && fst.forkIdCheck === 'remote-ahead', 'eth/69: fork id at block 100 (time 1000) = 377aaa78')
  const done = await f.wait((e) => e.event === 'fetched' || e.event === 'fetch-error', 'fetched')
  check(done.event === 'fetched' && done.blocks === 100 && done.reachedStatusHead, 'eth/69 + --serve-upto 100: fetched 100 blocks')
  check((await f.exited) === 0, 'eth/69: fetcher exit 0')
  check((await s.exited) === 0, 'eth/69: server exit 0 on disconnect (--exit-on-disconnect)')
}

async function caseMismatch() {
  // a chain dir whose genesis.json has another chain id -> network id mismatch
  const dir = mkdtempSync(join(tmpdir(), 'ethtest-'))
  const g = JSON.parse(readFileSync(join(CHAIN, 'genesis.json'), 'utf8'))
  g.config.chainId = 1337
  writeFileSync(join(dir, 'genesis.json'), JSON.stringify(g))
  copyFileSync(join(CHAIN, 'chain.rlp'), join(dir, 'chain.rlp'))
  const s = start('SX', ['--key', key('55'), '--listen', '--mode', 'serve', '--chain-dir', dir, '--exit-on-disconnect', '--timeout-ms', '30000'])
  const l = await s.wait((e) => e.event === 'listening', 'listening')
  const f = start('FX', ['--key', key('66'), '--dial', l.enode, '--mode', 'fetch', '--exit-on-done', '--timeout-ms', '30000'])
  const m = await f.wait((e) => e.event === 'status-mismatch', 'status-mismatch')
  check(/network id 1337/.test(m.message), 'mismatch: fetcher reports network id mismatch')
  check((await f.exited) === 1, 'mismatch: fetcher exit 1')
  const sm = await s.wait((e) => e.event === 'status-mismatch' || e.event === 'disconnect', 'server mismatch/disconnect')
  check(sm.event === 'status-mismatch' || sm.reason === 0x10, 'mismatch: server rejects too or receives Disconnect 0x10')
  check((await s.exited) === 0, 'mismatch: server exit 0')
}

try {
  await case68()
  await case69()
  await caseMismatch()
  console.error('eth_selftest: PASS')
  clearTimeout(overall)
  process.exit(0)
} catch (e) {
  console.error(`eth_selftest: FAIL: ${e.message}`)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
}
