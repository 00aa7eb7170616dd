#!/usr/bin/env node
// Self-test: runs rlpx_peer.mjs against itself and dpt_peer.mjs against itself.
// Exits 0 if all expectations hold, 1 otherwise, 2 on overall timeout (30 s).
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
const children = []
const overall = setTimeout(() => {
  console.error('selftest: overall timeout')
  for (const c of children) c.kill('SIGKILL')
  process.exit(2)
}, 30000)

function start(name, script, args) {
  const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  const events = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    console.log(`${name} > ${line}`)
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
    wait(pred, what, ms = 8000) {
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

const K1 = '11'.repeat(32)
const K2 = '22'.repeat(32)
const K3 = '33'.repeat(32)
const K4 = '44'.repeat(32)

async function rlpxTest() {
  const a = start('A', 'rlpx_peer.mjs', ['--key', K1, '--listen', '--exit-on-disconnect', '--timeout-ms', '20000'])
  const la = await a.wait((e) => e.event === 'listening', 'listening')
  const b = start('B', 'rlpx_peer.mjs', [
    '--key', K2, '--dial', `enode://${la.id}@127.0.0.1:${la.port}`, '--client-id', 'selftest-B',
    '--exit-on-disconnect', '--timeout-ms', '20000',
  ])
  for (const [n, p] of [['A', a], ['B', b]]) {
    const pe = await p.wait((e) => e.event === 'peer', 'peer')
    check(pe.protocolVersion === 5 && pe.snappy === true, `${n}: p2p v5 + snappy`)
    check(pe.sharedCaps.includes('eth/68'), `${n}: shares eth/68`)
    const st = await p.wait((e) => e.event === 'message' && e.code === 0, 'status')
    check(st.payload.startsWith('f84e44820539'), `${n}: got dummy eth/68 status`)
    await p.wait((e) => e.event === 'pong', 'pong')
    check(true, `${n}: got pong`)
  }
  const bPeer = b.events.find((e) => e.event === 'peer')
  check(bPeer.clientId === 'ethereumjs-devp2p-interop/v10.0.0', 'B sees A client id')
  check(a.events.find((e) => e.event === 'peer').clientId === 'selftest-B', 'A sees B client id')

  b.send({ cmd: 'send', code: 2, payload: 'c3010203' })
  const m = await a.wait((e) => e.event === 'message' && e.code === 2, 'tx msg')
  check(m.payload === 'c3010203', 'A received raw eth message code 2')

  // 200 KiB compressible byte string inside an RLP list (BlockBodies code 6) from A to B.
  const big = 'ab'.repeat(200 * 1024)
  const bigRlp = 'fa' + (4 + 200 * 1024).toString(16).padStart(6, '0') + 'ba' + (200 * 1024).toString(16).padStart(6, '0') + big
  a.send({ cmd: 'send', code: 6, payload: bigRlp })
  const mb = await b.wait((e) => e.event === 'message' && e.code === 6, 'big msg')
  check(mb.payload === bigRlp, 'B received 200 KiB message intact')

  a.send({ cmd: 'ping' })
  await a.wait((e) => e.event === 'pong' && a.events.filter((x) => x.event === 'pong').length >= 2, 'second pong')
  check(true, 'A: second pong via stdin ping')

  b.send({ cmd: 'disconnect', reason: 8 })
  const dr = await a.wait((e) => e.event === 'disconnect-received', 'disconnect-received')
  check(dr.reason === 8, 'A received Disconnect reason 8')
  const da = await a.wait((e) => e.event === 'disconnect', 'disconnect')
  check(da.reason === 8 && da.by === 'remote', 'A disconnect event reason 8 by remote')
  const [ca, cb] = await Promise.all([a.exited, b.exited])
  check(ca === 0 && cb === 0, `both rlpx peers exited 0 (${ca}, ${cb})`)
}

async function dptTest() {
  const c = start('C', 'dpt_peer.mjs', ['--key', K3, '--udp-port', '0', '--timeout-ms', '20000'])
  const lc = await c.wait((e) => e.event === 'listening', 'listening')
  const d = start('D', 'dpt_peer.mjs', [
    '--key', K4, '--udp-port', '0', '--timeout-ms', '20000',
    '--bootnode', `enode://${lc.id}@127.0.0.1:30303?discport=${lc.port}`,
  ])
  const ld = await d.wait((e) => e.event === 'listening', 'listening')
  const ad = await d.wait((e) => e.event === 'peer:added', 'peer:added')
  check(ad.id === lc.id && ad.udpPort === lc.port, 'D added C')
  const ac = await c.wait((e) => e.event === 'peer:added', 'peer:added')
  check(ac.id === ld.id && ac.udpPort === ld.port, 'C added D (bond back)')
  d.send({ cmd: 'findneighbours', id: lc.id, address: '127.0.0.1', udpPort: lc.port })
  await d.wait((e) => e.event === 'findneighbours-sent', 'findneighbours-sent')
  const nb = await d.wait((e) => e.event === 'neighbours' && d.events.filter((x) => x.event === 'neighbours').length >= 2, 'neighbours')
  check(Array.isArray(nb.peers), 'D got neighbours from C')
  c.send({ cmd: 'peers' })
  const pc = await c.wait((e) => e.event === 'peers', 'peers')
  check(pc.peers.some((p) => p.id === ld.id), 'C peers list contains D')
  c.send({ cmd: 'exit' })
  d.send({ cmd: 'exit' })
  const [cc, cd] = await Promise.all([c.exited, d.exited])
  check(cc === 0 && cd === 0, `both dpt peers exited 0 (${cc}, ${cd})`)
}

try {
  await rlpxTest()
  await dptTest()
  console.error('selftest: PASS')
  clearTimeout(overall)
  process.exit(0)
} catch (e) {
  console.error(`selftest: FAIL: ${e.message}`)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
}
