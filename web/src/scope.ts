// Which department and project the portal pages show. Department-scoped accounts see
// only their own department (the server lists nothing else to them); platform roles
// choose one. Shared by the portal pages so the choice survives navigation.
import { reactive } from 'vue'
import { get, all, type Department, type Project, type Page } from './api/client'

export const scope = reactive({
  departments: [] as Department[],
  projects: [] as Project[],
  departmentId: '' as string,
  projectId: '' as string,
  loaded: false,
})

export async function loadScope(force = false) {
  if (scope.loaded && !force) return
  // Roles without access to departments (security admin, provider operator) see none.
  const depts = await get<Page<Department>>('/v1/departments', { limit: 1000 }).catch(() => ({ items: [] as Department[] }))
  scope.departments = depts.items
  if (!scope.departmentId || !depts.items.some((d) => d.id === scope.departmentId)) {
    scope.departmentId = depts.items.length === 1 ? depts.items[0].id : ''
  }
  await loadProjects()
  scope.loaded = true
}

export async function loadProjects() {
  scope.projects = await all<Project>('/v1/projects', scope.departmentId ? { department_id: scope.departmentId } : {}).catch(() => [])
  if (scope.projectId && !scope.projects.some((p) => p.id === scope.projectId)) scope.projectId = ''
}

export function projectName(id: string): string {
  return scope.projects.find((p) => p.id === id)?.name ?? id.slice(0, 8)
}

export function departmentName(id: string | null | undefined): string {
  if (!id) return '—'
  return scope.departments.find((d) => d.id === id)?.name ?? id.slice(0, 8)
}
