// Server-side cursor paging for the list pages: remembers the cursors of the pages before
// so the user can go back, and refetches the current page for polling.
import { reactive } from 'vue'
import { get, type Page } from './api/client'

export function useCursorPage<T>(path: string, query: () => Record<string, string | number | boolean | undefined>) {
  const st = reactive({
    items: [] as T[],
    loading: false,
    error: '',
    limit: 50,
    cursors: [''] as string[],
    next: '' as string,
  })

  async function load(silent = false) {
    if (!silent) st.loading = true
    try {
      const cur = st.cursors[st.cursors.length - 1]
      const p = await get<Page<T>>(path, { ...query(), limit: st.limit, cursor: cur || undefined })
      st.items = p.items as never
      st.next = p.next_cursor ?? ''
      st.error = ''
    } catch (e) {
      st.error = e instanceof Error ? e.message : String(e)
    } finally {
      st.loading = false
    }
  }

  function reset() {
    st.cursors = ['']
    return load()
  }
  function nextPage() {
    if (!st.next) return
    st.cursors.push(st.next)
    return load()
  }
  function prevPage() {
    if (st.cursors.length <= 1) return
    st.cursors.pop()
    return load()
  }
  return { st, load, reset, nextPage, prevPage }
}
