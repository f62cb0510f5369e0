// Process exit against the real kernel, in child processes: pending waits follow ref/unref like
// timers do, and process.exit() / an uncaught exception with waits pending ends the process with
// the expected status, without a crash or an abort.
import { expect } from 'chai';
import { childScript, describeRun, runChild, type ChildRun } from './child-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

interface ExitResult {
  code: number;
  ms: number;
  settled: string[];
}

describeWith(['timeline'], 'process exit with pending waits (kernel, child processes)', function () {
  this.timeout(180000);
  const modes = ['unref', 'ref-signal', 'ref-timeout', 'ref-then-unref', 'exit', 'throw'] as const;
  const runs = new Map<string, ChildRun<ExitResult>>();

  before(async () => {
    // Two at a time (the VM has two CPUs; a node start there takes seconds).
    const queue = [...modes];
    const next = async (): Promise<void> => {
      for (let m = queue.shift(); m !== undefined; m = queue.shift())
        runs.set(m, await runChild<ExitResult>(childScript('exit'), [m], { timeoutMs: 120000 }));
    };
    await Promise.all([next(), next()]);
  });

  const get = (mode: string): { run: ChildRun<ExitResult>; r: ExitResult } => {
    const run = runs.get(mode)!;
    expect(run.signal, describeRun(run)).to.equal(null);
    expect(run.result, describeRun(run)).to.be.an('object');
    return { run, r: run.result! };
  };

  it('ref:false waits of every kind let the process exit at once, unsettled', () => {
    const { run, r } = get('unref');
    expect(run.code, describeRun(run)).to.equal(0);
    expect(r.settled).to.deep.equal([]);
  });

  it('a ref:true wait keeps the process alive until its point is signalled', () => {
    const { run, r } = get('ref-signal');
    expect(run.code, describeRun(run)).to.equal(0);
    expect(r.settled).to.deep.equal(['timeline: resolved']);
    expect(r.ms).to.be.greaterThanOrEqual(1400);
  });

  it('a ref:true wait with a timeout keeps the process alive until it times out', () => {
    const { run, r } = get('ref-timeout');
    expect(run.code, describeRun(run)).to.equal(0);
    expect([...r.settled].sort()).to.deep.equal(['syncobj: TimeoutError ETIME', 'timeline: TimelineTimeoutError ETIME']);
    expect(r.ms).to.be.greaterThanOrEqual(1400);
  });

  it('once the ref:true wait of a lane settles, its ref:false wait no longer holds the process', () => {
    const { run, r } = get('ref-then-unref');
    expect(run.code, describeRun(run)).to.equal(0);
    expect(r.settled).to.deep.equal(['ref: resolved']);
  });

  it('process.exit(3) with ref\'d waits pending here and in a worker exits with 3, no crash', () => {
    const { run, r } = get('exit');
    expect(run.code, describeRun(run)).to.equal(3);
    expect(r.code).to.equal(3);
    expect(r.settled).to.deep.equal([]);
    expect(run.stderr).to.equal('');
  });

  it('an uncaught exception with ref\'d waits pending exits with 1 (not an abort)', () => {
    const { run, r } = get('throw');
    expect(run.code, describeRun(run)).to.equal(1);
    expect(r.code).to.equal(1);
    expect(run.stderr).to.include('boom');
  });
}, () => expectNoDeviceWith('timeline'));
