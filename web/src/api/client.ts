// The console's one way to call the API: typed by the generated OpenAPI schema, sends the
// UI language as Accept-Language and the CSRF token on changes, and turns the API's one
// error body into an ApiError carrying the server's own (translated) message.
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type Instance = Schemas['Instance']
export type InstanceState = Schemas['InstanceState']
export type Department = Schemas['Department']
export type Project = Schemas['Project']
export type User = Schemas['User']
export type Membership = Schemas['Membership']
export type Role = Schemas['Role']
export type Provider = Schemas['Provider']
export type Zone = Schemas['Zone']
export type Host = Schemas['Host']
export type Flavor = Schemas['Flavor']
export type Image = Schemas['Image']
export type Volume = Schemas['Volume']
export type Quota = Schemas['Quota']
export type AuditRecord = Schemas['AuditRecord']
export type Me = Schemas['Me']
export type ErrorCode = Schemas['ErrorCode']
export type ResourceRequest = Schemas['ResourceRequest']
export type RequestDetail = Schemas['RequestDetail']
export type ApprovalChain = Schemas['ApprovalChain']

export interface Page<T> {
  items: T[]
  next_cursor?: string | null
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: ErrorCode | 'network',
    message: string,
    public requestId: string,
    public details: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

let language = 'zh-CN'
export function setApiLanguage(lang: string) {
  language = lang
}

/** Called when the server says the session is gone (expired, idle, revoked). */
let onUnauthenticated: ((e: ApiError) => void) | null = null
export function setUnauthenticatedHandler(f: (e: ApiError) => void) {
  onUnauthenticated = f
}

function csrfToken(): string {
  const m = document.cookie.match(/(?:^|;\s*)zy_csrf=([^;]+)/)
  return m ? decodeURIComponent(m[1]) : ''
}

type Query = Record<string, string | number | boolean | null | undefined>

export function withQuery(path: string, q?: Query): string {
  if (!q) return path
  const sp = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && v !== null && v !== '') sp.set(k, String(v))
  }
  const s = sp.toString()
  return s ? `${path}?${s}` : path
}

/** Paths of the public API (for typos caught at compile time). */
export type ApiPath = keyof paths

export async function raw(method: string, path: string, body?: unknown, query?: Query): Promise<Response> {
  const headers: Record<string, string> = { 'Accept-Language': language, Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken()
  let resp: Response
  try {
    resp = await fetch(withQuery(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    })
  } catch {
    throw new ApiError(0, 'network', language.startsWith('zh') ? '无法连接服务器' : 'cannot reach the server', '')
  }
  if (!resp.ok) {
    let err: ApiError
    try {
      const b = (await resp.json()) as Schemas['ErrorBody']
      err = new ApiError(resp.status, b.error.code, b.error.message, b.error.request_id, (b.error.details ?? {}) as Record<string, unknown>)
    } catch {
      err = new ApiError(resp.status, 'internal', `HTTP ${resp.status}`, resp.headers.get('x-request-id') ?? '')
    }
    if (err.code === 'unauthenticated' && onUnauthenticated) onUnauthenticated(err)
    throw err
  }
  return resp
}

export async function api<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const resp = await raw(method, path, body, query)
  if (resp.status === 204) return undefined as T
  return (await resp.json()) as T
}

export const get = <T>(path: string, query?: Query) => api<T>('GET', path, undefined, query)
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {})
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body)
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body)
export const del = <T>(path: string) => api<T>('DELETE', path)

/** Every page of a cursor-paged list (for aggregates such as the overview). */
export async function all<T>(path: string, query: Query = {}, max = 20000): Promise<T[]> {
  const out: T[] = []
  let cursor: string | undefined
  do {
    const p = await get<Page<T>>(path, { ...query, limit: 1000, cursor })
    out.push(...p.items)
    cursor = p.next_cursor ?? undefined
  } while (cursor && out.length < max)
  return out
}

/** The items of an unpaged list (`{ items: [...] }`). */
export async function list<T>(path: string, query?: Query): Promise<T[]> {
  return (await get<{ items: T[] }>(path, query)).items
}
