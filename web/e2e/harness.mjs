// Shared set-up for the end-to-end tests: starts `zhengyun server --demo` on a free
// loopback port with a fresh data directory (unless ZY_E2E_BASE names a running one),
// launches Debian's headless Chromium through playwright-core with a fresh profile, and
// writes screenshots to e2e/artifacts/.
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
export const ARTIFACTS = join(here, 'artifacts')
export const DIST = resolve(process.env.ZHENGYUN_WEB_DIR ?? join(here, '../dist'))
mkdirSync(ARTIFACTS, { recursive: true })

export const DEMO_PASSWORD = 'Yibin@2026demo'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
]

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

async function waitReady(base, deadline) {
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${base}/readyz`)
      if (r.ok) return
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`server at ${base} not ready in time`)
}

/** Starts the server (or uses ZY_E2E_BASE); returns { base, admins, stop }. */
export async function startServer() {
  if (process.env.ZY_E2E_BASE) {
    // A server started by `cargo xtask test`, which passes on the admins' one-time passwords.
    const admins = {}
    for (const name of ['admin', 'secadmin', 'auditor']) {
      const pw = process.env[`ZY_E2E_${name.toUpperCase()}_PASSWORD`]
      if (pw) admins[name] = pw
    }
    return { base: process.env.ZY_E2E_BASE, admins, stop: async () => {} }
  }
  const bin = resolve(process.env.ZHENGYUN_BIN ?? join(here, '../../target/debug/zhengyun'))
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'zy-e2e-'))
  const base = `http://127.0.0.1:${port}`
  const child = spawn(bin, ['server', '--demo', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...process.env, ZHENGYUN_WEB_DIR: DIST, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  await waitReady(base, Date.now() + 60000)
  // The first start prints the three admins' one-time passwords.
  const admins = {}
  for (const m of out.matchAll(/^\s+(admin|secadmin|auditor)\s+\S+\s+\(\w+\)\s+(\S+)\s*$/gm)) admins[m[1]] = m[2]
  return {
    base,
    admins,
    stop: async () => {
      child.kill('SIGTERM')
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)))
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** Headless Chromium with a fresh profile, 1366×768. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'zy-chromium-'))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
    acceptDownloads: true,
  })
  ctx.setDefaultTimeout(15000)
  return {
    ctx,
    close: async () => {
      await ctx.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false })
}

/** Fresh page whose console errors (other than refused API calls) fail the test. */
export async function newPage(ctx) {
  const page = await ctx.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text())
  })
  return { page, errors }
}

export async function login(page, base, username, password = DEMO_PASSWORD) {
  await page.goto(`${base}/login`)
  await page.getByTestId('username').fill(username)
  await page.getByTestId('password').fill(password)
  await page.getByTestId('login-submit').click()
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret, for the MFA enrolment. */
export function totp(secretB32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const c of secretB32.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0')
  const bytes = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)))
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)))
  const h = createHmac('sha1', bytes).update(counter).digest()
  const o = h[h.length - 1] & 0xf
  const n = (h.readUInt32BE(o) & 0x7fffffff) % 1000000
  return String(n).padStart(6, '0')
}

/** First sign-in of a bootstrap admin: new password, TOTP enrolment, recovery codes. */
export async function firstLogin(page, base, username, oneTime, newPassword) {
  await login(page, base, username, oneTime)
  await page.getByTestId('pw-current').fill(oneTime)
  await page.getByTestId('pw-new').fill(newPassword)
  await page.getByTestId('pw-repeat').fill(newPassword)
  await page.getByTestId('pw-submit').click()
  const secret = await page.getByTestId('mfa-secret').innerText()
  await page.getByTestId('mfa-code').fill(totp(secret))
  await page.getByTestId('mfa-confirm').click()
  await page.getByTestId('codes-continue').click()
}
