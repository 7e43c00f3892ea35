// End-to-end tests of the console in headless Chromium against a real server with the
// demo data: sign-in rules, the department portal's instance life cycle, role-based
// menus and the forbidden page, the auditor's first login (password change, TOTP
// enrolment) and audit view, the overview's lazy chart chunk, English errors, the inbox
// and webhooks, the network pages (VPC, subnet, security-group rule, load balancer,
// topology), and the instance list with 1,000 rows.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { startServer, launch, newPage, login, firstLogin, shot, totp, ARTIFACTS, DIST } from './harness.mjs'
import { bedSession } from './openstack-bed.mjs'

let server
let browser
const started = Date.now()

before(async () => {
  server = await startServer()
  browser = await launch()
})

after(async () => {
  await browser?.close()
  await server?.stop()
  writeFileSync(join(ARTIFACTS, 'e2e-seconds.txt'), `${((Date.now() - started) / 1000).toFixed(1)}\n`)
})

async function pickOption(page, testId, text) {
  await page.getByTestId(testId).click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: text }).first().click()
}

async function confirmBox(page) {
  const box = page.locator('.el-message-box')
  await box.waitFor()
  await box.locator('.el-button--primary').click()
}

async function waitState(page, state, timeout = 30000) {
  await page.locator(`[data-testid="instance-state"][data-state="${state}"]`).waitFor({ timeout })
}

