import { describe, expect, it } from 'vitest'
import { parse } from '@bytecodealliance/jco'
import { instrumentModule } from './instrument.js'
import { FUEL_PROGRAMS, runFuelProgram } from './fuel-programs.fixture.js'

const OPTS = { maxMemoryPages: 64, maxTableElements: 1000 }

/**
 * Per program, per call: [result, fuelUsed], recorded under cost model 2 (fuel cached in a local
 * per function, flushed to the global before every call and reloaded after). Later schemes must
 * charge exactly the same.
 */
const COST_MODEL_2: Record<string, [string, number][]> = {
  'fib: recursion': [
    ['0', 7],
    ['1', 14],
    ['610', 21713],
  ],
  'even/odd: mutual recursion': [
    ['1', 96],
    ['1', 165],
    ['0', 2880],
  ],
  'multi-value functions called internally': [
    ['16', 28],
    ['6', 56],
  ],
  'exceptions crossing frames (legacy try/catch)': [
    ['6', 23],
    ['1009', 42],
    ['4', 62],
    ['-1', 78],
  ],
  'br, br_if and br_table to the function label': [
    ['18', 26],
    ['37', 54],
    ['17', 79],
    ['37', 107],
  ],
  'tail calls': [
    ['55', 119],
    ['5000050000', 1100128],
    ['7', 1550146],
  ],
  'functions exported and called internally, through a table too': [
    ['81', 4],
    ['32', 22],
    ['31', 40],
    ['2', 44],
    ['0', 47],
  ],
  'host imports read the fuel mid-recursion and call back in': [
    ['100070', 66],
    ['100529', 517],
  ],
  'memory.grow in a callee': [
    ['3', 15],
    ['6', 30],
    ['trap:2', 42],
  ],
  'fuel runs out mid-recursion': [['trap:1', 5014]],
  'fuel runs out in a loop inside a callee': [['trap:1', 779]],
  'many parameters and locals (local indices past 127)': [['38', 26]],
}

describe('fuel: the amounts of cost model 2 are kept', () => {
  for (const program of FUEL_PROGRAMS) {
    it(program.name, async () => {
      const plain = (await parse(program.wat)) as Uint8Array
      const outcomes = runFuelProgram(program, instrumentModule(plain, OPTS).bytes)
      expect(outcomes.map((o) => [o.result, Number(o.fuelUsed)])).toEqual(
        COST_MODEL_2[program.name],
      )
    })
  }
})
