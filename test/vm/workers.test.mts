// worker_threads against the real kernel: the addon loads and waits in several workers at once
// (each with its own event loop and FdWatchers), and a worker that exits or is terminated with
// waits pending neither crashes the process nor leaves its poll handles behind.
import { expect } from 'chai';
import { Worker } from 'node:worker_threads';
import { closeSync } from 'node:fs';
import { Device } from 'explicit-sync';
import { openFds } from '../helpers.mjs';
import { childScript } from './child-helpers.mjs';
import { openTimelineDevice } from './syncobj-helpers.mjs';
import { describeWith, expectNoDeviceWith } from './kernel-features.mjs';

interface Started {
  worker: Worker;
  messages: unknown[];
  /** Resolves with the exit code. */
  exited: Promise<number>;
  /** Resolves with the next message. */
  next(): Promise<unknown>;
}

function start(workerData: Record<string, unknown>): Started {
  const worker = new Worker(childScript('worker'), { workerData });
  const messages: unknown[] = [];
  let waiting: ((m: unknown) => void) | undefined;
  worker.on('message', (m) => {
    messages.push(m);
    waiting?.(m);
    waiting = undefined;
  });
  const exited = new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', resolve);
  });
  return {
    worker,
    messages,
    exited,
    next: () => new Promise((resolve) => (waiting = resolve)),
  };
}

describeWith(['timeline'], 'worker_threads (kernel)', function () {
  this.timeout(120000);
  let dev: Device;
  before(() => {
    dev = openTimelineDevice();
  });
  after(() => dev.close());

  it('three workers wait on one shared timeline at once and are woken by the main thread', async () => {
    const t = dev.createTimeline();
    const fd = t.exportFd();
    try {
      const workers = [1, 2, 3].map((point) => start({ mode: 'wait', path: dev.path, timelineFd: fd, point }));
      await Promise.all(workers.map((w) => (w.messages.length > 0 ? Promise.resolve() : w.next())));
      expect(workers.map((w) => w.messages[0])).to.deep.equal(['waiting', 'waiting', 'waiting']);
      t.signal(1);
      t.signal(2);
      t.signal(3);
      const codes = await Promise.all(workers.map((w) => w.exited));
      expect(codes).to.deep.equal([0, 0, 0]);
      // Each worker queries after its own point signalled: the worker waiting for 1 may run between
      // signal(1) and signal(3) (it did, under TCG with vkms loaded), so it reads at least its point.
      workers.forEach((w, i) => {
        const m = w.messages[1] as { resolved: string };
        expect(BigInt(m.resolved) >= BigInt(i + 1) && BigInt(m.resolved) <= 3n, JSON.stringify(m)).to.equal(true);
      });
    } finally {
      closeSync(fd);
      t.close();
    }
  });

  it('a worker terminate()d with waits pending exits cleanly, closing what it owned', async () => {
    const before = openFds();
    const w = start({ mode: 'pending', path: dev.path });
    expect(await w.next()).to.equal('pending');
    expect(await w.worker.terminate()).to.equal(1);
    expect(await w.exited).to.equal(1);
    expect(openFds()).to.deep.equal(before);
  });

  it('a worker that calls process.exit() with waits pending exits with its code, closing what it owned', async () => {
    const before = openFds();
    const w = start({ mode: 'pending', path: dev.path });
    expect(await w.next()).to.equal('pending');
    w.worker.postMessage('exit');
    expect(await w.exited).to.equal(7);
    expect(openFds()).to.deep.equal(before);
  });

  it('worker churn: workers torn down with waits pending, two at a time, leave no fd behind', async () => {
    const before = openFds();
    for (let i = 0; i < 2; i++) {
      const pair = [start({ mode: 'pending', path: dev.path }), start({ mode: 'pending', path: dev.path })];
      await Promise.all(pair.map((w) => w.next()));
      pair[0]!.worker.postMessage('exit');
      await pair[1]!.worker.terminate();
      expect(await Promise.all(pair.map((w) => w.exited))).to.deep.equal([7, 1]);
    }
    expect(openFds()).to.deep.equal(before);
  });
}, () => expectNoDeviceWith('timeline'));