test('the first page loads at most 400 KiB of JavaScript, gzipped', async () => {
  const { page, errors } = await newPage(browser.ctx)
  const scripts = new Set()
  page.on('request', (r) => r.resourceType() === 'script' && scripts.add(new URL(r.url()).pathname))
  await page.goto(`${server.base}/login`)
  await page.getByTestId('login-submit').waitFor()
  await page.waitForLoadState('networkidle')
  let total = 0
  const chunks = {}
  for (const p of scripts) {
    const f = join(DIST, p)
    if (!existsSync(f)) continue
    const n = gzipSync(readFileSync(f), { level: 9 }).length
    chunks[p.replace('/assets/', '')] = n
    total += n
  }
  writeFileSync(join(ARTIFACTS, 'initial-load.json'), JSON.stringify({ totalGzipBytes: total, chunks }, null, 2) + '\n')
  assert.ok(total > 0, 'no script was loaded')
  assert.ok(total <= 400 * 1024, `initial JavaScript is ${total} bytes gzipped`)
  assert.ok(![...scripts].some((s) => /charts-/.test(s)), 'ECharts must not be in the first load')
  await shot(page, '00-login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('wrong passwords show the attempts left, then the lock and until when', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'gaj.dev', 'not-the-password')
  const alert = page.getByTestId('login-error')
  await alert.waitFor()
  const text = await alert.innerText()
  assert.match(text, /用户名或密码错误/)
  assert.match(text, /再失败 4 次账号将被锁定/)
  await shot(page, '01-login-remaining-attempts')
  // Four more failures lock the account; the page says so and until when.
  for (let i = 0; i < 4; i++) {
    await page.getByTestId('login-submit').click()
    await page.waitForResponse((r) => r.url().endsWith('/v1/auth/login'))
  }
  await page.getByTestId('login-error').filter({ hasText: '账号已锁定' }).waitFor()
  assert.match(await page.getByTestId('login-error').innerText(), /锁定至/)
  await shot(page, '01b-login-locked')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin creates a project and runs an instance through its life cycle', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  // A department admin sees the portal, not the platform console or the audit log.
  const menu = await page.getByTestId('menu').innerText()
  assert.match(menu, /云主机/)
  assert.doesNotMatch(menu, /审计日志|宿主机|委办局/)
  await shot(page, '02-portal-instances')

  const project = `e2e项目${Date.now() % 100000}`
  await page.getByTestId('nav-projects').click()
  await page.getByTestId('create-project').click()
  await page.getByTestId('project-save').click()
  // Validated before sending: an empty name is refused in the form.
  await page.locator('.el-form-item__error').first().waitFor()
  await page.getByTestId('project-name').fill(project)
  await page.getByTestId('project-save').click()
  await page.getByTestId('project-table').getByText(project).waitFor()
  await shot(page, '03-project-created')

  await page.getByTestId('nav-instances').click()
  await page.getByTestId('create-instance').click()
  await pickOption(page, 'wiz-project', project)
  await page.getByTestId('wiz-name').fill('e2e-web')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-flavor').locator('label', { hasText: '2C4G' }).first().click()
  await pickOption(page, 'wiz-image', 'CentOS-7.9')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-placement').getByText('按云服务商').click()
  await pickOption(page, 'wiz-provider', '浪潮云（模拟）')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-review').waitFor()
  await shot(page, '04-wizard-review')
  await page.getByTestId('wiz-submit').click()

  await page.waitForURL(/\/portal\/instances\/[0-9a-f-]{36}$/)
  await waitState(page, 'running')
  await shot(page, '05-instance-running')
  await page.getByRole('tab', { name: '串口控制台日志' }).click()
  await page.getByTestId('console-log').filter({ hasText: /\S/ }).waitFor()
  // The simulated provider reports no metrics; the tab says so instead of showing zeros.
  await page.getByRole('tab', { name: '监控' }).click()
  await page.getByTestId('no-metrics').or(page.getByTestId('metrics')).waitFor()

  await page.getByTestId('act-stop').click()
  await confirmBox(page)
  await waitState(page, 'stopped')
  await shot(page, '06-instance-stopped')
  // Every change ran as a saga: the operations tab lists the create and the stop, done.
  await page.getByRole('tab', { name: '操作记录' }).click()
  const sagas = page.getByTestId('instance-sagas')
  await sagas.getByText('关机').waitFor()
  await sagas.getByText('创建').waitFor()
  assert.match(await sagas.innerText(), /完成/)

  await page.getByTestId('act-delete').click()
  await confirmBox(page)
  await page.locator('[data-testid="instance-state"][data-state="deleted"], [data-testid="instance-state"][data-state="deleting"]').first().waitFor()
  await shot(page, '07-instance-deleted')

  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department member runs a real VM on 本机 KVM and reads its serial console', { skip: !process.env.ZY_E2E_KVM && 'no local agent (QEMU or the guest template missing)' }, async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.user')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('create-instance').click()
  await pickOption(page, 'wiz-project', '全民健康信息平台')
  await page.getByTestId('wiz-name').fill('kvm-e2e')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-flavor').locator('label', { hasText: '1C128M' }).first().click()
  await pickOption(page, 'wiz-image', 'zy-busybox')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-placement').getByText('按云服务商').click()
  await pickOption(page, 'wiz-provider', '本机 KVM')
  await page.getByTestId('wiz-next').click()
  await page.getByTestId('wiz-review').waitFor()
  await page.getByTestId('wiz-submit').click()
  await page.waitForURL(/\/portal\/instances\/[0-9a-f-]{36}$/)
  await waitState(page, 'running', 90000)
  // The real guest prints its ready marker with its hostname on the serial console.
  await page.getByRole('tab', { name: '串口控制台日志' }).click()
  const log = page.getByTestId('console-log')
  const deadline = Date.now() + 90000
  while (!(await log.innerText()).includes('ZHENGYUN-READY hostname=kvm-e2e')) {
    assert.ok(Date.now() < deadline, `no ready marker in the console: ${await log.innerText()}`)
    await page.waitForTimeout(1000)
    await page.locator('#pane-console').getByRole('button').first().click()
  }
  await shot(page, '05k-kvm-serial-console')
  // Real hosts report metrics from QEMU.
  await page.getByRole('tab', { name: '监控' }).click()
  await page.getByTestId('metrics').waitFor()
  // A member's "delete" releases to the recycle bin: stopped, disks kept.
  await page.getByTestId('act-release').click()
  await confirmBox(page)
  await page.getByTestId('recycled-alert').waitFor({ timeout: 60000 })
  await page.locator('[data-testid="instance-state"][data-state="stopped"]').waitFor({ timeout: 60000 })
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin sees a lease counting down, and restores an instance from the recycle bin', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'gaj.admin')
  await page.waitForURL('**/portal/instances')
  // The demo's instance whose lease ends in two days shows the time left.
  await page.getByTestId('instance-link').filter({ hasText: '临时数据比对-2' }).click()
  await page.getByTestId('lease-left').waitFor()
  assert.match(await page.getByTestId('lease-left').innerText(), /剩余 1 天 23 小时|剩余 2 天/)
  await page.getByTestId('lease-edit').waitFor()
  await shot(page, '07c-lease')

  await page.getByTestId('nav-recycle-bin').click()
  const row = page.getByTestId('recycle-bin').locator('tr', { hasText: '旧版报表服务' })
  await row.waitFor()
  assert.match(await row.innerText(), /系统已迁移到新版/)
  await shot(page, '07d-recycle-bin')
  await row.getByTestId('bin-restore').click()
  await confirmBox(page)
  await row.waitFor({ state: 'detached' })
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin sees its security events with charts and marks a vulnerability fixed', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-events').click()
  const events = page.getByTestId('secev-events')
  await events.locator('tbody tr').first().waitFor()
  await page.getByTestId('secev-chart-day').locator('canvas').waitFor()
  await shot(page, '12a-security-events')

  await page.getByTestId('nav-vulnerabilities').click()
  const vulns = page.getByTestId('vulns')
  await vulns.locator('tbody tr').first().waitFor()
  const before = await vulns.locator('tbody tr').count()
  assert.ok(before > 0, 'the demo scan gives the department findings')
  await shot(page, '12b-vulnerabilities')
  await vulns.getByTestId('vuln-fixed').first().click()
  await page.locator('.el-message--success').waitFor()
  await vulns.locator('.el-tag', { hasText: '已修复' }).first().waitFor()
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin creates a VPC with a subnet, opens a port in a security group, sees the demo load balancer and the topology', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-vpcs').click()
  await page.getByTestId('create-vpc').click()
  await page.getByTestId('vpc-name').fill('e2e网络')
  await page.getByTestId('vpc-save').click()
  const row = page.getByTestId('vpc-table').locator('tr', { hasText: 'e2e网络' }).first()
  await row.waitFor()
  await row.getByTestId('add-subnet').click()
  await page.getByTestId('subnet-name').fill('e2e子网')
  await page.getByTestId('subnet-cidr').fill('10.99.1.7/24')
  await page.getByTestId('subnet-save').click()
  await page.getByTestId('subnet-error').filter({ hasText: '10.99.1.0/24' }).waitFor()
  await page.getByTestId('subnet-cidr').fill('10.99.1.0/24')
  await page.getByTestId('subnet-save').click()
  await page.getByTestId('subnet-table').locator('tr', { hasText: '10.99.1.0/24' }).first().waitFor()
  await shot(page, '13a-vpcs')

  await page.getByTestId('nav-security-groups').click()
  await page.getByTestId('sg-table').locator('tr', { hasText: 'web' }).first().click()
  await page.getByTestId('rule-table').waitFor()
  await page.getByTestId('rule-port').locator('input').fill('8080')
  await page.getByTestId('rule-remote').fill('10.0.0.0/8')
  await page.getByTestId('rule-add').click()
  await page.getByTestId('rule-table').locator('tr', { hasText: '10.0.0.0/8' }).waitFor()
  assert.match(await page.getByTestId('rule-table').innerText(), /8080/)
  await shot(page, '13b-security-group')

  await page.getByTestId('nav-load-balancers').click()
  const lb = page.getByTestId('lb-table').locator('tr', { hasText: '门户网站负载均衡' })
  await lb.waitFor()
  assert.match(await lb.innerText(), /10\.10\.1\.10/)
  await shot(page, '13c-load-balancers')

  await page.getByTestId('nav-topology').click()
  await page.getByTestId('topology-graph').locator('canvas').waitFor()
  await shot(page, '13d-topology')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin opens a ticket and sees its SLA countdown; the provider operator accepts it', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-tickets').click()
  const table = page.getByTestId('ticket-table')
  await table.locator('tbody tr').first().waitFor()
  await page.getByTestId('ticket-new').click()
  await page.getByTestId('ticket-title').fill('e2e工单：门户无法登录')
  await pickOption(page, 'ticket-priority', 'L1')
  // To 浪潮云: its operator, inspur.ops, works it below (each operator sees only its own
  // provider's tickets).
  await pickOption(page, 'ticket-provider', '浪潮云')
  await page.getByTestId('ticket-submit').click()
  await page.waitForURL('**/ops/tickets/*')
  await page.locator('[data-testid="ticket-timeline"] [data-action="open"]').waitFor()
  await page.getByTestId('nav-tickets').click()
  const row = table.locator('tr', { hasText: 'e2e工单：门户无法登录' })
  await row.waitFor()
  // L1: fifteen minutes to respond, counting down.
  assert.match(await row.getByTestId('ticket-countdown').innerText(), /^0:1[45]:\d\d$/)
  await shot(page, '15a-tickets')
  await page.getByTestId('logout').click()

  await login(page, server.base, 'inspur.ops')
  await page.waitForURL('**/platform/infra')
  await page.getByTestId('nav-tickets').click()
  await table.locator('tr', { hasText: 'e2e工单：门户无法登录' }).getByTestId('ticket-link').click()
  await page.getByTestId('ticket-accept').click()
  await page.locator('[data-testid="ticket-timeline"] [data-action="accept"]').waitFor()
  await page.locator('[data-testid="ticket-state"][data-state="accepted"]').waitFor()
  await shot(page, '15b-ticket-accepted')
  await page.getByTestId('nav-inspections').click()
  await page.getByTestId('plan-table').locator('tbody tr').first().waitFor()
  await page.getByTestId('nav-sla').click()
  await page.getByTestId('sla-table').waitFor()
  await shot(page, '15c-sla')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin sees quota bars, creates a volume and releases it to the recycle bin', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-quotas').click()
  const quota = page.getByTestId('quota-department')
  await quota.waitFor()
  assert.match(await quota.innerText(), /已用 \d+ \/ 上限 \d+/)
  await shot(page, '07a-quotas')

  await page.getByTestId('nav-volumes').click()
  await page.getByTestId('create-volume').click()
  await page.getByTestId('volume-name').fill('')
  await page.getByTestId('volume-save').click()
  await page.locator('.el-form-item__error').first().waitFor()
  await page.getByTestId('volume-name').fill('e2e数据盘')
  await page.getByTestId('volume-save').click()
  const row = page.getByTestId('volume-table').locator('tr', { hasText: 'e2e数据盘' })
  await row.waitFor()
  await shot(page, '07b-volume-created')
  await row.getByTestId('volume-delete').click()
  await confirmBox(page)
  await row.waitFor({ state: 'detached' })
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin reads the inbox from the bell, marks all read, and subscribes a webhook', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  // The demo leaves three notices for this admin: an approval, a lease, a budget alert.
  const badge = page.getByTestId('bell').locator('.el-badge__content')
  await badge.waitFor()
  assert.equal((await badge.innerText()).trim(), '3')
  await page.getByTestId('bell').click()
  await page.waitForURL('**/inbox')
  const notices = page.getByTestId('notice')
  await notices.first().waitFor()
  assert.equal(await notices.count(), 3)
  assert.match(await page.getByTestId('inbox').innerText(), /待审批：全民健康信息平台扩容 4 台云主机/)
  await shot(page, '07c-inbox')
  await page.getByTestId('read-all').click()
  await badge.waitFor({ state: 'hidden' })

  await page.getByTestId('nav-notify').click()
  await page.getByTestId('new-webhook').click()
  await page.getByTestId('webhook-name').fill('卫计委 OA 待办')
  await page.getByTestId('webhook-url').fill('http://127.0.0.1:9/hooks/zhengyun')
  await page.getByTestId('create-webhook').click()
  const box = page.locator('.el-message-box')
  await box.waitFor()
  assert.match(await box.innerText(), /zwh_/)
  await box.locator('.el-button--primary').click()
  await page.getByTestId('webhooks').locator('tr', { hasText: '卫计委 OA 待办' }).waitFor()
  await shot(page, '07d-webhooks')
  // Alerts: the department's demo rules, and a new CPU rule on the department.
  await page.getByTestId('nav-alerts').click()
  await page.getByTestId('alerts-active').waitFor()
  await page.getByRole('tab', { name: '告警规则' }).click()
  const rules = page.getByTestId('alert-rules')
  await rules.waitFor()
  const dept = await page.evaluate(async () => {
    const r = await fetch('/v1/departments?limit=1', { credentials: 'include' })
    return (await r.json()).items[0].id
  })
  await page.getByTestId('rule-name').fill('e2e CPU 告警')
  await page.getByTestId('rule-id').fill(dept)
  await page.getByTestId('rule-add').click()
  await rules.getByText('e2e CPU 告警').waitFor()
  assert.match(await rules.innerText(), /cpu > 90 持续 10 分钟/)
  await shot(page, '07e-alert-rules')
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department member signs in with the keyboard, gets the forbidden page for the platform console, and is sent back to sign in when the session ends', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await page.goto(`${server.base}/login`)
  // Keyboard only: the user name field has focus, Tab moves on, Enter submits.
  await page.getByTestId('username').waitFor()
  await page.keyboard.type('wjw.user')
  await page.keyboard.press('Tab')
  await page.keyboard.type('Yibin@2026demo')
  await page.keyboard.press('Enter')
  await page.waitForURL('**/portal/instances')
  // The menu and the instance links are reachable with Tab.
  await page.getByTestId('filter-name').focus()
  await page.keyboard.press('Shift+Tab')
  assert.ok(await page.evaluate(() => document.activeElement && document.activeElement !== document.body))
  const menu = await page.getByTestId('menu').innerText()
  assert.doesNotMatch(menu, /成员|委办局|审计/)
  await page.goto(`${server.base}/platform/infra`)
  await page.getByTestId('forbidden').waitFor()
  await shot(page, '08-forbidden')
  await page.goto(`${server.base}/audit`)
  await page.getByTestId('forbidden').waitFor()
  // A session the server no longer accepts (here: its cookie gone) brings the user back to
  // the login page with the reason.
  await browser.ctx.clearCookies()
  await page.getByTestId('nav-volumes').click()
  await page.waitForURL('**/login**')
  await page.getByText('会话已失效，请重新登录').waitFor()
  await shot(page, '08b-session-ended')
  assert.deepEqual(errors, [])
  await page.close()
})

