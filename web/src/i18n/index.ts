import { createI18n } from 'vue-i18n'
import zhCN from './zh-CN'
import en from './en'
import { setApiLanguage } from '../api/client'

export type Lang = 'zh-CN' | 'en'

function initial(): Lang {
  const saved = localStorage.getItem('zy.lang')
  return saved === 'en' ? 'en' : 'zh-CN'
}

export const i18n = createI18n({
  legacy: false,
  locale: initial(),
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zhCN, en },
})

setApiLanguage(i18n.global.locale.value)
document.documentElement.lang = i18n.global.locale.value

export function setLang(lang: Lang) {
  i18n.global.locale.value = lang
  localStorage.setItem('zy.lang', lang)
  setApiLanguage(lang)
  document.documentElement.lang = lang
}

const fmt = new Map<string, Intl.DateTimeFormat>()
/** A time in Asia/Shanghai, as people there read it. */
export function formatTime(t: string | null | undefined): string {
  if (!t) return '—'
  const lang = i18n.global.locale.value
  let f = fmt.get(lang)
  if (!f) {
    f = new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', {
      timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    })
    fmt.set(lang, f)
  }
  return f.format(new Date(t))
}

export function gib(mib: number): string {
  return (mib / 1024).toFixed(mib % 1024 === 0 ? 0 : 1)
}
