// The signed-in account: who it is, its roles (from GET /v1/me), and the idle timer.
// Roles decide which menus and pages exist; the server decides every request anyway.
import { reactive, computed } from 'vue'
import { get, post, type Me, type Role } from './api/client'

export const session = reactive({
  me: null as Me | null,
  loaded: false,
  /** Why the last session ended, shown on the login page. */
  endedReason: '' as '' | 'idle' | 'expired' | 'logout',
})

export const roles = computed<Set<Role>>(() => new Set((session.me?.memberships ?? []).map((m) => m.role)))

export function hasAny(...want: Role[]): boolean {
  const have = roles.value
  return want.some((r) => have.has(r))
}

/**
 * The providers a provider operator works for (its grants are held on a provider), or
 * null for an account that reads every provider's infrastructure.
 */
export const operatedProviders = computed<string[] | null>(() => {
  if (hasAny('platform_admin', 'supervisor')) return null
  const ids = new Set<string>()
  for (const m of session.me?.memberships ?? []) if (m.role === 'provider_operator' && m.provider_id) ids.add(m.provider_id)
  return [...ids]
})

/** Departments the account's department-scoped grants name (empty for platform roles). */
export const ownDepartments = computed<string[]>(() => {
  const ids = new Set<string>()
  for (const m of session.me?.memberships ?? []) if (m.department_id) ids.add(m.department_id)
  return [...ids]
})

/** Projects the account is limited to when it only holds project-scoped grants. */
export const ownProjects = computed<string[] | null>(() => {
  const ms = session.me?.memberships ?? []
  if (ms.length === 0 || ms.some((m) => m.scope_type !== 'project')) return null
  return ms.map((m) => m.project_id).filter((p): p is string => !!p)
})

export async function loadMe(): Promise<Me | null> {
  try {
    session.me = await get<Me>('/v1/me')
  } catch {
    session.me = null
  }
  session.loaded = true
  return session.me
}

export async function logout(reason: '' | 'idle' | 'expired' | 'logout' = 'logout') {
  try {
    if (session.me) await post('/v1/auth/logout')
  } catch {
    // The session may already be gone; the cookie is cleared either way.
  }
  session.me = null
  session.endedReason = reason
  stopIdleTimer()
}

// Idle timeout: the server ends a session idle for its configured time (30 minutes by
// default); the console signs out a little earlier on its own so nobody walks into a
// half-dead page, and says why.
export const IDLE_MINUTES = 30
let idleTimer: number | undefined
let onIdle: (() => void) | null = null
const events = ['mousedown', 'keydown', 'wheel', 'touchstart']

function bump() {
  if (idleTimer !== undefined) window.clearTimeout(idleTimer)
  idleTimer = window.setTimeout(() => onIdle?.(), IDLE_MINUTES * 60 * 1000 - 15000)
}

export function startIdleTimer(f: () => void) {
  onIdle = f
  for (const e of events) window.addEventListener(e, bump, { passive: true })
  bump()
}

export function stopIdleTimer() {
  if (idleTimer !== undefined) window.clearTimeout(idleTimer)
  for (const e of events) window.removeEventListener(e, bump)
}