test('a member applies for instances, the department admin and the supervisor approve, and the member accepts the delivery', async () => {
  const member = await newPage(browser.ctx)
  let page = member.page
  await login(page, server.base, 'wjw.user')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-requests').click()
  await page.getByTestId('request-table').locator('tr', { hasText: '全民健康信息平台扩容' }).waitFor()
  await page.getByTestId('request-new').click()
  await page.getByTestId('request-title').fill('e2e申请')
  await page.getByTestId('request-submit').click()
  await page.getByTestId('request-error').waitFor()
  assert.match(await page.getByTestId('request-error').innerText(), /用途/)
  await page.getByTestId('request-purpose').fill('端到端测试')
  await page.getByTestId('request-submit').click()
  await page.locator('[data-testid="request-state"][data-state="pending"]').waitFor()
  const url = page.url()
  await shot(page, '08a-request-submitted')
  await page.getByTestId('logout').click()

  const lead = await newPage(browser.ctx)
  page = lead.page
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-approvals').click()
  await page.getByTestId('request-table').locator('tr', { hasText: 'e2e申请' }).getByTestId('request-link').click()
  await page.getByTestId('request-approve').click()
  await page.locator('[data-testid="request-timeline"] [data-action="approve"]').waitFor()
  await page.getByTestId('logout').click()

  const sup = await newPage(browser.ctx)
  page = sup.page
  await login(page, server.base, 'jianguan')
  await page.waitForURL('**/platform/overview')
  await page.getByTestId('nav-approvals').click()
  await page.getByTestId('request-table').locator('tr', { hasText: 'e2e申请' }).getByTestId('request-link').click()
  await page.getByTestId('decide-card').waitFor()
  await shot(page, '08b-supervisor-decides')
  await page.getByTestId('request-approve').click()
  await page.locator('[data-testid="request-state"][data-state="delivering"], [data-testid="request-state"][data-state="delivered"]').first().waitFor()
  await page.getByTestId('logout').click()

  page = member.page
  await login(page, server.base, 'wjw.user')
  await page.waitForURL('**/portal/instances')
  for (let i = 0; i < 60; i++) {
    await page.goto(url)
    if (await page.locator('[data-testid="request-state"][data-state="delivered"]').count()) break
    await page.waitForTimeout(500)
  }
  await page.getByTestId('delivered-item').first().waitFor()
  await page.getByTestId('request-accept').click()
  await page.locator('[data-testid="request-state"][data-state="accepted"]').waitFor()
  await shot(page, '08c-request-accepted')
  for (const p of [member, lead, sup]) {
    assert.deepEqual(p.errors, [])
    await p.page.close()
  }
})

