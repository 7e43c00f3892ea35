// Fails when src/api/schema.d.ts differs from what openapi-typescript generates from the
// checked-in OpenAPI document (../openapi/zhengyun.json). Fix with `npm run gen:api`.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const web = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = mkdtempSync(join(tmpdir(), 'zy-api-'))
const out = join(dir, 'schema.d.ts')
try {
  execFileSync(
    process.execPath,
    [join(web, 'node_modules/openapi-typescript/bin/cli.js'), join(web, '../openapi/zhengyun.json'), '-o', out],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  const want = readFileSync(out, 'utf8')
  const have = readFileSync(join(web, 'src/api/schema.d.ts'), 'utf8')
  if (want !== have) {
    console.error('src/api/schema.d.ts differs from openapi/zhengyun.json: run `npm run gen:api` and commit it')
    process.exit(1)
  }
  console.log('API types match openapi/zhengyun.json')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
