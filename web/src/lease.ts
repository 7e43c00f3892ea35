// Leases (使用期限) and the recycle bin (回收站): durations as people read them. The API
// speaks seconds; the console shows days and hours.
import { i18n } from './i18n'

/** "3 天 4 小时" / "3 days 4 hours" (minutes or seconds only when under an hour). */
export function human(secs: number): string {
  const t = i18n.global.t
  const s = Math.max(0, Math.floor(secs))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  if (d === 0 && h === 0) {
    const m = Math.floor(s / 60)
    return m > 0 ? `${m} min` : `${s} s`
  }
  return [d ? `${d} ${t('lease.days')}` : '', h ? `${h} ${t('lease.hours')}` : ''].filter(Boolean).join(' ')
}

/** Seconds from now until an RFC 3339 time (negative when past). */
export function secsUntil(at: string): number {
  return (new Date(at).getTime() - Date.now()) / 1000
}

/** Days and hours of a number of seconds, for two number inputs. */
export function split(secs: number): { days: number; hours: number } {
  return { days: Math.floor(secs / 86400), hours: Math.floor((secs % 86400) / 3600) }
}

export function join(v: { days: number; hours: number }): number {
  return v.days * 86400 + v.hours * 3600
}
