#!/usr/bin/env node
// Self-test of discv5_peer.mjs: two of them on 127.0.0.1 ping each other, one finds the
// other's record by distance, and a TALKREQ is answered. Exit 0 = PASS.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

function peer(args = []) {
  const child = spawn('node', ['discv5_peer.mjs', '--timeout-ms', '20000', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const waiting = []
  const seen = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const ev = JSON.parse(line)
    seen.push(ev)
    for (const w of [...waiting]) {
      if (w.pred(ev)) {
        waiting.splice(waiting.indexOf(w), 1)
        w.resolve(ev)
      }
    }
  })
  return {
    child,
    wait(pred) {
      const hit = seen.find(pred)
      if (hit) return Promise.resolve(hit)
      return new Promise((resolve) => waiting.push({ pred, resolve }))
    },
    cmd(obj) {
      child.stdin.write(JSON.stringify(obj) + '\n')
    },
  }
}

const fail = (msg) => {
  console.error(`FAIL: ${msg}`)
  process.exit(1)
}
setTimeout(() => fail('timed out'), 15000).unref()

const a = peer()
const b = peer()
const ra = await a.wait((e) => e.event === 'ready')
const rb = await b.wait((e) => e.event === 'ready')
a.cmd({ cmd: 'ping', enr: rb.enr })
const pong = await a.wait((e) => e.event === 'pong' || e.event === 'ping-failed')
if (pong.event !== 'pong') fail(`ping: ${JSON.stringify(pong)}`)
b.cmd({ cmd: 'findnode', enr: ra.enr, distances: [0] })
const nodes = await b.wait((e) => e.event === 'nodes' || e.event === 'findnode-failed')
if (nodes.event !== 'nodes' || nodes.enrs[0] !== ra.enr) fail(`findnode: ${JSON.stringify(nodes)}`)
b.cmd({ cmd: 'talkreq', enr: ra.enr, protocol: 'x', payload: 'hi' })
const req = await a.wait((e) => e.event === 'talkreq')
if (req.bytes !== 2) fail(`talkreq: ${JSON.stringify(req)}`)
for (const p of [a, b]) p.cmd({ cmd: 'exit' })
console.log('discv5 selftest: PASS')
