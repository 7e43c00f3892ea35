// Gzipped sizes of the built console (run `npm run build` first): every JavaScript and CSS
// chunk, and the JavaScript the first page load needs (index.html's entry script and the
// chunks it imports statically, from Vite's manifest-free HTML: the entry plus its
// modulepreload links). Prints a Markdown table for docs/BENCHMARKS.md.
import { readFileSync, readdirSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const dist = join(dirname(fileURLToPath(import.meta.url)), '../dist')
const assets = join(dist, 'assets')
const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length
const kb = (n) => (n / 1024).toFixed(1)

const html = readFileSync(join(dist, 'index.html'), 'utf8')
const initial = new Set([...html.matchAll(/(?:src|href)="\/assets\/([^"]+\.(?:js|css))"/g)].map((m) => m[1]))

const rows = readdirSync(assets)
  .filter((f) => /\.(js|css)$/.test(f))
  .map((f) => ({ f, raw: readFileSync(join(assets, f)).length, gz: gz(join(assets, f)), initial: initial.has(f) }))
  .sort((a, b) => b.gz - a.gz)

let initJs = 0, initCss = 0, allJs = 0
for (const r of rows) {
  if (r.f.endsWith('.js')) allJs += r.gz
  if (r.initial && r.f.endsWith('.js')) initJs += r.gz
  if (r.initial && r.f.endsWith('.css')) initCss += r.gz
}
console.log('| chunk | raw KiB | gzip KiB | named by index.html |')
console.log('|---|---:|---:|:---:|')
for (const r of rows) console.log(`| ${r.f.replace(/-[\w-]{8}\.(js|css)$/, '.$1')} | ${kb(r.raw)} | ${kb(r.gz)} | ${r.initial ? '✓' : ''} |`)
console.log()
console.log(`Entry (the scripts index.html names): JavaScript ${kb(initJs)} KiB gzipped, CSS ${kb(initCss)} KiB gzipped; all JavaScript ${kb(allJs)} KiB gzipped.`)
if (initJs > 400 * 1024) {
  console.error('initial JavaScript exceeds 400 KiB gzipped')
  process.exit(1)
}