test('finance closes a month, adjusts a bill with a reason, and the department admin sees the bill with its trend', async () => {
  const { page, errors } = await newPage(browser.ctx)
  // Two months back (Asia/Shanghai): the demo ledger has usage there and it is still open.
  const s = new Date(Date.now() + 8 * 3600_000)
  const back = new Date(Date.UTC(s.getUTCFullYear(), s.getUTCMonth() - 2, 1))
  const month = `${back.getUTCFullYear()}-${String(back.getUTCMonth() + 1).padStart(2, '0')}`
  await login(page, server.base, 'caizheng')
  await page.waitForURL('**/platform/billing')
  await page.getByTestId('billing-month').fill(month)
  await page.getByTestId('billing-month').press('Enter')
  const rows = page.getByTestId('billing-bills').locator('tbody tr')
  await rows.first().waitFor()
  assert.match(await rows.first().innerText(), /草稿/)
  await page.getByTestId('close-month').click()
  await confirmBox(page)
  await page.getByTestId('billing-bills').locator('tbody tr', { hasText: '已月结' }).first().waitFor()
  await page.getByTestId('billing-bills').locator('tbody tr', { hasText: '宜宾市卫生和计划生育委员会' }).click()
  const detail = page.getByTestId('billing-detail')
  await detail.waitFor()
  const before = await detail.locator('b').innerText()
  await page.getByTestId('adjust').click()
  await page.getByTestId('adjust-amount').fill('-1.00')
  await page.getByTestId('adjust-reason').fill('e2e 补偿')
  await page.getByTestId('adjust-save').click()
  await detail.locator('td', { hasText: 'e2e 补偿' }).waitFor()
  assert.notEqual(await detail.locator('b').innerText(), before)
  await shot(page, '09a-billing')
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')

  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  await page.getByTestId('nav-bills').click()
  await page.getByTestId('bill-trend').locator('canvas').waitFor()
  await page.getByTestId('bill-state').waitFor()
  await page.getByTestId('budget').waitFor()
  // The trend shows the month finance just closed beside the open one.
  await page.waitForTimeout(800)
  await shot(page, '09b-department-bill')
  await page.getByTestId('logout').click()
  assert.deepEqual(errors, [])
  await page.close()
})

