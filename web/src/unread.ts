// The unread count behind the bell in the shell's header: polled every 30 s while the tab
// is visible, and refreshed at once when a page marks notices read.
import { ref } from 'vue'
import { get, type Schemas } from './api/client'

export const unread = ref(0)

export async function refreshUnread() {
  try {
    unread.value = (await get<Schemas['UnreadCount']>('/v1/me/notifications/unread-count')).unread
  } catch {
    // A failed poll keeps the last count; the next one tries again.
  }
}

let timer: number | undefined
export function startUnreadPolling() {
  stopUnreadPolling()
  refreshUnread()
  timer = window.setInterval(() => {
    if (!document.hidden) refreshUnread()
  }, 30_000)
}
export function stopUnreadPolling() {
  window.clearInterval(timer)
  timer = undefined
}
