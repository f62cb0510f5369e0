// The bad-input matrix (host and kernel tests): tables of calls with bad arguments, each expected
// to fail with one error class and code, synchronously for synchronous APIs and as a rejection
// (never a synchronous throw) for the promise-returning ones.
import { expect } from 'chai';
import { ClosedError, ExplicitSyncError } from 'explicit-sync';

type Ctor = abstract new (...args: never[]) => Error;

/** What a case must fail with. */
export interface Expected {
  error: Ctor;
  code?: string;
}

/** One bad call. */
export interface Case {
  /** Shown in failures and in the tried-inputs log, e.g. "Timeline#signal(NaN)". */
  name: string;
  run: () => unknown;
  expect: Expected;
  /** The API returns a promise: argument errors must arrive as a rejection. */
  async?: boolean;
}

/** ERR_INVALID_ARG_TYPE */
export const TYPE: Expected = { error: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
/** ERR_OUT_OF_RANGE */
export const RANGE: Expected = { error: RangeError, code: 'ERR_OUT_OF_RANGE' };
/** ERR_INVALID_ARG_VALUE */
export const VALUE: Expected = { error: TypeError, code: 'ERR_INVALID_ARG_VALUE' };
/** ClosedError (EBADF) */
export const CLOSED: Expected = { error: ClosedError, code: 'EBADF' };
/** An ExplicitSyncError with this code. */
export const sys = (code: string): Expected => ({ error: ExplicitSyncError, code });

type Labelled = readonly (readonly [string, unknown])[];

/** Values that are not numbers nor bigints. */
export const NOT_NUMERIC: Labelled = [
  ['undefined', undefined],
  ['null', null],
  ["'1'", '1'],
  ['{}', {}],
  ['[]', []],
  ['true', true],
  ['Symbol()', Symbol('x')],
  ['a function', () => 1],
  ['new Number(1)', new Number(1)],
];
/** Numbers no integer argument accepts. */
export const BAD_NUMBERS: Labelled = [
  ['NaN', Number.NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['-1', -1],
  ['-0.5', -0.5],
  ['1.5', 1.5],
  ['2^53', 2 ** 53],
  ['Number.MAX_VALUE', Number.MAX_VALUE],
];
/** Bigints outside u64. */
export const BAD_BIGINTS: Labelled = [
  ['-1n', -1n],
  ['2n**64n', 2n ** 64n],
  ['2n**200n', 2n ** 200n],
];
/** Non-objects where an options object goes (undefined is fine there). */
export const NOT_OBJECTS: Labelled = [
  ['null', null],
  ["'x'", 'x'],
  ['1', 1],
  ['true', true],
  ['1n', 1n],
  ['Symbol()', Symbol('o')],
];

/** A u64 argument (timeline point): TypeError for non-numerics, RangeError for bad numbers. */
export function u64Cases(name: string, make: (v: unknown) => unknown, opts: { nonZero?: boolean; async?: boolean } = {}): Case[] {
  const out: Case[] = [];
  for (const [l, v] of NOT_NUMERIC) out.push({ name: name.replace('$', l), run: () => make(v), expect: TYPE, async: opts.async });
  for (const [l, v] of [...BAD_NUMBERS, ...BAD_BIGINTS]) out.push({ name: name.replace('$', l), run: () => make(v), expect: RANGE, async: opts.async });
  if (opts.nonZero)
    for (const [l, v] of [['0', 0], ['0n', 0n], ['-0', -0]] as const) out.push({ name: name.replace('$', l), run: () => make(v), expect: RANGE, async: opts.async });
  return out;
}

/** An fd argument: TypeError for non-numbers (bigints too), RangeError for bad numbers and >= 2^31. */
export function fdNumberCases(name: string, make: (v: unknown) => unknown): Case[] {
  const out: Case[] = [];
  for (const [l, v] of [...NOT_NUMERIC, ['3n', 3n]] as const) out.push({ name: name.replace('$', l), run: () => make(v), expect: TYPE });
  for (const [l, v] of [...BAD_NUMBERS, ['2^31', 2 ** 31]] as const) out.push({ name: name.replace('$', l), run: () => make(v), expect: RANGE });
  return out;
}

/** A size or dimension argument (integer >= 1). */
export function sizeCases(name: string, make: (v: unknown) => unknown): Case[] {
  const out: Case[] = [];
  for (const [l, v] of [...NOT_NUMERIC, ['4096n', 4096n]] as const) out.push({ name: name.replace('$', l), run: () => make(v), expect: TYPE });
  for (const [l, v] of [...BAD_NUMBERS, ['0', 0]] as const) out.push({ name: name.replace('$', l), run: () => make(v), expect: RANGE });
  return out;
}

/** A `timeoutMs` option: numbers >= 0 or Infinity. */
export function timeoutCases(name: string, make: (v: unknown) => unknown, async = false): Case[] {
  const out: Case[] = [];
  for (const [l, v] of [['null', null], ["'1'", '1'], ['{}', {}], ['true', true], ['1n', 1n], ['Symbol()', Symbol('t')]] as const)
    out.push({ name: name.replace('$', l), run: () => make(v), expect: TYPE, async });
  for (const [l, v] of [['NaN', Number.NaN], ['-1', -1], ['-Infinity', -Infinity], ['-0.5', -0.5]] as const)
    out.push({ name: name.replace('$', l), run: () => make(v), expect: RANGE, async });
  return out;
}

/** An options argument that is not an object. */
export function optionsCases(name: string, make: (v: unknown) => unknown, async = false): Case[] {
  return NOT_OBJECTS.map(([l, v]) => ({ name: name.replace('$', l), run: () => make(v), expect: TYPE, async }));
}

/** Every bad input tried, by case name (printed at the end of a matrix). */
export const tried: string[] = [];

/** Runs one case; returns what was wrong with it, or undefined. */
export async function check(c: Case): Promise<string | undefined> {
  tried.push(c.name);
  let value: unknown;
  let error: unknown;
  let threw = false;
  try {
    value = c.run();
  } catch (err) {
    threw = true;
    error = err;
  }
  if (c.async) {
    if (threw) return `${c.name}: threw synchronously (${String(error)}) instead of rejecting`;
    if (!(value instanceof Promise)) return `${c.name}: did not return a promise`;
    try {
      await value;
      return `${c.name}: resolved`;
    } catch (err) {
      error = err;
    }
  } else if (!threw) {
    if (value instanceof Promise) value.catch(() => {});
    return `${c.name}: returned ${describe(value)} instead of throwing`;
  }
  const e = error as Error & { code?: unknown };
  if (!((e as unknown) instanceof c.expect.error))
    return `${c.name}: ${describe(e)} (${String((e as { message?: unknown } | undefined)?.message)}) is not a ${c.expect.error.name}`;
  if (c.expect.code !== undefined && e.code !== c.expect.code)
    return `${c.name}: code ${String(e.code)} (${e.message}), expected ${c.expect.code}`;
  if (typeof e.message !== 'string' || e.message.length < 10) return `${c.name}: no useful message (${e.message})`;
  return undefined;
}

function describe(v: unknown): string {
  if (v instanceof Error) return `${v.constructor.name}${(v as { code?: string }).code ? ` ${(v as { code?: string }).code}` : ''}`;
  if (typeof v === 'object' && v !== null) return `an instance of ${v.constructor?.name ?? 'Object'}`;
  return typeof v === 'bigint' ? `${v}n` : String(v);
}

/** Runs every case and fails with the list of the wrong ones. */
export async function expectAll(cases: readonly Case[]): Promise<void> {
  expect(cases.length).to.be.greaterThan(0);
  const failures: string[] = [];
  for (const c of cases) {
    const f = await check(c);
    if (f !== undefined) failures.push(f);
  }
  expect(failures, `${failures.length} of ${cases.length} cases`).to.deep.equal([]);
}
