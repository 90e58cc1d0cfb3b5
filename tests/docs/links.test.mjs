// The documentation holds together: every relative link and image of
// README.md, CHANGELOG.md and docs/*.md points at a file that exists, every
// #anchor at a heading (GitHub's slugs) or an id of that file; README.md
// stays a front page (under 300 lines); and no paragraph is written in two
// places (each topic lives in exactly one page).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const pages = ['README.md', 'CHANGELOG.md',
  ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => 'docs/' + f)];

// The lines of a page outside fenced code blocks.
function prose(text) {
  let fenced = false;
  return text.split('\n').map((line) => {
    if (line.startsWith('```')) { fenced = !fenced; return ''; }
    return fenced ? '' : line;
  });
}

// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to
// dashes; a repeated heading gets -1, -2, ...
function anchorsOf(text) {
  const seen = new Map();
  const anchors = new Set();
  for (const line of prose(text)) {
    const h = line.match(/^#{1,6} (.*)$/);
    if (h) {
      const title = h[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
      let slug = title.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
      const n = seen.get(slug) || 0;
      seen.set(slug, n + 1);
      anchors.add(n ? slug + '-' + n : slug);
    }
    for (const m of line.matchAll(/\b(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

function linksOf(text) {
  const links = [];
  prose(text).forEach((line, i) => {
    const code = line.replace(/`[^`]*`/g, '');
    for (const m of code.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ target: m[1], line: i + 1 });
  });
  return links;
}

const text = Object.fromEntries(pages.map((p) => [p, fs.readFileSync(path.join(root, p), 'utf8')]));
const anchors = Object.fromEntries(pages.map((p) => [p, anchorsOf(text[p])]));

test('every relative link and anchor resolves', () => {
  const broken = [];
  let checked = 0;
  for (const page of pages) {
    for (const { target, line } of linksOf(text[page])) {
      if (/^[a-z]+:/i.test(target)) continue;  // http(s), mailto: not ours to check offline
      checked++;
      const [file, anchor] = target.split('#');
      const resolved = file ? path.normalize(path.join(path.dirname(page), decodeURIComponent(file))) : page;
      if (!fs.existsSync(path.join(root, resolved))) {
        broken.push(`${page}:${line}: ${target}: no file ${resolved}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!resolved.endsWith('.md')) { broken.push(`${page}:${line}: ${target}: an anchor into a non-page`); continue; }
      const known = anchors[resolved] || anchorsOf(fs.readFileSync(path.join(root, resolved), 'utf8'));
      if (!known.has(anchor)) broken.push(`${page}:${line}: ${target}: no heading or id "${anchor}" in ${resolved}`);
    }
  }
  assert.ok(checked > 50, 'only ' + checked + ' links checked');
  assert.deepEqual(broken, []);
});

test('the README is a front page: under 300 lines, with a line for every docs page', () => {
  const lines = text['README.md'].split('\n').length;
  assert.ok(lines < 300, 'README.md has ' + lines + ' lines');
  const missing = pages.filter((p) => p.startsWith('docs/') && !text['README.md'].includes('](' + p + ')'));
  assert.deepEqual(missing, [], 'docs pages the README does not link');
});

test('no paragraph is written in two places', () => {
  const where = new Map();
  const twice = [];
  for (const page of pages) {
    const paragraphs = prose(text[page]).join('\n').split(/\n\s*\n/).map((p) => p.trim().replace(/\s+/g, ' '));
    for (const p of paragraphs) {
      if (p.length < 160 || p.startsWith('|')) continue;  // Short lines and table rows may repeat.
      if (where.has(p) && where.get(p) !== page) twice.push(`${where.get(p)} and ${page}: ${p.slice(0, 80)}...`);
      where.set(p, page);
    }
  }
  assert.deepEqual(twice, []);
});
