// One change made from a page: run it with the page marked busy, say it was done, reload
// the page's data; an API error is shown as its message, a cancelled confirmation is quiet.
import { ref } from 'vue'
import { ElMessage } from 'element-plus'
import { ApiError } from './api/client'
import { i18n } from './i18n'

export function useAction(reload: () => Promise<unknown>) {
  const busy = ref(false)
  async function act(f: () => Promise<unknown>) {
    busy.value = true
    try {
      await f()
      ElMessage.success(i18n.global.t('common.done'))
      await reload()
    } catch (e) {
      if (e instanceof ApiError) ElMessage.error(e.message)
      else if (e !== 'cancel') ElMessage.error(String(e))
    } finally {
      busy.value = false
    }
  }
  return { busy, act }
}
