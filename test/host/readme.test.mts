// Every TypeScript/JavaScript block of the README is run by the kernel suite (test/vm/readme) or
// says why not: scripts/readme-snippets.mjs is what extracts them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// @ts-expect-error: a plain .mjs script without declarations
const { extractSnippets } = (await import('../../scripts/readme-snippets.mjs')) as {
  extractSnippets(md: string): { line: number; section: string; code: string; setup: string; check: string; skip: string | undefined }[];
};

describe('README snippets', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const snippets = extractSnippets(readme);

  it('finds every ts/js block (fences at any indentation)', () => {
    const fences = readme.split('\n').filter((l) => /^\s*```(ts|typescript|js|mjs|javascript)\s*$/.test(l)).length;
    expect(snippets).to.have.length(fences);
    expect(fences).to.be.greaterThan(5);
  });

  it('each one runs in the kernel suite or gives a reason', () => {
    for (const s of snippets) if (s.skip !== undefined) expect(s.skip, `README.md line ${s.line}`).to.match(/\w{3,}/);
    expect(snippets.filter((s) => s.skip === undefined).length).to.be.greaterThan(5);
  });

  it('were compiled for this README (dist-test/readme is up to date)', () => {
    const index = JSON.parse(fs.readFileSync(path.join(root, 'dist-test', 'readme', 'index.json'), 'utf8')) as { line: number; file: string | null }[];
    expect(index.map((e) => e.line)).to.deep.equal(snippets.map((s) => s.line));
    for (const e of index) if (e.file !== null) expect(fs.existsSync(path.join(root, 'dist-test', 'readme', e.file)), e.file).to.equal(true);
  });
});