test('the supervisor sees the overview, whose charts load as a separate chunk', async () => {
  const { page, errors } = await newPage(browser.ctx)
  const scripts = []
  page.on('request', (r) => r.resourceType() === 'script' && scripts.push(r.url()))
  await login(page, server.base, 'jianguan')
  await page.waitForURL('**/platform/overview')
  const beforeCharts = scripts.length
  await page.getByTestId('chart-provider').locator('canvas').waitFor()
  assert.ok(scripts.slice(beforeCharts).some((u) => /charts-.*\.js$/.test(u)) || scripts.some((u) => /charts-.*\.js$/.test(u)))
  await page.waitForTimeout(500)
  await shot(page, '09-overview')
  await page.getByTestId('nav-infra').click()
  await page.getByTestId('host-table').locator('tbody tr').first().waitFor()
  await shot(page, '10-hosts')
  // The supervisor reads providers but adds none.
  assert.equal(await page.getByTestId('new-openstack').count(), 0)
  await page.getByTestId('logout').click()
  assert.deepEqual(errors, [])
  await page.close()
})

test('the supervisor compares providers with drill-down, and the full-screen dashboard is ready within 2 s at 1920×1080', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'jianguan')
  await page.waitForURL('**/platform/overview')
  await page.getByTestId('nav-supervision').click()
  await page.getByTestId('sup-providers').locator('tbody tr').first().waitFor()
  await page.getByTestId('sup-providers').locator('tbody tr').first().click()
  await page.getByTestId('sup-indicators').locator('tbody tr').first().waitFor()
  const codes = await page.getByTestId('sup-indicators').locator('tbody tr td:first-child').allInnerTexts()
  assert.ok(codes.includes('P1') && codes.includes('P6'), codes.join(','))
  await shot(page, '10b-supervision-drilldown')
  await page.keyboard.press('Escape')
  // The command centre's screen: no console frame, dark, 1920×1080.
  await page.setViewportSize({ width: 1920, height: 1080 })
  const t0 = Date.now()
  await page.goto(`${server.base}/screen`)
  await page.locator('[data-testid="screen"][data-ready="true"]').waitFor({ timeout: 15000 })
  const readyMs = Date.now() - t0
  writeFileSync(join(ARTIFACTS, 'screen-ready-ms.txt'), `${readyMs}\n`)
  assert.equal(await page.getByTestId('menu').count(), 0, 'no console menu on the screen')
  const providers = await page.getByTestId('screen-providers').innerText()
  assert.match(providers, /\d/)
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(ARTIFACTS, '10c-supervision-screen-1920x1080.png'), fullPage: false })
  // 2 s is the target; the bound leaves room for a loaded CI machine, the figure is kept.
  assert.ok(readyMs <= 5000, `the screen took ${readyMs} ms`)
  await page.setViewportSize({ width: 1366, height: 768 })
  assert.deepEqual(errors, [])
  await page.close()
})

