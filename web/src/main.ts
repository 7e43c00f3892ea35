import { createApp } from 'vue'
import 'element-plus/dist/index.css'
import './style.css'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'
import { setUnauthenticatedHandler } from './api/client'
import { session } from './session'

// Any request the server refuses as unauthenticated (idle, expired, revoked session)
// brings the user back to the login page with the reason.
setUnauthenticatedHandler(() => {
  if (session.me) {
    session.me = null
    session.endedReason = 'expired'
    const here = router.currentRoute.value
    if (!here.meta.public) void router.push({ name: 'login', query: { next: here.fullPath } })
  }
})

createApp(App).use(i18n).use(router).mount('#app')
