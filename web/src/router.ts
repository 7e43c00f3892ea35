// Routes and who may see them. `meta.roles` lists the roles that open a page (any of them);
// a page without it only needs a signed-in account. The same lists build the menu.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import type { Role } from './api/client'
import { session, loadMe, hasAny } from './session'

declare module 'vue-router' {
  interface RouteMeta {
    roles?: Role[]
    public?: boolean
    title?: string
  }
}

export const PORTAL: Role[] = ['platform_admin', 'supervisor', 'finance', 'dept_admin', 'dept_member']
/** The network pages: whoever reads a project's networks (changes need an operating role). */
export const NETWORK: Role[] = ['platform_admin', 'supervisor', 'dept_admin', 'dept_member']
export const PLATFORM_READ: Role[] = ['platform_admin', 'supervisor']
export const SUPERVISION: Role[] = ['platform_admin', 'supervisor', 'dept_admin']

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: () => import('./views/Login.vue'), meta: { public: true } },
  // The full-screen supervision dashboard (监管大屏): no console frame, for the command centre.
  { path: '/screen', name: 'screen', component: () => import('./views/supervision/Screen.vue'), meta: { roles: SUPERVISION, title: 'nav.screen' } },
  {
    path: '/',
    component: () => import('./views/Shell.vue'),
    children: [
      { path: '', name: 'home', component: () => import('./views/Home.vue') },
      { path: 'forbidden', name: 'forbidden', component: () => import('./views/Forbidden.vue') },
      { path: 'portal/projects', name: 'projects', component: () => import('./views/dept/Projects.vue'), meta: { roles: PORTAL, title: 'nav.projects' } },
      { path: 'portal/instances', name: 'instances', component: () => import('./views/dept/Instances.vue'), meta: { roles: PORTAL, title: 'nav.instances' } },
      { path: 'portal/instances/new', name: 'instance-new', component: () => import('./views/dept/InstanceCreate.vue'), meta: { roles: ['platform_admin', 'dept_admin', 'dept_member'], title: 'instance.create' } },
      { path: 'portal/instances/:id', name: 'instance', component: () => import('./views/dept/InstanceDetail.vue'), meta: { roles: PORTAL, title: 'nav.instances' } },
      { path: 'portal/volumes', name: 'volumes', component: () => import('./views/dept/Volumes.vue'), meta: { roles: PORTAL, title: 'nav.volumes' } },
      { path: 'portal/requests', name: 'requests', component: () => import('./views/requests/Requests.vue'), props: { view: 'mine' }, meta: { roles: ['dept_admin', 'dept_member'], title: 'nav.requests' } },
      { path: 'portal/requests/new', name: 'request-new', component: () => import('./views/requests/RequestForm.vue'), meta: { roles: ['dept_admin', 'dept_member'], title: 'request.new' } },
      { path: 'portal/requests/:id', name: 'request', component: () => import('./views/requests/RequestDetail.vue'), meta: { roles: ['platform_admin', 'supervisor', 'finance', 'provider_operator', 'dept_admin', 'dept_member'], title: 'nav.requests' } },
      { path: 'portal/approvals', name: 'approvals', component: () => import('./views/requests/Requests.vue'), props: { view: 'to_decide' }, meta: { roles: ['dept_admin', 'supervisor', 'finance'], title: 'nav.approvals' } },
      { path: 'platform/deliveries', name: 'deliveries', component: () => import('./views/requests/Requests.vue'), props: { view: 'deliveries' }, meta: { roles: ['platform_admin', 'provider_operator'], title: 'nav.deliveries' } },
      { path: 'platform/approval-chains', name: 'approval-chains', component: () => import('./views/platform/ApprovalChains.vue'), meta: { roles: ['platform_admin', 'supervisor'], title: 'nav.approvalChains' } },
      { path: 'portal/network/topology', name: 'topology', component: () => import('./views/network/Topology.vue'), meta: { roles: NETWORK, title: 'net.topology' } },
      { path: 'portal/network/vpcs', name: 'vpcs', component: () => import('./views/network/Vpcs.vue'), meta: { roles: NETWORK, title: 'net.vpcs' } },
      { path: 'portal/network/security-groups', name: 'security-groups', component: () => import('./views/network/SecurityGroups.vue'), meta: { roles: [...NETWORK, 'security_admin'], title: 'net.securityGroups' } },
      { path: 'portal/network/elastic-ips', name: 'elastic-ips', component: () => import('./views/network/ElasticIps.vue'), meta: { roles: NETWORK, title: 'net.elasticIps' } },
      { path: 'portal/network/load-balancers', name: 'load-balancers', component: () => import('./views/network/LoadBalancers.vue'), meta: { roles: NETWORK, title: 'net.loadBalancers' } },
      { path: 'portal/quotas', name: 'quotas', component: () => import('./views/dept/Quotas.vue'), meta: { roles: PORTAL, title: 'nav.quotas' } },
      { path: 'portal/recycle-bin', name: 'recycle-bin', component: () => import('./views/dept/RecycleBin.vue'), meta: { roles: PORTAL, title: 'nav.recycleBin' } },
      { path: 'portal/bills', name: 'bills', component: () => import('./views/dept/Bills.vue'), meta: { roles: ['dept_admin', 'finance', 'supervisor'], title: 'nav.bills' } },
      { path: 'portal/members', name: 'members', component: () => import('./views/dept/Members.vue'), meta: { roles: ['platform_admin', 'dept_admin'], title: 'nav.members' } },
      { path: 'platform/overview', name: 'overview', component: () => import('./views/platform/Overview.vue'), meta: { roles: PLATFORM_READ, title: 'nav.overview' } },
      { path: 'platform/departments', name: 'departments', component: () => import('./views/platform/Departments.vue'), meta: { roles: ['platform_admin', 'supervisor', 'finance'], title: 'nav.departments' } },
      { path: 'platform/users', name: 'users', component: () => import('./views/platform/Users.vue'), meta: { roles: ['platform_admin', 'security_admin'], title: 'nav.users' } },
      { path: 'platform/infra', name: 'infra', component: () => import('./views/platform/Infra.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator'], title: 'nav.infra' } },
      { path: 'platform/providers/:id/openstack', name: 'openstack-settings', component: () => import('./views/platform/OpenStackSettings.vue'), meta: { roles: PLATFORM_READ, title: 'nav.infra' } },
      { path: 'platform/providers/:id/drift', name: 'openstack-drift', component: () => import('./views/platform/OpenStackDrift.vue'), meta: { roles: PLATFORM_READ, title: 'nav.infra' } },
      { path: 'platform/flavors', name: 'flavors', component: () => import('./views/platform/Flavors.vue'), meta: { roles: ['platform_admin', 'supervisor'], title: 'nav.flavors' } },
      { path: 'platform/images', name: 'images', component: () => import('./views/platform/Images.vue'), meta: { roles: ['platform_admin', 'supervisor'], title: 'nav.images' } },
      { path: 'platform/billing', name: 'billing', component: () => import('./views/platform/Billing.vue'), meta: { roles: ['finance', 'supervisor', 'provider_operator', 'platform_admin'], title: 'nav.billing' } },
      { path: 'platform/security', name: 'security', component: () => import('./views/platform/Security.vue'), meta: { roles: ['security_admin'], title: 'nav.security' } },
      { path: 'alerts', name: 'alerts', component: () => import('./views/platform/Alerts.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator', 'dept_admin', 'dept_member'], title: 'nav.alerts' } },
      { path: 'ops/tickets', name: 'tickets', component: () => import('./views/ops/Tickets.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator', 'dept_admin', 'dept_member'], title: 'nav.tickets' } },
      { path: 'ops/tickets/:id', name: 'ticket', component: () => import('./views/ops/TicketDetail.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator', 'dept_admin', 'dept_member'], title: 'nav.tickets' } },
      { path: 'ops/inspections', name: 'inspections', component: () => import('./views/ops/Inspections.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator', 'auditor'], title: 'nav.inspections' } },
      { path: 'ops/sla', name: 'sla', component: () => import('./views/ops/Sla.vue'), meta: { roles: ['platform_admin', 'supervisor', 'finance', 'provider_operator'], title: 'nav.sla' } },
      { path: 'platform/ha', name: 'ha', component: () => import('./views/platform/Ha.vue'), meta: { roles: ['platform_admin', 'supervisor', 'provider_operator'], title: 'nav.ha' } },
      { path: 'security/events', name: 'security-events', component: () => import('./views/security/Events.vue'), meta: { roles: ['security_admin', 'supervisor', 'dept_admin'], title: 'nav.securityEvents' } },
      { path: 'security/vulnerabilities', name: 'vulnerabilities', component: () => import('./views/security/Vulnerabilities.vue'), meta: { roles: ['security_admin', 'supervisor', 'dept_admin'], title: 'nav.vulnerabilities' } },
      { path: 'security/address-plan', name: 'address-plan', component: () => import('./views/security/AddressPlan.vue'), meta: { roles: ['security_admin', 'platform_admin', 'supervisor'], title: 'nav.addressPlan' } },
      { path: 'supervision', name: 'supervision', component: () => import('./views/supervision/Supervision.vue'), meta: { roles: SUPERVISION, title: 'nav.supervision' } },
      { path: 'supervision/idle', name: 'idle', component: () => import('./views/supervision/Idle.vue'), meta: { roles: SUPERVISION, title: 'nav.idle' } },
      { path: 'supervision/reports', name: 'reports', component: () => import('./views/supervision/Reports.vue'), meta: { roles: PLATFORM_READ, title: 'nav.reports' } },
      { path: 'platform/tasks', name: 'tasks', component: () => import('./views/platform/Tasks.vue'), meta: { roles: ['platform_admin'], title: 'nav.tasks' } },
      { path: 'inbox', name: 'inbox', component: () => import('./views/Inbox.vue'), meta: { title: 'nav.inbox' } },
      { path: 'platform/notify', name: 'notify', component: () => import('./views/platform/Notify.vue'), meta: { roles: ['platform_admin', 'dept_admin'], title: 'nav.notify' } },
      { path: 'platform/lease-settings', name: 'lease-settings', component: () => import('./views/platform/LeaseSettings.vue'), meta: { roles: ['platform_admin'], title: 'nav.leaseSettings' } },
      { path: 'audit', name: 'audit', component: () => import('./views/audit/Audit.vue'), meta: { roles: ['auditor'], title: 'nav.auditLog' } },
      { path: ':rest(.*)*', name: 'not-found', component: () => import('./views/NotFound.vue') },
    ],
  },
]

export const router = createRouter({ history: createWebHistory(), routes })

router.beforeEach(async (to) => {
  if (!session.loaded) await loadMe()
  if (to.meta.public) return true
  if (!session.me) return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  if (session.me.required_action) return { name: 'login' }
  if (to.meta.roles && !hasAny(...to.meta.roles)) return { name: 'forbidden', query: { from: to.fullPath } }
  return true
})

/** The first page a role lands on. */
export function homeFor(): string {
  if (hasAny('dept_admin', 'dept_member')) return '/portal/instances'
  if (hasAny('platform_admin', 'supervisor')) return '/platform/overview'
  if (hasAny('auditor')) return '/audit'
  if (hasAny('security_admin')) return '/platform/users'
  if (hasAny('provider_operator')) return '/platform/infra'
  if (hasAny('finance')) return '/platform/billing'
  return '/forbidden'
}