test('a department admin reclaims an idle volume in one step', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'gaj.admin')
  await page.getByTestId('nav-idle').click()
  const row = page.getByTestId('reclaim-旧版备份盘')
  await row.waitFor({ timeout: 20000 })
  await shot(page, '10d-idle-resources')
  await row.click()
  await confirmBox(page)
  await page.locator('.el-message--success').first().waitFor()
  // Reclaiming: it leaves the list of open findings once the page has reloaded.
  await page.getByTestId('reclaim-旧版备份盘').waitFor({ state: 'detached' })
  assert.deepEqual(errors, [])
  await page.close()
})

test('the auditor changes the one-time password, enrols TOTP, signs in with the second factor and verifies and exports the audit log', async (t) => {
  if (!server.admins.auditor) {
    t.skip('the server did not print the one-time passwords (not a first start)')
    return
  }
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'auditor', server.admins.auditor)
  await page.getByTestId('pw-new').fill('Audit!2026-e2e-check')
  await page.getByTestId('pw-current').fill(server.admins.auditor)
  await page.getByTestId('pw-repeat').fill('Audit!2026-e2e-check')
  await shot(page, '11-forced-password-change')
  await page.getByTestId('pw-submit').click()
  const secret = await page.getByTestId('mfa-secret').innerText()
  await shot(page, '12-mfa-enrolment')
  await page.getByTestId('mfa-code').fill(totp(secret))
  await page.getByTestId('mfa-confirm').click()
  const recovery = await page.locator('.codes code').first().innerText()
  await page.getByTestId('codes-continue').click()
  await page.waitForURL('**/audit')
  // Signing in again: the API asks for the second factor; a recovery code also does.
  await page.getByTestId('logout').click()
  await login(page, server.base, 'auditor', 'Audit!2026-e2e-check')
  await page.getByTestId('totp').waitFor()
  await shot(page, '12b-totp-step')
  await page.getByText('改用恢复码').click()
  await page.getByTestId('recovery').fill(recovery)
  await page.getByTestId('login-submit').click()
  await page.waitForURL('**/audit')
  const menu = await page.getByTestId('menu').innerText()
  assert.match(menu, /审计日志/)
  assert.doesNotMatch(menu, /云主机|委办局|宿主机/)
  await page.getByTestId('audit-table').locator('tbody tr').first().waitFor()
  await page.getByTestId('audit-verify').click()
  const result = page.getByTestId('audit-verify-result')
  await result.waitFor()
  assert.match(await result.innerText(), /哈希链完整/)
  const download = page.waitForEvent('download')
  await page.getByTestId('audit-export-csv').click()
  const file = await download
  assert.match(file.suggestedFilename(), /\.csv$/)
  await shot(page, '13-audit')
  await page.goto(`${server.base}/portal/instances`)
  await page.getByTestId('forbidden').waitFor()
  assert.deepEqual(errors, [])
  await page.close()
})

