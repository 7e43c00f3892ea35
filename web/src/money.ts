// Money arrives from the API as integer fen; shown as yuan with two decimals, never
// through floating point.
export function yuan(fen: number): string {
  const neg = fen < 0
  const a = Math.abs(Math.trunc(fen))
  const s = `${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`
  return neg ? '-' + s : s
}

/** Parses yuan with at most two decimals into fen; null when it is not such a number. */
export function parseYuan(s: string): number | null {
  const m = /^\s*(-?)(\d{1,12})(?:\.(\d{1,2}))?\s*$/.exec(s)
  if (!m) return null
  const fen = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'))
  return m[1] ? -fen : fen
}

export function hours(secs: number): string {
  return (secs / 3600).toFixed(2)
}