test('the platform admin signs in the first time, adds a department and puts a host into maintenance', async (t) => {
  if (!server.admins.admin) {
    t.skip('the server did not print the one-time passwords (not a first start)')
    return
  }
  const { page, errors } = await newPage(browser.ctx)
  await firstLogin(page, server.base, 'admin', server.admins.admin, 'Platform!2026-e2e-check')
  await page.waitForURL('**/platform/overview')
  const menu = await page.getByTestId('menu').innerText()
  assert.match(menu, /委办局/)
  assert.match(menu, /云服务商与宿主机/)
  assert.doesNotMatch(menu, /审计日志/)

  await page.getByTestId('nav-departments').click()
  await page.getByTestId('create-department').click()
  await page.getByTestId('dept-name').fill('宜宾市统计局（e2e）')
  await page.getByTestId('dept-code').fill('TJJE2E')
  await page.getByTestId('dept-save').click()
  await page.getByTestId('department-table').getByText('宜宾市统计局（e2e）').waitFor()

  await page.getByTestId('nav-infra').click()
  const row = page.getByTestId('host-table').locator('tbody tr').first()
  await row.locator('[data-state="enabled"]').waitFor()
  await row.locator('.el-switch').click()
  await confirmBox(page)
  await row.locator('[data-state="maintenance"]').waitFor()
  await shot(page, '14a-host-maintenance')
  await row.locator('.el-switch').click()
  await confirmBox(page)
  await row.locator('[data-state="enabled"]').waitFor()

  // A provider operator is granted on one provider: ctyun.ops works for 天翼云, and gets
  // 浪潮云 as a second provider through the grant form.
  await page.getByTestId('nav-users').click()
  const search = page.getByPlaceholder('搜索', { exact: true }).first()
  await search.fill('ctyun.ops')
  await search.press('Enter')
  const ops = page.getByTestId('user-table').locator('tr', { hasText: 'ctyun.ops' })
  await ops.getByTestId('user-grants').click()
  const grantTable = page.getByTestId('grant-table')
  await grantTable.getByText('云服务商 · 天翼云（模拟）').waitFor()
  await pickOption(page, 'grant-role', '云服务商运维')
  await pickOption(page, 'grant-provider', '浪潮云')
  await page.getByTestId('grant-submit').click()
  await grantTable.getByText('云服务商 · 浪潮云（模拟）').waitFor()
  await shot(page, '14f-provider-operator-grant')
  await page.keyboard.press('Escape')

  // The background tasks: each with its last run, the reconciler on this (only) replica.
  await page.getByTestId('nav-tasks').click()
  const tasks = page.getByTestId('tasks')
  await tasks.getByText('saga_executor').waitFor()
  await tasks.getByText('instance_reconciler').waitFor()
  assert.match(await tasks.innerText(), /本副本执行/)
  await tasks.getByText('lease_manager').waitFor()
  await shot(page, '14b-background-tasks')

  // High availability and consolidation: recoveries (none yet), then a consolidation
  // plan over the simulated providers, approved and stopped again.
  await page.getByTestId('nav-ha').click()
  await page.getByTestId('ha-recoveries').waitFor()
  await page.getByRole('tab', { name: '资源整合' }).click()
  await page.getByTestId('propose').click()
  const plan = page.getByTestId('plan')
  await plan.getByText('待批准').waitFor()
  assert.match(await plan.innerText(), /使用中宿主机 \d+ → \d+ 台，腾空 \d+ 台/)
  await shot(page, '14d-consolidation-plan')
  if (await page.getByTestId('approve').isVisible()) {
    await page.getByTestId('approve').click()
    await confirmBox(page)
    await plan.getByText('执行中').waitFor()
    await page.getByTestId('stop').click()
    await plan.getByText('已停止').waitFor()
  }

  // Lease settings in days: the defaults (7/3/1 days, 7 days, 7 days), then a longer grace.
  await page.getByTestId('nav-lease-settings').click()
  await page.getByTestId('lease-form').waitFor()
  assert.equal(await page.getByTestId('reminder-days-0').locator('input').inputValue(), '7')
  await page.getByTestId('grace-days').locator('input').fill('10')
  await page.getByTestId('lease-save').click()
  await page.locator('.el-message--success').first().waitFor()
  assert.equal(await page.getByTestId('grace-days').locator('input').inputValue(), '10')
  await shot(page, '14c-lease-settings')

  // An OpenStack provider through the form: the demo has no OpenStack, so an unreachable
  // loopback Keystone is refused with the API's clear message, the secret never shown.
  await page.getByTestId('nav-infra').click()
  await page.getByTestId('new-openstack').click()
  await page.waitForURL('**/platform/providers/new/openstack')
  await page.getByTestId('os-name').fill('e2e OpenStack')
  await page.getByTestId('os-auth-url').fill('http://127.0.0.1:9/v3')
  await page.getByTestId('os-cred-id').fill('e2e-app-cred')
  await page.getByTestId('os-secret').fill('e2e-secret-value')
  assert.equal(await page.getByTestId('os-secret').getAttribute('type'), 'password')
  await page.getByTestId('os-save').click()
  await page.getByTestId('os-error').waitFor()
  assert.match(await page.getByTestId('os-error').innerText(), /OpenStack/)
  assert.doesNotMatch(await page.getByTestId('os-error').innerText(), /e2e-secret-value/)
  assert.ok(page.url().endsWith('/platform/providers/new/openstack'))
  await shot(page, '14e-openstack-unreachable')

  if (process.env.ZY_E2E_OPENSTACK) {
    // The real OpenStack bed: a server made there directly (behind zhengyun's back) is
    // found by the synchronisation as drift, and the platform admin adopts it into the
    // mapped department and project.
    const bed = await bedSession()
    const outside = `e2e-outside-${Date.now().toString(36)}`
    const serverId = await bed.createServer(outside)
    await page.getByTestId('os-name').fill('OpenStack 测试床（e2e）')
    await page.getByTestId('os-auth-url').fill(bed.authUrl)
    await page.getByTestId('os-cred-type').getByText('用户名密码').click()
    await page.getByTestId('os-cred-id').fill(bed.username)
    await page.getByTestId('os-secret').fill(bed.password)
    await page.getByTestId('os-project').fill(bed.project)
    await page.getByTestId('os-map-add-project').click()
    await page.getByTestId('os-map-os-project-0').fill(bed.projectId)
    await pickOption(page, 'os-map-department-0', '宜宾市卫生和计划生育委员会')
    await pickOption(page, 'os-map-project-0', '全民健康信息平台')
    await page.getByTestId('os-save').click()
    await page.waitForURL(/\/platform\/providers\/[0-9a-f-]{36}\/openstack$/, { timeout: 60000 })
    await page.getByTestId('os-secret-set').waitFor()
    await page.getByTestId('os-sync').click()
    await page.getByTestId('os-sync-report').waitFor({ timeout: 120000 })
    assert.match(await page.getByTestId('os-sync-report').innerText(), /新差异 [1-9]\d*/)
    await page.getByTestId('os-drift-link').click()
    await page.waitForURL(/\/platform\/providers\/[0-9a-f-]{36}\/drift$/)
    const item = page.getByTestId('drift-table').locator('tr', { hasText: outside }).first()
    await item.waitFor()
    assert.match(await item.innerText(), new RegExp(serverId))
    assert.match(await item.innerText(), /新出现/)
    assert.match(await item.innerText(), /全民健康信息平台/)
    await shot(page, '14g-openstack-drift')
    await item.locator('[data-testid^="adopt-"]').click()
    await confirmBox(page)
    await page.getByTestId('drift-table').locator('tr', { hasText: outside }).waitFor({ state: 'detached' })
    await page.getByTestId('drift-tabs').getByText('已纳管').click()
    const adopted = page.getByTestId('drift-table').locator('tr', { hasText: outside }).first()
    await adopted.waitFor()
    assert.match(await adopted.innerText(), /已纳管/)
    await shot(page, '14h-openstack-adopted')
    // Adopting changes nothing in the provider cloud: the server is still there, ACTIVE.
    assert.equal((await bed.server(serverId))?.status, 'ACTIVE')
  }
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('the security admin signs in the first time and raises the per-account login limit', async (t) => {
  if (!server.admins.secadmin) {
    t.skip('the server did not print the one-time passwords (not a first start)')
    return
  }
  const { page, errors } = await newPage(browser.ctx)
  await firstLogin(page, server.base, 'secadmin', server.admins.secadmin, 'Security!2026-e2e-check')
  await page.getByTestId('nav-security').click()
  const menu = await page.getByTestId('menu').innerText()
  assert.match(menu, /安全设置/)
  assert.doesNotMatch(menu, /后台任务|审计日志|云主机/)
  const field = page.getByTestId('sec-login_attempts_per_account_per_minute').locator('input')
  await field.waitFor()
  assert.equal(await field.inputValue(), '10')
  await field.fill('20')
  await field.blur()
  await page.getByTestId('security-save').click()
  await page.locator('.el-message--success').first().waitFor()
  await shot(page, '14c-security-settings')
  await page.reload()
  await page.getByTestId('sec-login_attempts_per_account_per_minute').locator('input').waitFor()
  assert.equal(await page.getByTestId('sec-login_attempts_per_account_per_minute').locator('input').inputValue(), '20')
  await page.getByTestId('logout').click()
  await page.waitForURL('**/login')
  assert.deepEqual(errors, [])
  await page.close()
})

test('in English the API error comes back in English', async () => {
  const { page } = await newPage(browser.ctx)
  await page.goto(`${server.base}/login`)
  await page.getByTestId('lang').click()
  await page.getByTestId('username').fill('nobody.here')
  await page.getByTestId('password').fill('wrong')
  await page.getByTestId('login-submit').click()
  await page.getByTestId('login-error').waitFor()
  assert.match(await page.getByTestId('login-error').innerText(), /wrong user name or password/)
  await shot(page, '14-english-error')
  await page.getByTestId('lang').click()
  await page.close()
})

test('the instance list renders and filters 1,000 instances without visible lag', async () => {
  const { page, errors } = await newPage(browser.ctx)
  await login(page, server.base, 'wjw.admin')
  await page.waitForURL('**/portal/instances')
  const me = await page.evaluate(async () => (await fetch('/v1/me')).json())
  const dept = me.memberships[0].department_id
  const states = ['running', 'stopped', 'error', 'running', 'running']
  const items = Array.from({ length: 1000 }, (_, i) => ({
    id: `0190a000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    project_id: '0190a000-0000-7000-8000-ffffffffffff', department_id: dept,
    name: `load-${String(i).padStart(4, '0')}`, flavor_id: '0190a000-0000-7000-8000-000000000001', flavor_name: '2C4G',
    image_id: '0190a000-0000-7000-8000-000000000002', image_name: 'CentOS-7.9', vcpus: 2, memory_mib: 4096, disk_gib: 40, gpus: 0,
    state: states[i % 5], desired: states[i % 5] === 'error' ? 'running' : states[i % 5],
    created_at: '2026-11-24T08:00:00Z', updated_at: '2026-11-24T08:00:00Z', generation: 1,
  }))
  // The server's quota allows 500 per project; the rows come from a stub of the same API.
  await page.route('**/v1/instances?*', (route) => route.fulfill({ json: { items } }))
  await page.reload()
  const t0 = Date.now()
  await page.getByTestId('instance-table').getByText('load-0000').waitFor()
  const renderMs = Date.now() - t0
  // Each row shows its state.
  assert.equal(await page.getByTestId('instance-table').locator('[data-state="running"]').first().innerText(), '运行中')
  const t1 = Date.now()
  await page.getByTestId('filter-name').fill('load-099')
  await page.getByTestId('instance-table').getByText('load-0999').waitFor()
  await page.getByTestId('instance-table').getByText('load-0000').waitFor({ state: 'detached' })
  const filterMs = Date.now() - t1
  await shot(page, '15-instances-1000-filtered')
  writeFileSync(join(ARTIFACTS, 'perf-1000.json'), JSON.stringify({ renderMs, filterMs }, null, 2) + '\n')
  assert.ok(renderMs < 3000, `1,000 rows took ${renderMs} ms to render`)
  assert.ok(filterMs < 1000, `filtering took ${filterMs} ms`)
  await page.unroute('**/v1/instances?*')
  assert.deepEqual(errors, [])
  await page.close()
})
